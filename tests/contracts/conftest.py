"""Shared fixtures of the contract tests (brownie against anvil).

Accounts: ``gov`` (accounts[0]) governs every contract, ``aggregator`` holds AGGREGATOR_ROLE and
the minimum stake, ``relayer`` holds RELAYER_ROLE, ``orgs`` are four staked member organisations,
``outsider`` holds tokens but never joined, ``rando`` holds nothing. Every test runs in its own
snapshot (autouse ``fn_isolation``), so module-scoped deployments are shared cheaply.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from brownie import (
    ContributionRegistry,
    LedgerToken,
    Membership,
    PublicAnchor,
    Rounds,
    Staking,
    Unlearning,
    accounts,
    chain,
    web3,
)
from eth_utils import keccak

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TOKEN = 10**18
SUPPLY = 1_000_000 * TOKEN
MIN_STAKE = 100 * TOKEN
UNBOND_DELAY = 7 * 24 * 3600
RESPONSE_WINDOW = 3 * 24 * 3600
SLASH_AMOUNT = 50 * TOKEN
ORG_TOKENS = 10_000 * TOKEN
REWARD_POOL = 50_000 * TOKEN
ROUND_SECONDS = 3600
REQUEST_BOND = 10 * TOKEN
CLAIM_WINDOW = 30 * 24 * 3600
MAX_SAMPLES = 1_000_000
ANCHOR_MAX_RANGE = 10_000
ZERO32 = "0x" + "00" * 32


# Unlearning scopes and a Round-scope target
ORG_SCOPE, ROUND_SCOPE, SAMPLES_SCOPE = 0, 1, 2


def rid32(round_id: int) -> str:
    """``bytes32(roundId)``, the target of a Round-scope unlearning request."""
    return "0x" + round_id.to_bytes(32, "big").hex()


def b32(label: str) -> str:
    """A distinct, reproducible bytes32 (0x-hex) for a label (stand-in CID digests, keys, reasons)."""
    return "0x" + keccak(text=label).hex()


def now() -> int:
    """Timestamp of the latest block (brownie's ``chain.time()`` drifts from anvil's after reverts)."""
    return int(web3.eth.get_block("latest").timestamp)


def advance(seconds: int) -> int:
    """Mines a block ``seconds`` after the latest one, so calls and gas estimation see the new time."""
    target = now() + seconds
    web3.provider.make_request("evm_setNextBlockTimestamp", [target])
    chain.mine()
    return target


def plain(value: Any) -> Any:
    """A call's return value as plain Python (tuples, int, bool, 0x-hex str, checksum address).

    brownie 1.22 (compiled with mypyc) cannot compare its ReturnValue / Wei with plain tuples.
    """
    if isinstance(value, (list, tuple)):
        return tuple(plain(v) for v in value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if hasattr(value, "address"):
        return str(value.address)
    return str(value)


@pytest.fixture(autouse=True)
def isolation(fn_isolation: Any) -> None:
    _share_pc_maps()


def _share_pc_maps() -> None:
    """brownie 1.22.2 leaves the program-counter map out of the build data of a deployed contract
    that has immutables, so ``--coverage`` records nothing for it; give each deployed instance its
    container's map (only read for coverage and source-level traces)."""
    from brownie import Multicall3

    for container in (ContributionRegistry, LedgerToken, Membership, Multicall3, PublicAnchor, Rounds, Staking, Unlearning):
        pc_map = container._build.get("pcMap")
        for deployed in container:
            if pc_map is not None and "pcMap" not in deployed._build:
                deployed._build["pcMap"] = pc_map


def pytest_configure(config: Any) -> None:
    """Registers the ``view_coverage`` marker (see pytest_collection_modifyitems).

    brownie 1.22.2's mypyc build raises ``TypeError: dict object expected; got list`` when it
    merges or prints non-empty coverage data at the end of the session. The per-transaction data
    it stores in build/tests.json is sound: tools/coverage_gate.py reports from it (Makefile), so
    brownie's own summary and reports/coverage.json are switched off."""
    config.addinivalue_line("markers", "view_coverage: under --coverage, trace this test's view calls too")
    from brownie.test import coverage, output

    coverage.get_merged_coverage_eval = lambda cov_eval=None: {}
    output._build_coverage_output = lambda coverage_eval: [
        "see tools/coverage_gate.py build/tests.json (brownie's own report is off, tests/contracts/conftest.py)"
    ]
    output._save_coverage_report = lambda *args, **kwargs: None


def pytest_collection_modifyitems(items: list[Any]) -> None:
    """Under ``--coverage`` brownie sends every view call as a traced transaction, which is slow;
    calls stay calls except in the few tests marked ``view_coverage`` that exercise the views'
    own branches (most views also run inside the transactions that use them)."""
    for item in items:
        if item.get_closest_marker("view_coverage") is None:
            item.add_marker(pytest.mark.no_call_coverage)


@pytest.fixture(scope="module")
def gov() -> Any:
    return accounts[0]


@pytest.fixture(scope="module")
def aggregator() -> Any:
    return accounts[1]


@pytest.fixture(scope="module")
def relayer() -> Any:
    return accounts[2]


@pytest.fixture(scope="module")
def orgs() -> list[Any]:
    return [accounts[3], accounts[4], accounts[5], accounts[6]]


@pytest.fixture(scope="module")
def outsider() -> Any:
    return accounts[7]


@pytest.fixture(scope="module")
def rando() -> Any:
    return accounts[8]


@pytest.fixture(scope="module")
def token(gov: Any) -> Any:
    return LedgerToken.deploy(gov, SUPPLY, {"from": gov})


@pytest.fixture(scope="module")
def staking(token: Any, gov: Any) -> Any:
    return Staking.deploy(token, gov, UNBOND_DELAY, {"from": gov})


@pytest.fixture(scope="module")
def membership(staking: Any, gov: Any) -> Any:
    m = Membership.deploy(gov, staking, MIN_STAKE, {"from": gov})
    staking.grantRole(staking.LOCKER_ROLE(), m, {"from": gov})
    return m


@pytest.fixture(scope="module")
def registry(gov: Any) -> Any:
    return ContributionRegistry.deploy(gov, {"from": gov})


@pytest.fixture(scope="module")
def rounds(gov: Any, token: Any, membership: Any, registry: Any) -> Any:
    r = Rounds.deploy(token, membership, registry, CLAIM_WINDOW, {"from": gov})
    registry.setRounds(r, {"from": gov})
    registry.grantRole(registry.REGISTRAR_ROLE(), r, {"from": gov})
    return r


@pytest.fixture(scope="module")
def unlearning(gov: Any, membership: Any, staking: Any, registry: Any, rounds: Any) -> Any:
    u = Unlearning.deploy(
        membership,
        staking,
        registry,
        rounds,
        RESPONSE_WINDOW,
        SLASH_AMOUNT,
        REQUEST_BOND,
        {"from": gov},
    )
    registry.grantRole(registry.REGISTRAR_ROLE(), u, {"from": gov})
    registry.grantRole(registry.REVOKER_ROLE(), u, {"from": gov})
    staking.grantRole(staking.SLASHER_ROLE(), u, {"from": gov})
    staking.grantRole(staking.LOCKER_ROLE(), u, {"from": gov})
    return u


@pytest.fixture(scope="module")
def anchor(gov: Any, relayer: Any) -> Any:
    a = PublicAnchor.deploy(gov, ANCHOR_MAX_RANGE, {"from": gov})
    a.grantRole(a.RELAYER_ROLE(), relayer, {"from": gov})
    return a


@pytest.fixture(scope="module")
def funded(token: Any, gov: Any, aggregator: Any, orgs: list[Any], outsider: Any) -> None:
    """Tokens for the aggregator, the orgs and the outsider."""
    for account in [aggregator, *orgs, outsider]:
        token.transfer(account, ORG_TOKENS, {"from": gov})


@pytest.fixture(scope="module")
def stake_for(token: Any, staking: Any) -> Callable[[Any, int], Any]:
    """Factory: approve and stake ``amount`` for ``account``; returns the stake transaction."""

    def _stake(account: Any, amount: int) -> Any:
        token.approve(staking, amount, {"from": account})
        return staking.stake(amount, {"from": account})

    return _stake


@pytest.fixture(scope="module")
def members(
    funded: None, membership: Any, stake_for: Callable[[Any, int], Any], orgs: list[Any]
) -> list[Any]:
    """The orgs, staked and joined with keys ``b32('key:<address>')``."""
    for org in orgs:
        stake_for(org, MIN_STAKE)
        membership.join(b32(f"key:{org.address}"), f"ipfs://meta/{org.address}", {"from": org})
    return orgs


@pytest.fixture(scope="module")
def staked_aggregator(
    funded: None, membership: Any, stake_for: Callable[[Any, int], Any], aggregator: Any, gov: Any
) -> Any:
    membership.grantRole(membership.AGGREGATOR_ROLE(), aggregator, {"from": gov})
    stake_for(aggregator, MIN_STAKE)
    return aggregator


@pytest.fixture(scope="module")
def pool(token: Any, rounds: Any, gov: Any) -> int:
    """The reward pool funded with REWARD_POOL tokens by the governor."""
    token.approve(rounds, REWARD_POOL, {"from": gov})
    rounds.fundRewards(REWARD_POOL, {"from": gov})
    return REWARD_POOL


@pytest.fixture(scope="module")
def protocol(
    token: Any,
    staking: Any,
    membership: Any,
    registry: Any,
    rounds: Any,
    unlearning: Any,
    members: list[Any],
    staked_aggregator: Any,
    pool: int,
    gov: Any,
) -> dict[str, Any]:
    """The wired private-chain protocol with members, a staked aggregator and a funded pool.

    The members and the governor approve Unlearning for request bonds.
    """
    for account in [*members, gov]:
        token.approve(unlearning, 100 * REQUEST_BOND, {"from": account})
    return {
        "token": token,
        "staking": staking,
        "membership": membership,
        "registry": registry,
        "rounds": rounds,
        "unlearning": unlearning,
    }


@pytest.fixture(scope="module")
def open_round(rounds: Any, staked_aggregator: Any) -> Callable[..., int]:
    """Factory: the aggregator opens a round (deadline ROUND_SECONDS ahead); returns its id."""

    def _open(
        budget: int = 0, config: str = "config", seconds: int = ROUND_SECONDS, max_samples: int = MAX_SAMPLES
    ) -> int:
        deadline = now() + seconds
        tx = rounds.openRound(b32(config), deadline, budget, max_samples, {"from": staked_aggregator})
        return int(tx.return_value)

    return _open


@pytest.fixture(scope="module")
def submit(rounds: Any) -> Callable[..., Any]:
    """Factory: ``org`` submits to ``round_id`` with CID/commitment derived from (round, org)."""

    def _submit(round_id: int, org: Any, num_samples: int = 100) -> Any:
        cid = b32(f"adapter:{round_id}:{org.address}")
        commitment = b32(f"data:{round_id}:{org.address}")
        return rounds.submitUpdate(round_id, cid, num_samples, commitment, {"from": org})

    return _submit


@pytest.fixture(scope="module")
def finalized_round(
    protocol: dict[str, Any],
    open_round: Callable[..., int],
    submit: Callable[..., Any],
    staked_aggregator: Any,
) -> Callable[..., int]:
    """Factory: a round in which ``orgs`` submitted, closed and finalized with ``rewards_root``."""

    def _make(
        orgs: list[Any],
        rewards_root: str = ZERO32,
        budget: int = 0,
        model: str = "model",
        rewards_total: int | None = None,
    ) -> int:
        rounds = protocol["rounds"]
        rid = open_round(budget)
        for org in orgs:
            submit(rid, org)
        rounds.closeRound(rid, {"from": staked_aggregator})
        rounds.finalizeRound(
            rid,
            b32(f"{model}:{rid}"),
            rewards_root,
            budget if rewards_total is None else rewards_total,
            b32(f"metrics:{rid}"),
            {"from": staked_aggregator},
        )
        return rid

    return _make


def err(name: str, *args: Any) -> str:
    """The revert string brownie 1.22 decodes for custom error ``name(args...)``.

    brownie prints ``Name: a, b`` with each decoded value's ``str``: addresses lower-case hex,
    bytes32 as a Python bytes literal, enums and integers as decimal, booleans as True/False.
    """
    parts = []
    for a in args:
        if hasattr(a, "address"):
            a = a.address
        if isinstance(a, (bytes, bytearray)):
            a = "0x" + bytes(a).hex()
        if isinstance(a, str) and a.startswith("0x") and len(a) == 42:
            parts.append(a.lower())
        elif isinstance(a, str) and a.startswith("0x") and len(a) == 66:
            parts.append(str(bytes.fromhex(a[2:])))
        elif isinstance(a, bool):
            parts.append(str(a))
        elif isinstance(a, int):
            parts.append(str(int(a)))
        else:
            parts.append(str(a))
    return f"{name}: {', '.join(parts)}"
