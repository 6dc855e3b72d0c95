"""Deploy and wire the LedgerLoRA private-chain contracts, then write ``deployments/<chainid>.json``.

Usage: ``brownie run scripts/deploy.py [--network X]``.

Parameters come from :class:`DeployParams` defaults, overridden by ``ORCH_*`` environment
variables (see :meth:`DeployParams.from_env`). On a local network (development / anvil) the
deployer (``accounts[0]``) is governor, aggregator and relayer, stakes ``min_stake`` so it can
answer unlearning requests, the orgs ``accounts[1..5]`` receive test tokens and the reward pool
is funded. On any other network the deployer comes from brownie's encrypted keystore
(``ORCH_DEPLOYER_ACCOUNT``, the id given to ``brownie accounts new``) or a private key in
``ORCH_DEPLOYER_KEY``; nothing is minted to anybody.

The module imports brownie lazily so that the parameters can be read without it (the
orchestrator deploys the same artifacts to py-evm and mirrors :func:`deploy_all`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

TOKEN = 10**18
LOCAL_NETWORKS = frozenset({"development", "anvil", "hardhat", "ganache", "geth-dev"})
MANIFEST_DIR = Path(__file__).resolve().parent.parent / "deployments"
CONTRACT_ORDER = (
    "LedgerToken",
    "Staking",
    "Membership",
    "ContributionRegistry",
    "Rounds",
    "Unlearning",
)


@dataclass(frozen=True)
class DeployParams:
    """Constructor arguments and local funding, in token base units (18 decimals) and seconds."""

    initial_supply: int = 1_000_000_000 * TOKEN  # minted to the deployer (governor)
    min_stake: int = 100 * TOKEN  # stake needed to join, and for aggregators to act
    unbond_delay: int = 7 * 24 * 3600  # seconds between an unbond request and the withdrawal
    response_window: int = (
        3 * 24 * 3600
    )  # seconds an aggregator has to answer an unlearning request
    slash_amount: int = 50 * TOKEN  # taken from an aggregator that misses a deadline
    request_bond: int = 10 * TOKEN  # posted per unlearning request; refunded unless judged void
    claim_window: int = 30 * 24 * 3600  # seconds after finalization to claim a round's rewards
    anchor_max_range: int = 100_000  # PublicAnchor: most blocks in one anchored range
    org_tokens: int = 10_000 * TOKEN  # local networks: tokens sent to each org account
    num_orgs: int = 5  # local networks: accounts[1..num_orgs] are the orgs
    reward_pool: int = 100_000 * TOKEN  # local networks: initial funding of the reward pool

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"deploy parameter {f.name} must be a non-negative integer; got {value!r}"
                )
        for name in ("unbond_delay", "response_window", "claim_window", "anchor_max_range"):
            if getattr(self, name) >= 2**64:
                raise ValueError(f"{name} must fit 64 bits; got {getattr(self, name)}")
        if self.response_window > self.unbond_delay:
            raise ValueError(
                f"response_window {self.response_window} exceeds unbond_delay {self.unbond_delay}: an aggregator "
                "could withdraw its stake before a missed deadline can be slashed; lower ORCH_RESPONSE_WINDOW "
                "or raise ORCH_UNBOND_DELAY"
            )
        if self.anchor_max_range == 0:
            raise ValueError("anchor_max_range must be positive (the most blocks one anchor may cover)")
        if self.slash_amount == 0:
            raise ValueError(
                "slash_amount must be positive, or a missed unlearning deadline costs nothing"
            )
        local_needs = self.min_stake + self.num_orgs * self.org_tokens + self.reward_pool
        if local_needs > self.initial_supply:
            raise ValueError(
                f"initial_supply {self.initial_supply} cannot cover the local stake, org tokens and reward pool "
                f"({local_needs}); raise ORCH_INITIAL_SUPPLY or lower the others"
            )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> DeployParams:
        """Defaults overridden by ``ORCH_<FIELD>`` (upper case), e.g. ``ORCH_MIN_STAKE=5e20``."""
        env = dict(os.environ if env is None else env)
        kwargs: dict[str, int] = {}
        for f in fields(cls):
            raw = env.get(f"ORCH_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            try:
                kwargs[f.name] = int(raw) if raw.strip().isdigit() else int(float(raw))
            except ValueError:
                raise ValueError(f"ORCH_{f.name.upper()} must be an integer; got {raw!r}") from None
        return cls(**kwargs)


def is_local(network_name: str) -> bool:
    return network_name in LOCAL_NETWORKS or network_name.endswith("-fork")


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


def deploy_all(
    deployer: Any, params: DeployParams, local: bool, orgs: list[Any] | None = None
) -> dict[str, Any]:
    """Deploys the six private-chain contracts and grants the roles they need of each other.

    Returns the brownie contract objects by name. ``local`` adds the development conveniences
    (deployer as aggregator/relayer with stake, test tokens to ``orgs``, funded reward pool).
    """
    from brownie import ContributionRegistry, LedgerToken, Membership, Rounds, Staking, Unlearning

    tx = {"from": deployer}
    token = LedgerToken.deploy(deployer, params.initial_supply, tx)
    staking = Staking.deploy(token, deployer, params.unbond_delay, tx)
    membership = Membership.deploy(deployer, staking, params.min_stake, tx)
    registry = ContributionRegistry.deploy(deployer, tx)
    rounds = Rounds.deploy(token, membership, registry, params.claim_window, tx)
    unlearning = Unlearning.deploy(
        membership,
        staking,
        registry,
        rounds,
        params.response_window,
        params.slash_amount,
        params.request_bond,
        tx,
    )

    registry.setRounds(rounds, tx)
    registry.grantRole(registry.REGISTRAR_ROLE(), rounds, tx)
    registry.grantRole(registry.REGISTRAR_ROLE(), unlearning, tx)
    registry.grantRole(registry.REVOKER_ROLE(), unlearning, tx)
    staking.grantRole(staking.SLASHER_ROLE(), unlearning, tx)
    staking.grantRole(staking.LOCKER_ROLE(), membership, tx)
    staking.grantRole(staking.LOCKER_ROLE(), unlearning, tx)

    if local:
        membership.grantRole(membership.AGGREGATOR_ROLE(), deployer, tx)
        membership.grantRole(membership.RELAYER_ROLE(), deployer, tx)
        unlearning.setDefaultAggregator(deployer, tx)
        if params.min_stake:
            token.approve(staking, params.min_stake, tx)
            staking.stake(params.min_stake, tx)
        for org in orgs or []:
            token.transfer(org, params.org_tokens, tx)
        if params.reward_pool:
            token.approve(rounds, params.reward_pool, tx)
            rounds.fundRewards(params.reward_pool, tx)

    return {
        "LedgerToken": token,
        "Staking": staking,
        "Membership": membership,
        "ContributionRegistry": registry,
        "Rounds": rounds,
        "Unlearning": unlearning,
    }


def contract_entry(contract: Any) -> dict[str, Any]:
    """Address, artifact path and deployment block of a brownie contract object."""
    name = contract._name
    return {
        "address": contract.address,
        "artifact": f"build/contracts/{name}.json",
        "block": contract.tx.block_number if contract.tx is not None else None,
    }


def write_manifest(
    contracts: dict[str, Any],
    deployer: Any,
    params: dict[str, Any],
    extra: dict[str, Any],
    merge: bool = False,
) -> Path:
    """Writes ``deployments/<chainid>.json`` and returns its path.

    ``merge`` keeps the entries already there (the anchor joins the private deployment on a local
    chain); a full deployment starts a fresh file, so no stale address survives a chain restart.
    """
    from brownie import chain, network

    path = MANIFEST_DIR / f"{chain.id}.json"
    manifest: dict[str, Any] = {}
    if merge and path.exists():
        manifest = json.loads(path.read_text())
    entries = dict(manifest.get("contracts", {}))
    entries.update({name: contract_entry(c) for name, c in contracts.items()})
    manifest.update(
        {
            "chain_id": chain.id,
            "network": network.show_active(),
            "deployer": deployer.address,
            "contracts": entries,
            "params": {**manifest.get("params", {}), **params},
            **extra,
        }
    )
    MANIFEST_DIR.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def main() -> None:
    from brownie import accounts, network

    params = DeployParams.from_env()
    local = is_local(network.show_active())
    deployer = get_deployer()
    orgs = [accounts[i] for i in range(1, params.num_orgs + 1)] if local else []
    contracts = deploy_all(deployer, params, local, orgs)
    extra = {"orgs": [o.address for o in orgs]} if local else {}
    path = write_manifest(contracts, deployer, asdict(params), extra)
    for name, c in contracts.items():
        print(f"{name:22s} {c.address}")
    print(f"manifest written to {path}")
