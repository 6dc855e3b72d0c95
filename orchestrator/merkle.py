"""Merkle trees that OpenZeppelin's ``MerkleProof.verify`` accepts.

Conventions (those of OpenZeppelin's StandardMerkleTree, so any OZ tooling agrees):
- internal nodes hash the *sorted* pair: ``keccak256(min(a, b) ++ max(a, b))``;
- leaves are double-hashed: ``keccak256(keccak256(abi.encode(values...)))``, which keeps a
  64-byte leaf preimage from being confused with an internal node (second-preimage defence);
- a one-leaf tree's root is the leaf itself and its proof is empty.

Pure Python (keccak from eth-hash), no chain and no torch: the learning layer uses it for data
commitments, the aggregator for reward roots, the relayer for anchor roots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_abi import encode as abi_encode
from eth_utils import keccak

ZERO32 = b"\x00" * 32


def hash_pair(a: bytes, b: bytes) -> bytes:
    """OpenZeppelin ``Hashes.commutativeKeccak256``."""
    return keccak(a + b) if a < b else keccak(b + a)


def leaf_hash(types: Sequence[str], values: Sequence[object]) -> bytes:
    """``keccak256(bytes.concat(keccak256(abi.encode(values))))`` as in Solidity."""
    return keccak(keccak(abi_encode(list(types), list(values))))


def sample_leaf(sample: bytes | str) -> bytes:
    """Leaf of one training sample in a data commitment: the double hash of keccak256(sample bytes).

    ``abi.encode(keccak256(sample))`` is used so that the leaf is fixed-size whatever the text.
    """
    data = sample.encode("utf-8") if isinstance(sample, str) else sample
    return leaf_hash(["bytes32"], [keccak(data)])


@dataclass(frozen=True)
class MerkleTree:
    """A tree over ``leaves`` (already hashed, 32 bytes each), kept in OZ's array layout.

    Leaves are sorted before building so that the root does not depend on input order; use
    :meth:`proof` with the leaf value, not an index.
    """

    layers: tuple[tuple[bytes, ...], ...]

    @classmethod
    def build(cls, leaves: Sequence[bytes]) -> MerkleTree:
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf; got an empty list")
        for leaf in leaves:
            if len(leaf) != 32:
                raise ValueError(f"Merkle leaves must be 32 bytes; got {len(leaf)} bytes: {leaf.hex()}")
        layer = tuple(sorted(leaves))
        layers = [layer]
        while len(layer) > 1:
            nxt = []
            for i in range(0, len(layer), 2):
                if i + 1 < len(layer):
                    nxt.append(hash_pair(layer[i], layer[i + 1]))
                else:  # odd node is promoted unchanged
                    nxt.append(layer[i])
            layer = tuple(nxt)
            layers.append(layer)
        return cls(tuple(layers))

    @property
    def root(self) -> bytes:
        return self.layers[-1][0]

    def proof(self, leaf: bytes) -> list[bytes]:
        try:
            index = self.layers[0].index(leaf)
        except ValueError:
            raise KeyError(f"leaf {leaf.hex()} is not in this tree (root {self.root.hex()})") from None
        proof: list[bytes] = []
        for layer in self.layers[:-1]:
            sibling = index ^ 1
            if sibling < len(layer):
                proof.append(layer[sibling])
            index //= 2
        return proof


def verify(proof: Sequence[bytes], root: bytes, leaf: bytes) -> bool:
    """Same result as OpenZeppelin ``MerkleProof.verify(proof, root, leaf)``."""
    node = leaf
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node == root


def data_commitment(samples: Sequence[bytes | str]) -> bytes:
    """Root over the samples' leaves: what an org submits as ``dataCommitment``."""
    return MerkleTree.build([sample_leaf(s) for s in samples]).root


def reward_leaf(org: str, amount: int) -> bytes:
    """Leaf of the rewards tree, matching ``keccak256(bytes.concat(keccak256(abi.encode(org, amount))))``."""
    return leaf_hash(["address", "uint256"], [org, amount])
