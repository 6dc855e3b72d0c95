"""Deploy and wire the LedgerLoRA private-chain contracts, then write ``deployments/<chainid>.json``.

Usage: ``brownie run scripts/deploy.py [--network X]``.

A thin brownie front end: the wiring itself is :func:`orchestrator.chain.contracts.deploy_protocol`
(the one deployment implementation, also used by ``python -m orchestrator deploy``, the demo and
the tests), called through brownie's web3 connection with the deployer's key as a local signer.

Parameters: :class:`orchestrator.chain.contracts.ProtocolParams` defaults, overridden by
``ORCH_<FIELD>`` environment variables (e.g. ``ORCH_MIN_STAKE=5e20``). On a local network
(development / anvil / a fork) the deployer (``accounts[0]``) is governor, aggregator and
relayer, stakes ``min_stake`` so it can answer unlearning requests, the orgs
``accounts[1..ORCH_NUM_ORGS]`` (default 5) receive test tokens and the reward pool is funded.
On any other network the deployer comes from brownie's encrypted keystore
(``ORCH_DEPLOYER_ACCOUNT``, the id given to ``brownie accounts new``) or a private key in
``ORCH_DEPLOYER_KEY``, and only the cross-contract roles are wired: nothing is minted to anybody.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from orchestrator.chain.artifacts import DEFAULT_BUILD_DIR, Manifest  # noqa: E402
from orchestrator.chain.contracts import PROTOCOL_CONTRACTS, ProtocolParams, deploy_protocol  # noqa: E402

LOCAL_NETWORKS = frozenset({"development", "anvil", "hardhat", "ganache", "geth-dev"})
MANIFEST_DIR = ROOT / "deployments"
#: anvil's well-known development mnemonic (test keys, never for real funds)
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"


def is_local(network_name: str) -> bool:
    return network_name in LOCAL_NETWORKS or network_name.endswith("-fork")


def num_orgs(env: dict[str, str] | None = None) -> int:
    """How many local accounts after the deployer become orgs (``ORCH_NUM_ORGS``, default 5)."""
    raw = (os.environ if env is None else env).get("ORCH_NUM_ORGS", "5")
    if not raw.strip().isdigit() or not 0 <= int(raw) <= 9:
        raise ValueError(f"ORCH_NUM_ORGS must be an integer from 0 to 9 (anvil has 10 accounts); got {raw!r}")
    return int(raw)


def get_deployer() -> Any:
    """accounts[0] on local networks; otherwise a keystore account or a key from the environment."""
    from brownie import accounts, network

    if is_local(network.show_active()):
        return accounts[0]
    if os.environ.get("ORCH_DEPLOYER_ACCOUNT"):
        return accounts.load(os.environ["ORCH_DEPLOYER_ACCOUNT"])
    if os.environ.get("ORCH_DEPLOYER_KEY"):
        return accounts.add(os.environ["ORCH_DEPLOYER_KEY"])
    raise SystemExit(
        f"network {network.show_active()!r} is not local: set ORCH_DEPLOYER_ACCOUNT (a brownie keystore id) "
        "or ORCH_DEPLOYER_KEY (a hex private key)"
    )


def dev_key(account: Any) -> str:
    """The private key of an unlocked anvil dev account (brownie does not expose it)."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    for i in range(20):
        derived = Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        if derived.address == account.address:
            return "0x" + derived.key.hex().removeprefix("0x")
    raise SystemExit(f"{account.address} is not one of anvil's default dev accounts")


def signer_of(account: Any) -> Any:
    """An eth-account signer for a brownie account: its own key, or the anvil dev key."""
    from eth_account import Account

    key = getattr(account, "private_key", None)
    return Account.from_key(key if key else dev_key(account))


def plain_web3() -> Any:
    """A plain web3 over brownie's provider (brownie's own sets a gas-price strategy that would
    add a legacy ``gasPrice`` to the EIP-1559 transactions the orchestrator signs)."""
    from brownie import web3
    from web3 import Web3

    return Web3(web3.provider)


def transactor_for(account: Any, w3: Any = None) -> Any:
    """A :class:`~orchestrator.chain.tx.Transactor` over brownie's connection, signing as ``account``."""
    from orchestrator.chain.tx import Transactor

    return Transactor(w3 if w3 is not None else plain_web3(), signer_of(account))


def build_dir() -> Path:
    """brownie's artifacts, relative when run from the project root (the manifest records the path)."""
    return DEFAULT_BUILD_DIR if Path.cwd().resolve() == ROOT else ROOT / DEFAULT_BUILD_DIR


def deploy_all(deployer: Any, params: ProtocolParams, manifest_path: Path | None = None) -> tuple[dict[str, Any], Manifest]:
    """Deploys and wires the protocol with :func:`deploy_protocol`; returns brownie objects and the manifest."""
    import brownie

    w3 = plain_web3()
    manifest = deploy_protocol(w3, transactor_for(deployer, w3), params, build_dir=build_dir(),
                               manifest_path=manifest_path)
    contracts = {name: getattr(brownie, name).at(manifest.address(name)) for name in PROTOCOL_CONTRACTS}
    return contracts, manifest


def local_params(deployer: Any, network_name: str, orgs: list[Any], **overrides: Any) -> ProtocolParams:
    """The parameters of this network: ``ORCH_*`` overrides, dev set-up only on local networks."""
    local = is_local(network_name)
    return ProtocolParams.from_env(orgs=[o.address for o in orgs] if local else [], local=local,
                                   network=network_name, **overrides)


def main() -> None:
    from brownie import accounts, chain, network

    name = network.show_active()
    deployer = get_deployer()
    orgs = [accounts[i] for i in range(1, num_orgs() + 1)] if is_local(name) else []
    path = Manifest.path_for(chain.id, MANIFEST_DIR)
    contracts, _ = deploy_all(deployer, local_params(deployer, name, orgs), path)
    for contract_name, c in contracts.items():
        print(f"{contract_name:22s} {c.address}")
    print(f"manifest written to {path}")
