"""Fixtures of the chain-layer tests: real in-process py-evm chains and a real anvil node.

ChainProbe (contracts/test/ChainProbe.sol) is compiled by `brownie compile` (`make setup`)
together with the protocol; the tests read its artifact from build/contracts like the daemons do.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from orchestrator.chain import (
    AnvilProcess,
    Artifact,
    Transactor,
    connect,
    funded_accounts,
    load_artifact,
)

REPO = Path(__file__).resolve().parents[3]
BUILD_DIR = REPO / "build" / "contracts"


@pytest.fixture(scope="session")
def build_dir() -> Path:
    if not (BUILD_DIR / "ChainProbe.json").is_file():
        pytest.fail(f"{BUILD_DIR}/ChainProbe.json is missing: run `make setup` (brownie compile) first")
    return BUILD_DIR


@pytest.fixture(scope="session")
def probe_artifact(build_dir: Path) -> Artifact:
    return load_artifact("ChainProbe", build_dir)


@pytest.fixture()
def w3() -> Web3:
    """A fresh in-process chain per test (about 10 ms): no state leaks between tests."""
    return connect()


@pytest.fixture()
def accounts(w3: Web3) -> list[LocalAccount]:
    return funded_accounts(w3, 4)


@pytest.fixture()
def transactor(w3: Web3, accounts: list[LocalAccount], build_dir: Path) -> Transactor:
    return Transactor(w3, accounts[0], build_dir=build_dir)


@pytest.fixture()
def probe(transactor: Transactor, probe_artifact: Artifact) -> Contract:
    return transactor.deploy(probe_artifact)


@pytest.fixture(scope="module")
def anvil() -> Iterator[AnvilProcess]:
    """One real anvil node per test module (starting one takes about a second)."""
    with AnvilProcess() as node:
        yield node
