"""Anchor relayer: posts Merkle roots of the private chain's records to the public chain.

Every period it takes the private chain's blocks after the last anchored one (up to the head
minus ``confirmations``), turns each protocol event in them into a leaf, and posts
``(sourceChainId, fromBlock, toBlock, root)`` to ``PublicAnchor``. The batch (leaves with their
proofs) is stored on IPFS and kept in the relayer's state folder, so an outsider handed a record
and its proof can check it against the public chain with one view call, without seeing the
private chain.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import keccak
from web3 import Web3

from orchestrator.daemons.base import Daemon, Handler, Node
from orchestrator.merkle import MerkleTree, leaf_hash

#: The ABI types of an anchored record: (source chain id, block, tx hash, log index, contract, event digest).
RECORD_TYPES = ("uint256", "uint256", "bytes32", "uint256", "address", "bytes32")

#: The private-chain contracts whose events are anchored.
ANCHORED_CONTRACTS = ("Rounds", "Unlearning", "ContributionRegistry", "Membership", "Staking")


@dataclass(frozen=True)
class Record:
    """One event of the private chain, reduced to what the anchor commits to."""

    block_number: int
    tx_hash: str
    log_index: int
    address: str
    event_digest: str  # keccak256(abi.encode(topics, data)) of the raw log

    def _values(self, chain_id: int) -> list[Any]:
        return [chain_id, self.block_number, bytes.fromhex(self.tx_hash.removeprefix("0x")), self.log_index,
                Web3.to_checksum_address(self.address), bytes.fromhex(self.event_digest.removeprefix("0x"))]

    def encoded(self, chain_id: int) -> bytes:
        """The ABI-encoded record ``PublicAnchor.verify`` takes (it hashes the leaf itself)."""
        return abi_encode(list(RECORD_TYPES), self._values(chain_id))

    def leaf(self, chain_id: int) -> bytes:
        return leaf_hash(list(RECORD_TYPES), self._values(chain_id))


def record_of(log: Mapping[str, Any]) -> Record:
    topics = [bytes(t) for t in log["topics"]]
    data = bytes(log["data"])
    digest = keccak(abi_encode(["bytes32[]", "bytes"], [topics, data]))
    tx_hash = log["transactionHash"]
    tx_hex = tx_hash.hex() if isinstance(tx_hash, bytes | bytearray) else str(tx_hash)
    return Record(int(log["blockNumber"]), "0x" + tx_hex.removeprefix("0x"), int(log["logIndex"]),
                  str(log["address"]), "0x" + digest.hex())


class RelayerDaemon(Daemon):
    role = "relayer"

    def __init__(self, node: Node, public: Node, *, min_blocks: int = 1, name: str | None = None) -> None:
        self.public = public
        self.min_blocks = min_blocks
        super().__init__(node, name or "relayer")
        self.batches_dir = node.state_dir / "anchors"
        self.batches_dir.mkdir(parents=True, exist_ok=True)

    def subscriptions(self) -> list[tuple[Any, str]]:
        return []

    def handlers(self) -> Mapping[str, Handler]:
        return {}

    def periodic(self) -> None:
        self.anchor_once()

    def anchor_once(self) -> dict[str, Any] | None:
        """Anchor the next block range if it holds records; return the batch or None."""
        anchor = self.public.contract("PublicAnchor")
        chain_id = int(self.node.w3.eth.chain_id)
        last = int(anchor.functions.lastToBlock(chain_id).call())
        start = last + 1 if last else self.node.protocol.manifest.first_block
        head = int(self.node.w3.eth.block_number) - self.node.confirmations
        # PublicAnchor refuses a range longer than maxRange: anchor a long backlog in pieces.
        head = min(head, start + int(anchor.functions.maxRange().call()) - 1)
        if head - start + 1 < self.min_blocks:
            return None
        addresses = [self.node.contract(n).address for n in ANCHORED_CONTRACTS if n in self.node.protocol]
        logs = self.node.w3.eth.get_logs({"fromBlock": start, "toBlock": head, "address": addresses})
        if not logs:
            return None
        records = [record_of(log) for log in logs]
        leaves = [r.leaf(chain_id) for r in records]
        tree = MerkleTree.build(leaves)
        receipt = self.public.send(anchor.functions.postRoot(chain_id, start, head, tree.root))
        anchor_id = int(anchor.events.RootAnchored().process_receipt(receipt)[0]["args"]["anchorId"])
        batch = {
            "kind": "anchor-batch",
            "anchor_id": anchor_id,
            "source_chain_id": chain_id,
            "from_block": start,
            "to_block": head,
            "root": "0x" + tree.root.hex(),
            "records": [
                vars(r) | {"leaf": "0x" + leaf.hex(), "record": "0x" + r.encoded(chain_id).hex(),
                           "proof": ["0x" + p.hex() for p in tree.proof(leaf)]}
                for r, leaf in zip(records, leaves)
            ],
        }
        batch["cid"] = self.node.store.add_bytes(json.dumps(batch, sort_keys=True).encode())
        (self.batches_dir / f"anchor-{anchor_id}.json").write_text(json.dumps(batch, indent=1, sort_keys=True))
        self.record("anchored", anchor_id=anchor_id, blocks=f"{start}-{head}", records=len(records))
        return batch


def verify_batch(public_anchor: Any, batch: Mapping[str, Any]) -> tuple[int, int]:
    """Check every record of a batch against the public chain; return (verified, total).

    The contract hashes each record into its leaf itself, so a proof for an internal node of the
    tree can no longer pass as a record's.
    """
    ok = 0
    chain_id = int(batch["source_chain_id"])
    for rec in batch["records"]:
        proof = [bytes.fromhex(p.removeprefix("0x")) for p in rec["proof"]]
        record = Record(**{k: rec[k] for k in Record.__dataclass_fields__})
        if public_anchor.functions.verify(int(batch["anchor_id"]), record.encoded(chain_id), proof).call():
            ok += 1
    return ok, len(batch["records"])
