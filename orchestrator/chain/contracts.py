"""The LedgerLoRA protocol as web3 contracts: loading a deployment and deploying one.

:func:`deploy_protocol` is the one deployment implementation: it deploys the brownie build
artifacts with plain web3 (the embedded in-process chain has no brownie network) and wires the
roles. ``scripts/deploy.py`` calls it through brownie's provider with the deployer's key, the
CLI's ``deploy``, the demo and the tests call it directly; all write the same
``deployments/<chainid>.json`` manifest.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils import is_address, to_checksum_address
from web3 import Web3
from web3.contract import Contract

from orchestrator.chain.artifacts import (
    DEFAULT_BUILD_DIR,
    PROJECT_ROOT,
    ArtifactError,
    ContractRecord,
    Manifest,
    load_artifact,
    register_contract_name,
)
from orchestrator.chain.multicall import CANONICAL_ADDRESS
from orchestrator.chain.tx import Transactor
from orchestrator.errors import ConfigError

log = logging.getLogger(__name__)

#: The private-chain contracts, in deployment order.
PROTOCOL_CONTRACTS: tuple[str, ...] = (
    "LedgerToken",
    "Staking",
    "Membership",
    "ContributionRegistry",
    "Rounds",
    "Unlearning",
)
#: Batched view calls (contracts/Multicall3.sol), deployed with the protocol on local chains that
#: lack the canonical one.
MULTICALL_CONTRACT = "Multicall3"
#: The public-chain contract (deployed separately by :func:`deploy_anchor`).
ANCHOR_CONTRACT = "PublicAnchor"

TOKEN = 10**18  # LedgerToken has 18 decimals (OpenZeppelin ERC20 default)


class Protocol:
    """Contracts of one deployment, by name: ``protocol.contract("Rounds")`` or ``protocol.Rounds``."""

    def __init__(self, w3: Web3, manifest: Manifest, contracts: dict[str, Contract]) -> None:
        self.w3 = w3
        self.manifest = manifest
        self._contracts = contracts

    @classmethod
    def from_manifest(
        cls,
        w3: Web3,
        manifest: Manifest | Path,
        build_dir: Path = DEFAULT_BUILD_DIR,
        *,
        check_code: bool = True,
    ) -> Protocol:
        """Bind every contract of ``manifest`` (object or path) to its artifact's ABI.

        ``check_code`` verifies the manifest belongs to this chain (same chain id, code at every
        address), which catches the classic stale ``deployments/<id>.json`` after a chain restart.
        """
        if not isinstance(manifest, Manifest):
            manifest = Manifest.read(Path(manifest))
        chain_id = int(w3.eth.chain_id)
        if manifest.chain_id != chain_id:
            raise ArtifactError(
                f"the manifest is for chain {manifest.chain_id} but the connection serves chain "
                f"{chain_id}; load deployments/{chain_id}.json or connect to the right node"
            )
        contracts: dict[str, Contract] = {}
        for name, record in manifest.contracts.items():
            artifact_name = Path(record.artifact).stem if record.artifact else name
            artifact = load_artifact(artifact_name, build_dir)
            if check_code and len(w3.eth.get_code(record.address)) == 0:
                raise ArtifactError(
                    f"no contract code at {record.address} ({name}) on chain {chain_id}: the manifest "
                    "is stale (was the chain restarted?); deploy again"
                )
            contracts[name] = w3.eth.contract(address=record.address, abi=artifact.abi)
            register_contract_name(w3, record.address, name)
        return cls(w3, manifest, contracts)

    def contract(self, name: str) -> Contract:
        try:
            return self._contracts[name]
        except KeyError:
            raise ArtifactError(
                f"the deployment has no contract {name!r} (has: {', '.join(sorted(self._contracts))})"
            ) from None

    def __getattr__(self, name: str) -> Contract:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._contracts[name]
        except KeyError:
            raise AttributeError(f"the deployment has no contract {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._contracts

    def __iter__(self) -> Iterator[str]:
        return iter(self._contracts)

    @property
    def names(self) -> list[str]:
        return list(self._contracts)

    def role(self, contract: str, role: str) -> bytes:
        """The bytes32 value of a role constant, e.g. ``role("Membership", "AGGREGATOR_ROLE")``."""
        return bytes(getattr(self.contract(contract).functions, role)().call())


def _checksum(value: str, what: str) -> str:
    if not is_address(value):
        raise ValueError(f"{what} must be an address, got {value!r}")
    return to_checksum_address(value)


#: Integer parameters, each overridable by an ORCH_<NAME> environment variable.
_SHARED_INT_PARAMS = ("initial_supply", "min_stake", "unbond_delay", "response_window", "slash_amount",
                      "request_bond", "claim_window", "anchor_max_range", "org_tokens", "reward_pool")


@dataclass
class ProtocolParams:
    """Deployment parameters of the private-chain protocol (amounts in token wei, times in s).

    ``local`` turns on the development set-up (test tokens, funded pool, roles to the
    deployer); ``scripts/deploy.py`` sets it only on local networks.
    """

    initial_supply: int = field(default=1_000_000_000 * TOKEN, metadata={"help": "LLS minted to the deployer (governor)"})
    min_stake: int = field(default=100 * TOKEN, metadata={"help": "stake needed to join, and for aggregators to act"})
    unbond_delay: int = field(default=7 * 24 * 3600, metadata={"help": "seconds between requestUnbond and withdraw"})
    response_window: int = field(default=3 * 24 * 3600, metadata={"help": "seconds an aggregator has to complete unlearning"})
    slash_amount: int = field(default=50 * TOKEN, metadata={"help": "taken from an aggregator that misses a deadline"})
    request_bond: int = field(default=10 * TOKEN, metadata={"help": "posted per unlearning request; refunded unless judged void"})
    claim_window: int = field(default=30 * 24 * 3600, metadata={"help": "seconds after finalization to claim a round's rewards"})
    anchor_max_range: int = field(default=100_000, metadata={"help": "PublicAnchor: most blocks one anchored range covers"})
    org_tokens: int = field(default=10_000 * TOKEN, metadata={"help": "local: test tokens sent to each org"})
    reward_pool: int = field(default=100_000 * TOKEN, metadata={"help": "local: initial funding of the reward pool"})
    orgs: Sequence[str] = field(default=(), metadata={"help": "local: org addresses that get test tokens"})
    local: bool = field(default=True, metadata={"help": "development conveniences as scripts/deploy.py on local networks"})
    aggregators: Sequence[str] | None = field(default=None, metadata={"help": "local: AGGREGATOR_ROLE holders (default: the deployer)"})
    relayers: Sequence[str] | None = field(default=None, metadata={"help": "local: RELAYER_ROLE holders (default: the deployer)"})
    default_aggregator: str | None = field(default=None, metadata={"help": "local: answerable for unacknowledged unlearning (default: first aggregator)"})
    base_model_cid: bytes | None = field(default=None, metadata={"help": "bytes32 CID digest of version 0 (setBaseModel)"})
    network: str = field(default="in-process", metadata={"help": "network name written to the manifest"})

    def __post_init__(self) -> None:
        for name in _SHARED_INT_PARAMS:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("unbond_delay", "response_window", "claim_window", "anchor_max_range"):
            if getattr(self, name) >= 2**64:
                raise ValueError(f"{name} must fit 64 bits, got {getattr(self, name)}")
        if self.response_window == 0:
            raise ValueError("response_window must be > 0 seconds")
        if self.response_window > self.unbond_delay:
            raise ValueError(
                f"response_window {self.response_window} exceeds unbond_delay {self.unbond_delay}: an aggregator "
                "could withdraw its stake before a missed deadline can be slashed; lower ORCH_RESPONSE_WINDOW "
                "or raise ORCH_UNBOND_DELAY")
        if self.anchor_max_range == 0:
            raise ValueError("anchor_max_range must be positive (the most blocks one anchor may cover)")
        if self.slash_amount == 0:
            raise ValueError("slash_amount must be positive, or a missed unlearning deadline costs nothing")
        self.orgs = tuple(_checksum(a, "orgs[]") for a in self.orgs)
        if self.aggregators is not None:
            self.aggregators = tuple(_checksum(a, "aggregators[]") for a in self.aggregators)
        if self.relayers is not None:
            self.relayers = tuple(_checksum(a, "relayers[]") for a in self.relayers)
        if self.default_aggregator is not None:
            self.default_aggregator = _checksum(self.default_aggregator, "default_aggregator")
        if self.base_model_cid is not None and len(self.base_model_cid) != 32:
            raise ValueError(f"base_model_cid must be 32 bytes, got {len(self.base_model_cid)}")
        if self.local:
            needed = self.min_stake + len(self.orgs) * self.org_tokens + self.reward_pool
            if needed > self.initial_supply:
                raise ValueError(
                    f"initial_supply {self.initial_supply} cannot cover the deployer's stake, the org tokens "
                    f"and the reward pool ({needed}); raise initial_supply or lower the others"
                )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ProtocolParams:
        """Defaults overridden by ``ORCH_<FIELD>`` (e.g. ``ORCH_MIN_STAKE=5e20``) as in scripts/deploy.py."""
        env = os.environ if env is None else env
        kwargs: dict[str, Any] = {}
        for name in _SHARED_INT_PARAMS:
            raw = env.get(f"ORCH_{name.upper()}")
            if raw is None or raw == "":
                continue
            try:
                kwargs[name] = int(raw) if raw.strip().isdigit() else int(float(raw))
            except ValueError:
                raise ConfigError(f"ORCH_{name.upper()} must be an integer, got {raw!r}") from None
        kwargs.update(overrides)
        return cls(**kwargs)

    def manifest_params(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in _SHARED_INT_PARAMS}
        out["num_orgs"] = len(self.orgs)
        out["local"] = self.local
        if self.base_model_cid is not None:
            out["base_model_cid"] = "0x" + self.base_model_cid.hex()
        return out


def _artifact_ref(build_dir: Path, name: str) -> str:
    path = Path(build_dir) / f"{name}.json"
    try:  # relative to the project, so a manifest does not reveal the deployer's folders
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def deploy_protocol(
    w3: Web3,
    transactor: Transactor,
    params: ProtocolParams | None = None,
    *,
    build_dir: Path = DEFAULT_BUILD_DIR,
    manifest_path: Path | None = None,
) -> Manifest:
    """Deploy and wire the private-chain protocol from the build artifacts; returns its manifest.

    The deployer is the governor (Membership's GOVERNOR_ROLE, read by Rounds and Unlearning at
    call time); the registry reads contributions from Rounds (``setRounds``); Rounds gets
    REGISTRAR on the registry; Unlearning gets REGISTRAR and REVOKER on the registry (REVOKER
    also lets it replace submissions in Rounds), SLASHER and LOCKER on Staking; Membership gets
    LOCKER on Staking (a member's stake is locked while it is a member). On any network the
    named aggregators and relayers get their Membership roles and the first aggregator becomes
    the default aggregator (answerable for new unlearning requests). With ``params.local``
    (development chains) also: the deployer takes those roles when none are named and stakes
    ``min_stake`` if it is an aggregator, the orgs receive ``org_tokens``, the reward pool is
    funded and, unless the chain has the canonical Multicall3, a Multicall3 is deployed and listed
    in the manifest (the daemons' batched reads use it).
    """
    params = params or ProtocolParams()
    deployer = transactor.address
    artifacts = {name: load_artifact(name, build_dir) for name in PROTOCOL_CONTRACTS}

    records: dict[str, ContractRecord] = {}

    def deploy(name: str, *args: Any) -> Contract:
        contract, receipt = transactor.deploy_with_receipt(artifacts[name], *args)
        records[name] = ContractRecord(contract.address, _artifact_ref(build_dir, name), receipt["blockNumber"])
        return contract

    # The deployer is the governor, as in scripts/deploy.py (hand over with AccessControl later).
    token = deploy("LedgerToken", deployer, params.initial_supply)
    staking = deploy("Staking", token.address, deployer, params.unbond_delay)
    membership = deploy("Membership", deployer, staking.address, params.min_stake)
    registry = deploy("ContributionRegistry", deployer)
    rounds = deploy("Rounds", token.address, membership.address, registry.address, params.claim_window)
    unlearning = deploy("Unlearning", membership.address, staking.address, registry.address,
                        rounds.address, params.response_window, params.slash_amount, params.request_bond)

    send = transactor.transact
    registrar = registry.functions.REGISTRAR_ROLE().call()
    revoker = registry.functions.REVOKER_ROLE().call()
    send(registry.functions.setRounds(rounds.address))
    send(registry.functions.grantRole(registrar, rounds.address))
    send(registry.functions.grantRole(registrar, unlearning.address))
    send(registry.functions.grantRole(revoker, unlearning.address))
    send(staking.functions.grantRole(staking.functions.SLASHER_ROLE().call(), unlearning.address))
    locker = staking.functions.LOCKER_ROLE().call()
    send(staking.functions.grantRole(locker, membership.address))  # before anyone joins
    send(staking.functions.grantRole(locker, unlearning.address))
    if params.base_model_cid is not None:
        send(registry.functions.setBaseModel(params.base_model_cid))

    # Roles named explicitly are granted on any network; the deployer gets them by default only
    # on a development chain (``local``), as scripts/deploy.py does.
    fallback = (deployer,) if params.local else ()
    aggregators = tuple(params.aggregators) if params.aggregators is not None else fallback
    relayers = tuple(params.relayers) if params.relayers is not None else fallback
    aggregator_role = membership.functions.AGGREGATOR_ROLE().call()
    relayer_role = membership.functions.RELAYER_ROLE().call()
    for account in aggregators:
        send(membership.functions.grantRole(aggregator_role, account))
    for account in relayers:
        send(membership.functions.grantRole(relayer_role, account))
    default_aggregator = params.default_aggregator or (aggregators[0] if aggregators else None)
    if default_aggregator is None and params.local:
        default_aggregator = deployer
    if default_aggregator is not None:
        send(unlearning.functions.setDefaultAggregator(default_aggregator))
    if params.local:
        if params.min_stake and deployer in aggregators:
            # An aggregator answers unlearning requests, so it must be slashable; other
            # aggregators stake from their own wallets.
            send(token.functions.approve(staking.address, params.min_stake))
            send(staking.functions.stake(params.min_stake))
        for org in params.orgs:
            if params.org_tokens:
                send(token.functions.transfer(org, params.org_tokens))
        if params.reward_pool:
            send(token.functions.approve(rounds.address, params.reward_pool))
            send(rounds.functions.fundRewards(params.reward_pool))

    if params.local:
        # Batched reads (orchestrator.chain.multicall): the canonical Multicall3 where the chain
        # has one, else our own copy, listed in the manifest.
        if len(w3.eth.get_code(Web3.to_checksum_address(CANONICAL_ADDRESS))) == 0:
            artifacts[MULTICALL_CONTRACT] = load_artifact(MULTICALL_CONTRACT, build_dir)
            deploy(MULTICALL_CONTRACT)

    manifest = Manifest(
        chain_id=int(w3.eth.chain_id),
        network=params.network,
        deployer=deployer,
        contracts=records,
        params=params.manifest_params(),
        extra={"orgs": list(params.orgs)} if params.local else {},
    )
    if manifest_path is not None:
        manifest.write(manifest_path)
    log.info("deployed the protocol on chain %d: %s", manifest.chain_id,
             ", ".join(f"{n}={r.address}" for n, r in records.items()))
    return manifest


def deploy_anchor(
    w3: Web3,
    transactor: Transactor,
    relayer: str | Sequence[str],
    *,
    build_dir: Path = DEFAULT_BUILD_DIR,
    network: str = "in-process",
    manifest_path: Path | None = None,
    max_range: int | None = None,
) -> Manifest:
    """Deploy ``PublicAnchor`` governed by the deployer and grant RELAYER_ROLE to ``relayer``.

    ``max_range``: the most blocks one anchored range may cover (default
    ``ProtocolParams().anchor_max_range``, overridable by ``ORCH_ANCHOR_MAX_RANGE``).

    As ``scripts/deploy_anchor.py``: when ``manifest_path`` already holds a manifest of the same
    chain (the anchor on the same local chain as the protocol), the anchor is merged into it.
    """
    relayers = (relayer,) if isinstance(relayer, str) else tuple(relayer)
    relayers = tuple(_checksum(r, "relayer") for r in relayers)
    artifact = load_artifact(ANCHOR_CONTRACT, build_dir)
    if max_range is None:
        max_range = ProtocolParams.from_env(local=False).anchor_max_range
    if not 0 < int(max_range) < 2**64:
        raise ValueError(f"max_range must be in 1..2**64-1 blocks, got {max_range}")
    anchor, receipt = transactor.deploy_with_receipt(artifact, transactor.address, int(max_range))
    role = anchor.functions.RELAYER_ROLE().call()
    for account in relayers:
        transactor.transact(anchor.functions.grantRole(role, account))
    record = ContractRecord(anchor.address, _artifact_ref(build_dir, ANCHOR_CONTRACT), receipt["blockNumber"])
    chain_id = int(w3.eth.chain_id)
    manifest: Manifest | None = None
    if manifest_path is not None and Path(manifest_path).is_file():
        existing = Manifest.read(Path(manifest_path))
        if existing.chain_id == chain_id:
            manifest = existing
            manifest.contracts[ANCHOR_CONTRACT] = record
    if manifest is None:
        manifest = Manifest(chain_id=chain_id, network=network, deployer=transactor.address,
                            contracts={ANCHOR_CONTRACT: record})
    manifest.extra["anchor_relayers"] = list(relayers)
    manifest.params["anchor_max_range"] = int(max_range)
    if manifest_path is not None:
        manifest.write(manifest_path)
    return manifest
