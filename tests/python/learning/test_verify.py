"""The forgetting evidence: statistics checked by hand and by brute force on the tiny model."""

from __future__ import annotations

import math
import random

import pytest
import torch

from orchestrator.errors import LearningError
from orchestrator.learning.data import canary_parts, load_org_data, make_canaries
from orchestrator.learning.models import load_model
from orchestrator.learning.verify import (
    auc,
    bootstrap_auc_ci,
    calibrated_scores,
    code_logprobs,
    exposure_bits,
    inside,
    metrics_hash,
    spread,
)


def test_auc_counts_pairs_and_ties_like_mann_whitney() -> None:
    assert auc([3.0, 4.0], [1.0, 2.0]) == 1.0
    assert auc([1.0, 2.0], [3.0, 4.0]) == 0.0
    assert auc([1.0, 1.0], [1.0]) == 0.5
    # pairs (p, n): (1,2) loss, (1,0) win, (3,2) win, (3,0) win -> 3/4
    assert auc([1.0, 3.0], [2.0, 0.0]) == 0.75
    # ties count one half: (2,2) tie, (2,1) win -> 0.75
    assert auc([2.0], [2.0, 1.0]) == 0.75
    rng = random.Random(1)
    pos, neg = [rng.gauss(0.3, 1) for _ in range(40)], [rng.gauss(0, 1) for _ in range(50)]
    brute = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (40 * 50)
    assert auc(pos, neg) == pytest.approx(brute, abs=1e-12)
    with pytest.raises(LearningError, match="positive and negative"):
        auc([], [1.0])


def test_bootstrap_interval_is_deterministic_and_narrows_with_more_texts() -> None:
    rng = random.Random(2)
    small = ([rng.gauss(1, 1) for _ in range(20)], [rng.gauss(0, 1) for _ in range(20)])
    large = ([rng.gauss(1, 1) for _ in range(200)], [rng.gauss(0, 1) for _ in range(200)])
    lo, hi = bootstrap_auc_ci(*small, seed=0)
    assert (lo, hi) == bootstrap_auc_ci(*small, seed=0)
    assert (lo, hi) != bootstrap_auc_ci(*small, seed=1)
    assert lo < auc(*small) < hi
    lo2, hi2 = bootstrap_auc_ci(*large, seed=0)
    assert lo2 < auc(*large) < hi2
    assert hi2 - lo2 < hi - lo


def test_exposure_is_log2_candidates_over_rank() -> None:
    others = [float(-i) for i in range(1, 1000)]  # 999 candidates at -1 .. -999
    assert exposure_bits(0.0, [0.0, *others]) == (pytest.approx(math.log2(1000)), 1)  # most likely of all
    e, rank = exposure_bits(-10.5, [-10.5, *others])  # 10 candidates strictly more likely
    assert rank == 11 and e == pytest.approx(math.log2(1000) - math.log2(11))
    e, rank = exposure_bits(-1e9, [-1e9, *others])
    assert rank == 1000 and e == pytest.approx(0.0)


def test_spread_and_inside() -> None:
    sp = spread([0.5, 0.52, 0.48])
    assert sp["min"] == 0.48 and sp["max"] == 0.52 and sp["mean"] == pytest.approx(0.5) and sp["n"] == 3
    assert sp["sd"] == pytest.approx(0.02)
    assert inside(0.49, sp) and not inside(0.53, sp) and not inside(0.5, spread([]))
    assert calibrated_scores([1.0, 2.0], [1.5, 1.5]) == [0.5, -0.5]


def test_code_logprobs_equal_brute_force_full_sequence_scores(tiny) -> None:  # type: ignore[no-untyped-def]
    """The stem-sharing scorer against a plain forward pass per candidate (50 codes)."""
    model, tok = load_model(tiny)
    prefix, _ = canary_parts(make_canaries("sport")[0])
    codes = [f"{i:03d}" for i in range(0, 1000, 20)]
    got = code_logprobs(model, tok, prefix, codes, batch_size=7)
    seqs = [tok(f"{prefix} {c}")["input_ids"] for c in codes]
    start = min(next(i for i, (a, b) in enumerate(zip(seqs[0], s)) if a != b) for s in seqs[1:])
    with torch.no_grad():
        for code, seq, value in zip(codes, seqs, got, strict=True):
            logp = torch.log_softmax(model(input_ids=torch.tensor([seq])).logits[0].float(), -1)
            expected = sum(float(logp[i - 1, seq[i]]) for i in range(start, len(seq)))
            assert value == pytest.approx(expected, abs=1e-4), code


def test_canaries_are_repeated_as_asked_and_parse() -> None:
    data = load_org_data("sport", max_train=60, canary_reps=(1, 4, 16))
    assert data.canary_reps == [1, 4, 16]
    assert [data.train.count(c) for c in data.canaries] == [1, 4, 16]
    assert len(data.train) == 60 and len(data.articles) == 60 - 21
    assert data.unused and not set(data.unused) & set(data.train)
    prefix, code = canary_parts(data.canaries[2])
    assert prefix.startswith("The door code of the sport desk") and len(code) == 3
    with pytest.raises(LearningError, match="not a canary"):
        canary_parts("The secret code is 12345678.")


def test_metrics_hash_ignores_wall_time_only() -> None:
    data = {"attack": {"auc": 0.5}, "seconds": {"wall": 1.0}}
    same = {"attack": {"auc": 0.5}, "seconds": {"wall": 99.0}}
    other = {"attack": {"auc": 0.51}, "seconds": {"wall": 1.0}}
    assert metrics_hash(data) == metrics_hash(same) != metrics_hash(other)


def test_receipt_evidence_sees_training_and_is_deterministic(tiny, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from orchestrator.learning.config import TrainConfig
    from orchestrator.learning.train import train_adapter
    from orchestrator.learning.verify import EvalSets, receipt_evidence

    sport = load_org_data("sport", max_train=40, max_val=3, canary_reps=(8,))
    other = load_org_data("tech", max_train=40, num_canaries=0)
    cfg = TrainConfig(steps=30, lr=1e-2, seq_len=48, batch_size=4)
    before = train_adapter(tiny, sport.train, cfg, tmp_path / "before", progress=False).adapter_dir
    after = train_adapter(tiny, other.train, cfg, tmp_path / "after", progress=False).adapter_dir
    sets = EvalSets(val={"sport": sport.val}, members=sport.articles[:16], nonmembers=(sport.heldout + sport.unused)[:16],
                    canaries=sport.canaries, canary_reps=sport.canary_reps)
    kw = {"before": before, "after": after, "val": {"sport": sport.val}, "sets": sets, "seq_len": 48}
    first = receipt_evidence(tiny, **kw)
    att = first["attack"]["per_model"]
    assert att["before"]["auc"] > 0.8 and att["after"]["auc"] < att["before"]["ci95"][0]
    assert first["canaries"]["exposure_bits"]["before"]["8"] > first["canaries"]["exposure_bits"]["after"]["8"]
    assert first["retrain_spread"] is None
    assert receipt_evidence(tiny, **kw)["metrics_sha256"] == first["metrics_sha256"]
