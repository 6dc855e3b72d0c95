"""PublicAnchor: contiguous ranges per source chain, roots posted by the relayer, proofs verified by view."""

import brownie
import pytest
from conftest import ZERO32, b32, err, plain

from orchestrator.merkle import MerkleTree, leaf_hash

SRC = 31337
MAX64 = 2**64 - 1


def h(b):
    return "0x" + b.hex()


def test_post_root_records_anchor(anchor, relayer):
    tx = anchor.postRoot(SRC, 0, 99, b32("root"), {"from": relayer})
    assert tx.return_value == 1
    assert tx.events["RootAnchored"] == {
        "anchorId": 1,
        "sourceChainId": SRC,
        "fromBlock": 0,
        "toBlock": 99,
        "root": b32("root"),
    }
    assert plain(anchor.getAnchor(1)) == (SRC, 0, 99, b32("root"), tx.timestamp)
    assert anchor.anchorCount() == 1
    assert anchor.lastToBlock(SRC) == 99
    assert anchor.hasAnchors(SRC)


def test_ranges_must_be_contiguous_per_chain(anchor, relayer):
    anchor.postRoot(SRC, 10, 20, b32("a"), {"from": relayer})
    with brownie.reverts(err("AnchorNotContiguous", SRC, 21, 22)):
        anchor.postRoot(SRC, 22, 30, b32("b"), {"from": relayer})
    with brownie.reverts(err("AnchorNotContiguous", SRC, 21, 15)):
        anchor.postRoot(SRC, 15, 30, b32("b"), {"from": relayer})
    anchor.postRoot(SRC, 21, 21, b32("b"), {"from": relayer})
    anchor.postRoot(1, 500, 600, b32("c"), {"from": relayer})  # another chain starts anywhere
    assert anchor.lastToBlock(SRC) == 21
    assert anchor.lastToBlock(1) == 600
    assert anchor.anchorCount() == 3


def test_first_range_may_end_at_block_zero(anchor, relayer):
    assert not anchor.hasAnchors(SRC) and anchor.lastToBlock(SRC) == 0
    anchor.postRoot(SRC, 0, 0, b32("genesis"), {"from": relayer})
    assert anchor.hasAnchors(SRC)
    with brownie.reverts(err("AnchorNotContiguous", SRC, 1, 0)):
        anchor.postRoot(SRC, 0, 5, b32("again"), {"from": relayer})


def test_bad_input_reverts(anchor, relayer):
    with brownie.reverts(err("AnchorZeroRoot")):
        anchor.postRoot(SRC, 0, 1, ZERO32, {"from": relayer})
    with brownie.reverts(err("AnchorInvalidRange", 5, 4)):
        anchor.postRoot(SRC, 5, 4, b32("r"), {"from": relayer})
    with brownie.reverts(err("AnchorInvalidRange", 0, MAX64)):
        anchor.postRoot(SRC, 0, MAX64, b32("r"), {"from": relayer})
    with brownie.reverts(err("AnchorInvalidChainId", 0)):
        anchor.postRoot(0, 0, 1, b32("r"), {"from": relayer})
    with brownie.reverts(err("AnchorInvalidChainId", 2**64)):
        anchor.postRoot(2**64, 0, 1, b32("r"), {"from": relayer})
    assert anchor.anchorCount() == 0


def test_post_root_by_non_relayer_reverts(anchor, rando):
    with brownie.reverts(err("AccessControlUnauthorizedAccount", rando, anchor.RELAYER_ROLE())):
        anchor.postRoot(SRC, 0, 1, b32("r"), {"from": rando})


@pytest.fixture(scope="module")
def records():
    leaves = [
        leaf_hash(["uint256", "bytes32"], [i, bytes.fromhex(b32(f"event{i}")[2:])])
        for i in range(7)
    ]
    return leaves, MerkleTree.build(leaves)


def test_verify_accepts_python_built_proofs(anchor, relayer, records):
    leaves, tree = records
    anchor.postRoot(SRC, 1, 50, h(tree.root), {"from": relayer})
    for leaf in leaves:
        assert anchor.verify(1, h(leaf), [h(p) for p in tree.proof(leaf)])


def test_verify_rejects_wrong_leaf_or_proof(anchor, relayer, records):
    leaves, tree = records
    anchor.postRoot(SRC, 1, 50, h(tree.root), {"from": relayer})
    assert not anchor.verify(1, b32("forged"), [h(p) for p in tree.proof(leaves[0])])
    assert not anchor.verify(1, h(leaves[0]), [h(p) for p in tree.proof(leaves[1])])
    assert not anchor.verify(1, h(leaves[0]), [])


def test_verify_unknown_anchor_reverts(anchor):
    with brownie.reverts(err("AnchorUnknown", 3)):
        anchor.verify(3, b32("leaf"), [])
