"""The EVM layer of the orchestrator: connections, artifacts, signing, transactions, events.

No torch/transformers/peft here (tests/python/chain/test_imports.py checks it): daemons that
only talk to the chain start in well under a second.

Typical use::

    from orchestrator.chain import connect, funded_accounts, Transactor, deploy_protocol, Protocol

    w3 = connect()                        # a new in-process py-evm chain (or connect(url))
    deployer, *orgs = funded_accounts(w3, 4)
    tx = Transactor(w3, deployer)
    manifest = deploy_protocol(w3, tx, ProtocolParams(orgs=[o.address for o in orgs]))
    protocol = Protocol.from_manifest(w3, manifest)
    tx.transact(protocol.Rounds.functions.openRound(cid, deadline, budget))
"""

from orchestrator.chain.anvil import AnvilProcess
from orchestrator.chain.artifacts import (
    Artifact,
    ContractRecord,
    ErrorSpec,
    Manifest,
    contract_name,
    error_selectors,
    load_artifact,
    register_contract_name,
)
from orchestrator.chain.connection import (
    advance_time,
    connect,
    connect_from_env,
    derive_account,
    funded_accounts,
    is_in_process,
    mine,
    revert_to,
    snapshot,
)
from orchestrator.chain.contracts import (
    ANCHOR_CONTRACT,
    PROTOCOL_CONTRACTS,
    Protocol,
    ProtocolParams,
    deploy_anchor,
    deploy_protocol,
)
from orchestrator.chain.errors import (
    ArtifactError,
    ChainConnectionError,
    ChainError,
    ContractRevertError,
    NonceError,
    ScannerHaltedError,
    SignerError,
    TransactionTimeoutError,
)
from orchestrator.chain.retry import retry
from orchestrator.chain.scanner import Event, EventScanner, ScannerStats
from orchestrator.chain.signer import load_signer
from orchestrator.chain.tx import RevertDecoder, Transactor, revert_data

__all__ = [
    "ANCHOR_CONTRACT",
    "PROTOCOL_CONTRACTS",
    "AnvilProcess",
    "Artifact",
    "ArtifactError",
    "ChainConnectionError",
    "ChainError",
    "ContractRecord",
    "ContractRevertError",
    "ErrorSpec",
    "Event",
    "EventScanner",
    "Manifest",
    "NonceError",
    "Protocol",
    "ProtocolParams",
    "RevertDecoder",
    "ScannerHaltedError",
    "ScannerStats",
    "SignerError",
    "TransactionTimeoutError",
    "Transactor",
    "advance_time",
    "connect",
    "connect_from_env",
    "contract_name",
    "deploy_anchor",
    "deploy_protocol",
    "derive_account",
    "error_selectors",
    "funded_accounts",
    "is_in_process",
    "load_artifact",
    "load_signer",
    "mine",
    "register_contract_name",
    "retry",
    "revert_data",
    "revert_to",
    "snapshot",
]
