from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from orchestrator.errors import LearningError
from orchestrator.learning.adapters import Adapter, read_adapter, write_adapter
from orchestrator.learning.aggregate import merge_adapters
from orchestrator.learning.evaluate import evaluate_perplexity, mia_auc, sample_losses, score_contributions
from orchestrator.learning.models import load_model
from orchestrator.learning.train import train_adapter


def test_mia_auc_matches_hand_counted_cases() -> None:
    assert mia_auc([1.0, 2.0], [3.0, 4.0]) == 1.0  # members always lower: perfect attack
    assert mia_auc([3.0, 4.0], [1.0, 2.0]) == 0.0
    assert mia_auc([1.0, 1.0], [1.0]) == 0.5  # all ties
    # pairs (m, o): (1,2) win, (1,0) loss, (3,2) loss, (3,0) loss -> 1/4
    assert mia_auc([1.0, 3.0], [2.0, 0.0]) == 0.25
    with pytest.raises(LearningError, match="member and non-member"):
        mia_auc([], [1.0])


def test_perplexity_of_one_full_text_equals_exp_of_hf_loss(tiny) -> None:  # type: ignore[no-untyped-def]
    text = "The government said on Monday that the new budget would raise taxes for most families in the country."
    model, tok = load_model(tiny)
    ids = tok([text], return_tensors="pt", truncation=True, max_length=32)
    with torch.no_grad():
        expected = math.exp(model(**ids, labels=ids["input_ids"]).loss.item())
    assert evaluate_perplexity(tiny, None, [text], seq_len=32) == pytest.approx(expected, rel=1e-5)
    (loss,) = sample_losses(tiny, None, [text], seq_len=32)
    assert math.exp(loss) == pytest.approx(expected, rel=1e-5)


def test_batching_and_padding_do_not_change_losses(tiny, orgs) -> None:  # type: ignore[no-untyped-def]
    texts = orgs["politics"].val[:5] + ["A short line of text."]
    one = sample_losses(tiny, None, texts, seq_len=40, batch_size=1)
    many = sample_losses(tiny, None, texts, seq_len=40, batch_size=4)
    assert one == pytest.approx(many, rel=1e-4)


def test_leave_one_out_scores_reward_help_and_punish_poison(tiny, cfg, orgs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = train_adapter(tiny, orgs["politics"].train, cfg, tmp_path / "good", progress=False).adapter_dir
    other = train_adapter(tiny, orgs["business"].train, cfg, tmp_path / "other", progress=False).adapter_dir
    honest = read_adapter(good)
    generator = torch.Generator().manual_seed(0)
    poisoned = Adapter(
        None, dict(honest.config),
        {k: torch.randn(v.shape, generator=generator) * 0.5 for k, v in honest.tensors.items()}, dict(honest.meta),
    )
    bad = write_adapter(poisoned, tmp_path / "bad")
    adapters = {"good": good, "other": other, "bad": bad}
    weights = {"good": 1.0, "other": 1.0, "bad": 1.0}
    val = orgs["politics"].val
    scores = score_contributions(tiny, adapters, weights, val, seq_len=cfg.seq_len)
    assert scores["good"] > 0 > scores["bad"]
    # Independent derivation of one score: the others keep their weight 1/3 (not renormalised),
    # obtained by scaling their B by 2/3 and merging the two with weights 1/2 each.
    full = math.log(evaluate_perplexity(tiny, merge_adapters(
        [adapters[o] for o in sorted(adapters)], [1, 1, 1], tmp_path / "all"), val, seq_len=cfg.seq_len))
    scaled = []
    for name in ("bad", "other"):
        a = read_adapter(adapters[name])
        a.tensors = {k: v * (2 / 3) if ".lora_B." in k else v for k, v in a.tensors.items()}
        scaled.append(write_adapter(a, tmp_path / f"{name}-scaled"))
    without_good = merge_adapters(scaled, [1, 1], tmp_path / "nogood")
    expected = math.log(evaluate_perplexity(tiny, without_good, val, seq_len=cfg.seq_len)) - full
    assert scores["good"] == pytest.approx(expected, rel=1e-3, abs=1e-5)


def test_adapter_of_another_base_is_refused_at_evaluation(tiny, cfg, orgs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    res = train_adapter(tiny, orgs["sport"].train, cfg, tmp_path / "a", progress=False)
    adapter = read_adapter(res.adapter_dir)
    adapter.meta["base_model"] = "smollm2-135m"
    write_adapter(adapter, tmp_path / "b")
    with pytest.raises(LearningError, match="smollm2-135m"):
        evaluate_perplexity(tiny, tmp_path / "b", orgs["sport"].val)
