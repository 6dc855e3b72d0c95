"""The event indexer on a real anvil node: resumable across restarts and right after a real reorg."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.chain import (
    AnvilProcess,
    ChainError,
    Protocol,
    ProtocolParams,
    Transactor,
    connect,
    deploy_protocol,
    funded_accounts,
    revert_to,
    snapshot,
)
from orchestrator.chain.anvil import find_anvil
from orchestrator.indexer import Indexer


@pytest.fixture()
def anvil() -> Iterator[AnvilProcess]:
    try:
        find_anvil()
    except ChainError as exc:
        pytest.skip(f"anvil is not installed ({exc}); `make setup` installs it from npm")
    with AnvilProcess() as node:
        yield node


def _funded(protocol: Protocol) -> list[tuple[int, str, int]]:
    """``RewardsFunded`` straight from the node: (block, tx hash, amount)."""
    logs = protocol.contract("Rounds").events.RewardsFunded().get_logs(from_block=0)
    return [(int(x["blockNumber"]), x["transactionHash"].to_0x_hex(), int(x["args"]["amount"])) for x in logs]


def _indexed(indexer: Indexer) -> list[tuple[int, str, int]]:
    return [(e.block, e.tx_hash, int(e["amount"])) for e in indexer.events("RewardsFunded")]


def test_indexer_resumes_and_follows_a_reorg_without_orphans_or_duplicates(anvil: AnvilProcess, tmp_path: Path) -> None:
    w3 = connect(anvil.url)
    (governor,) = funded_accounts(w3, 1, seed="indexer-reorg")
    tx = Transactor(w3, governor)
    protocol = Protocol.from_manifest(w3, deploy_protocol(w3, tx, ProtocolParams()))
    rounds, token = protocol.contract("Rounds"), protocol.contract("LedgerToken")
    tx.transact(token.functions.approve(rounds.address, 10**24))
    db = tmp_path / "index.sqlite"

    indexer = Indexer(protocol, db, reorg_depth=4)
    assert indexer.sync() > 0  # the deployment's own events (roles, funding)
    deployed = indexer.count()
    fork = snapshot(w3)
    for amount in (1, 2):
        tx.transact(rounds.functions.fundRewards(amount))
    assert indexer.sync() == 2
    assert _indexed(indexer) == _funded(protocol)
    indexer.close()

    # Resumable: a new process on the same file indexes nothing twice, then only what is new.
    indexer = Indexer(protocol, db, reorg_depth=4)
    assert indexer.sync() == 0
    assert indexer.count() == deployed + 2

    # A real reorg: the two funding blocks are replaced by a longer branch with other amounts.
    revert_to(w3, fork)
    tx.resync_nonce()
    for amount in (11, 12, 13):
        tx.transact(rounds.functions.fundRewards(amount))
    indexer.sync()
    amounts = [a for _, _, a in _indexed(indexer)]
    assert amounts[-3:] == [11, 12, 13] and 1 not in amounts and 2 not in amounts  # nothing orphaned
    assert _indexed(indexer) == _funded(protocol)  # same blocks and transactions as the node's
    assert indexer.count() == deployed + 3
    assert indexer.lag() == 0
    indexer.close()
