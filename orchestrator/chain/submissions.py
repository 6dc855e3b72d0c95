"""Submissions served from events: the views Rounds v2 no longer stores.

Rounds keeps one commitment slot per submission, ``keccak256(abi.encode(adapterCid, numSamples,
dataCommitment))`` with its two low bits used as flags (rejected, claimed); the CID, the sample
count and the data commitment themselves travel only in the ``UpdateSubmitted`` event (and
``SubmissionReplaced`` when an org answers a Samples-scope unlearning request with a
replacement adapter, which then is the round's contribution of that org). This reader fetches those events with chunked
``eth_getLogs``, checks every one against the commitment the contract holds for it, and answers
what the daemons and tools ask: "what did org X submit in round R", "every submission of
round R", "every contribution of org X".

A log that does not match the on-chain commitment (a node serving forged logs, or a reorg the
reader has not seen yet) raises :class:`SubmissionMismatchError` rather than being used. Only
blocks at least ``confirmations`` deep are read; the cache only grows forwards, so a reorg deeper
than ``confirmations`` needs a fresh reader (the daemons' scanner handles reorgs for events).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from orchestrator.chain.errors import ChainError
from orchestrator.chain.multicall import batch_call

#: event name -> kind recorded in :attr:`Submission.kind`
SUBMISSION_EVENTS = {"UpdateSubmitted": "submitted", "SubmissionReplaced": "replaced"}
#: the two low bits of a stored commitment are flags (bit 0 rejected, bit 1 claimed)
_FLAG_MASK = ~3 & (2**256 - 1)


class SubmissionMismatchError(ChainError):
    """An event's fields do not hash to the commitment Rounds holds for that submission."""


def submission_commitment(adapter_cid: bytes, num_samples: int, data_commitment: bytes) -> bytes:
    """Rounds' ``submissionCommitment``: keccak256(abi.encode(cid, n, dataCommitment)), low 2 bits 0."""
    digest = keccak(abi_encode(["bytes32", "uint64", "bytes32"],
                               [bytes(adapter_cid), int(num_samples), bytes(data_commitment)]))
    return _clear_flags(digest)


def _clear_flags(value: bytes) -> bytes:
    return (int.from_bytes(value, "big") & _FLAG_MASK).to_bytes(32, "big")


@dataclass(frozen=True)
class Submission:
    """One org's contribution to one round, as the chain committed to it."""

    round_id: int
    org: str
    adapter_cid: bytes  # bytes32 digest of the CIDv0
    num_samples: int  # as the org reported it (the merge and rewards clip it to the round's cap)
    data_commitment: bytes
    block: int
    log_index: int
    tx_hash: str
    kind: str = "submitted"  # or "replaced" (a Samples-scope replacement)
    request_id: int = 0  # the unlearning request a replacement answers

    @property
    def commitment(self) -> bytes:
        return submission_commitment(self.adapter_cid, self.num_samples, self.data_commitment)

    @property
    def cid(self) -> str:
        from orchestrator.storage.cid import bytes32_to_cid

        return bytes32_to_cid(self.adapter_cid)


class SubmissionReader:
    """Reads and checks the submissions of one deployment's Rounds contract from its events."""

    #: largest block range one eth_getLogs call asks for
    chunk_blocks = 5_000

    def __init__(self, rounds: Any, *, from_block: int = 0, confirmations: int = 0,
                 commitment_view: str = "commitmentOf", protocol: Any = None) -> None:
        self.rounds = rounds
        self.protocol = protocol  # where batched reads find the deployment's Multicall3
        self.w3 = rounds.w3
        self.confirmations = int(confirmations)
        self.commitment_view = commitment_view
        self._next_block = int(from_block)
        # (round, org) -> the current submission (a replacement supersedes the original)
        self._current: dict[tuple[int, str], Submission] = {}
        self._history: dict[tuple[int, str], list[Submission]] = {}
        self._verified: set[tuple[int, str, int, int]] = set()
        self._events = [name for name in SUBMISSION_EVENTS if _has_event(rounds, name)]

    # -- reading --------------------------------------------------------------------------
    def refresh(self) -> None:
        """Fetch the logs of the blocks that became ``confirmations`` deep since the last call."""
        head = int(self.w3.eth.block_number) - self.confirmations
        start = self._next_block
        while start <= head:
            end = min(head, start + self.chunk_blocks - 1)
            logs: list[Any] = []
            for name in self._events:
                logs += getattr(self.rounds.events, name)().get_logs(from_block=start, to_block=end)
            for log in sorted(logs, key=lambda lg: (int(lg["blockNumber"]), int(lg["logIndex"]))):
                self._add(log)
            start = end + 1
        self._next_block = max(self._next_block, head + 1)

    def _add(self, log: Any) -> None:
        args = log["args"]
        tx_hash = log["transactionHash"]
        sub = Submission(
            round_id=int(args["roundId"]),
            org=to_checksum_address(args["org"]),
            adapter_cid=bytes(args["adapterCid"]),
            num_samples=int(args["numSamples"]),
            data_commitment=bytes(args["dataCommitment"]),
            block=int(log["blockNumber"]),
            log_index=int(log["logIndex"]),
            tx_hash="0x" + (tx_hash.hex() if isinstance(tx_hash, bytes | bytearray) else str(tx_hash)).removeprefix("0x"),
            kind=SUBMISSION_EVENTS[log["event"]],
            request_id=int(args.get("requestId", 0)),
        )
        key = (sub.round_id, sub.org)
        self._history.setdefault(key, []).append(sub)
        self._current[key] = sub

    def check_many(self, subs: Iterable[Submission]) -> list[Submission]:
        """:meth:`check` for each of ``subs``, the commitments read in one batched call."""
        subs = list(subs)
        todo = list({_ident(s): s for s in subs if _ident(s) not in self._verified}.values())
        view = getattr(self.rounds.functions, self.commitment_view, None)
        if todo and view is not None:
            held = batch_call(self.w3, [view(s.round_id, s.org) for s in todo], protocol=self.protocol)
            for sub, onchain in zip(todo, held, strict=True):
                self._compare(sub, bytes(onchain))
        self._verified.update(_ident(s) for s in todo)
        return subs

    def _compare(self, sub: Submission, onchain: bytes) -> None:
        if _clear_flags(onchain) != sub.commitment:
            raise SubmissionMismatchError(
                f"round {sub.round_id}, org {sub.org}: the {sub.kind} event in block {sub.block} "
                f"hashes to 0x{sub.commitment.hex()}, but Rounds holds 0x{_clear_flags(onchain).hex()}; "
                "the node served a log the contract never committed to (or a reorg is in flight)"
            )

    def check(self, sub: Submission) -> Submission:
        """``sub`` if it hashes to the commitment Rounds holds now; else a clear error."""
        ident = _ident(sub)
        if ident in self._verified:
            return sub
        view = getattr(self.rounds.functions, self.commitment_view, None)
        if view is not None:
            self._compare(sub, bytes(view(sub.round_id, sub.org).call()))
        self._verified.add(ident)
        return sub

    # -- queries --------------------------------------------------------------------------
    def get(self, round_id: int, org: str) -> Submission | None:
        """The current (checked) submission of ``org`` in ``round_id``, or None."""
        self.refresh()
        sub = self._current.get((int(round_id), to_checksum_address(org)))
        return self.check(sub) if sub is not None else None

    def of_round(self, round_id: int) -> list[Submission]:
        """Every current submission of a round, sorted by org address (the merge order)."""
        self.refresh()
        subs = [s for (r, _), s in self._current.items() if r == int(round_id)]
        return self.check_many(sorted(subs, key=lambda s: s.org.lower()))

    def of_org(self, org: str, rounds: Iterable[int] | None = None) -> list[Submission]:
        """Every current submission of ``org``, by round."""
        self.refresh()
        org = to_checksum_address(org)
        wanted = None if rounds is None else {int(r) for r in rounds}
        subs = [s for (r, o), s in self._current.items() if o == org and (wanted is None or r in wanted)]
        return self.check_many(sorted(subs, key=lambda s: s.round_id))

    def by_org(self) -> dict[str, list[Submission]]:
        """Every org's current submissions by round, after one refresh, NOT yet checked.

        For callers that pick a few of them (the merge's latest live ones) and then check only
        those with :meth:`check_many`: one batched read instead of one per submission.
        """
        self.refresh()
        out: dict[str, list[Submission]] = {}
        for (_, org), sub in sorted(self._current.items(), key=lambda kv: kv[0][0]):
            out.setdefault(org, []).append(sub)
        return out

    def history(self, round_id: int, org: str) -> list[Submission]:
        """Every event of (round, org) in chain order: the original and any replacements."""
        self.refresh()
        return list(self._history.get((int(round_id), to_checksum_address(org)), []))


def _ident(sub: Submission) -> tuple[int, str, int, int]:
    return (sub.round_id, sub.org, sub.block, sub.log_index)


def _has_event(contract: Any, name: str) -> bool:
    return any(item.get("type") == "event" and item.get("name") == name for item in contract.abi)


_READERS: weakref.WeakKeyDictionary[Any, SubmissionReader] = weakref.WeakKeyDictionary()


def reader_for(protocol: Any, confirmations: int = 0) -> SubmissionReader:
    """One shared, incrementally refreshed reader per deployment (a :class:`Protocol`)."""
    reader = _READERS.get(protocol)
    if reader is None or reader.confirmations != confirmations:
        reader = SubmissionReader(protocol.contract("Rounds"), from_block=protocol.manifest.first_block,
                                  confirmations=confirmations, protocol=protocol)
        _READERS[protocol] = reader
    return reader
