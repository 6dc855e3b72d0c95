"""PublicAnchor: contiguous ranges per source chain, roots posted by the relayer, proofs verified by view."""

import brownie
import pytest
from conftest import ANCHOR_MAX_RANGE, ZERO32, b32, err, plain

from eth_abi import encode as abi_encode
from eth_utils import keccak

from orchestrator.merkle import MerkleTree

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


@pytest.mark.view_coverage
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
    """ABI-encoded records and the tree of their double-hashed leaves (as the relayer builds it)."""
    raw = [abi_encode(["uint256", "bytes32"], [i, bytes.fromhex(b32(f"event{i}")[2:])]) for i in range(7)]
    leaves = [keccak(keccak(r)) for r in raw]
    return raw, leaves, MerkleTree.build(leaves)


def test_verify_accepts_python_built_proofs(anchor, relayer, records):
    raw, leaves, tree = records
    anchor.postRoot(SRC, 1, 50, h(tree.root), {"from": relayer})
    for record, leaf in zip(raw, leaves, strict=True):
        assert anchor.verify(1, h(record), [h(p) for p in tree.proof(leaf)])


def test_verify_rejects_wrong_record_or_proof(anchor, relayer, records):
    raw, leaves, tree = records
    anchor.postRoot(SRC, 1, 50, h(tree.root), {"from": relayer})
    assert not anchor.verify(1, h(b"forged"), [h(p) for p in tree.proof(leaves[0])])
    assert not anchor.verify(1, h(raw[0]), [h(p) for p in tree.proof(leaves[1])])
    assert not anchor.verify(1, h(raw[0]), [])


def test_verify_unknown_anchor_reverts(anchor):
    with brownie.reverts(err("AnchorUnknown", 3)):
        anchor.verify(3, h(b"record"), [])


def test_range_longer_than_max_reverts(anchor, relayer):
    top = ANCHOR_MAX_RANGE - 1
    with brownie.reverts(err("AnchorRangeTooLong", 0, top + 1, ANCHOR_MAX_RANGE)):
        anchor.postRoot(SRC, 0, top + 1, b32("r"), {"from": relayer})
    anchor.postRoot(SRC, 0, top, b32("r"), {"from": relayer})  # exactly maxRange blocks
    assert anchor.maxRange() == ANCHOR_MAX_RANGE


@pytest.mark.view_coverage
def test_supersede_rewinds_the_chain(anchor, relayer, gov, rando):
    anchor.postRoot(SRC, 0, 9, b32("a"), {"from": relayer})
    anchor.postRoot(SRC, 10, 19, b32("b"), {"from": relayer})
    with brownie.reverts(err("AnchorNotLatest", 1, 2)):
        anchor.supersede(1, b32("why"), {"from": gov})
    with brownie.reverts(err("AccessControlUnauthorizedAccount", rando, ZERO32)):
        anchor.supersede(2, b32("why"), {"from": rando})
    tx = anchor.supersede(2, b32("why"), {"from": gov})
    assert tx.events["AnchorSuperseded"] == {
        "anchorId": 2, "sourceChainId": SRC, "nextFrom": 10, "reasonHash": b32("why")
    }
    assert anchor.isSuperseded(2) and anchor.lastToBlock(SRC) == 9
    with brownie.reverts(err("AnchorIsSuperseded", 2)):
        anchor.verify(2, h(b"x"), [])
    anchor.postRoot(SRC, 10, 15, b32("b2"), {"from": relayer})  # the corrected range
    # superseding down to the first anchor frees the chain entirely
    anchor.supersede(3, b32("again"), {"from": gov})
    tx = anchor.supersede(1, b32("all"), {"from": gov})
    assert tx.events["AnchorSuperseded"]["nextFrom"] == 0
    assert not anchor.hasAnchors(SRC)
    anchor.postRoot(SRC, 500, 510, b32("fresh"), {"from": relayer})
    with brownie.reverts(err("AnchorUnknown", 99)):
        anchor.supersede(99, b32("x"), {"from": gov})


def test_constructor_checks(gov):
    from brownie import PublicAnchor

    with brownie.reverts(err("AnchorZeroMaxRange")):
        PublicAnchor.deploy(gov, 0, {"from": gov})
    with brownie.reverts(err("AnchorZeroAddress")):
        PublicAnchor.deploy(ZERO32[:42], 10, {"from": gov})
