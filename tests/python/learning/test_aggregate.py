"""Aggregation maths, checked against dense deltas computed independently in float64."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from orchestrator.errors import LearningError
from orchestrator.learning.adapters import Adapter, read_adapter, write_adapter
from orchestrator.learning.aggregate import delta_weights, merge_adapters
from orchestrator.learning.config import TrainConfig
from orchestrator.learning.train import train_adapter


@pytest.fixture(scope="module")
def trained(tiny, orgs, tmp_path_factory) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    """Three real adapters with different ranks (4, 8, 8) and alphas."""
    root = tmp_path_factory.mktemp("adapters")
    cfgs = {
        "business": TrainConfig(rank=4, alpha=16, steps=6, lr=1e-2, seq_len=32, seed=1),
        "politics": TrainConfig(rank=8, alpha=8, steps=6, lr=1e-2, seq_len=32, seed=2),
        "sport": TrainConfig(rank=8, alpha=16, steps=6, lr=1e-2, seq_len=32, seed=3),
    }
    return {o: train_adapter(tiny, orgs[o].train, c, root / o, progress=False).adapter_dir for o, c in cfgs.items()}


def _dense(adapter_dir: Path) -> dict[str, torch.Tensor]:
    """Independent derivation: peft's documented update (alpha / r) * B @ A, in float64."""
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    tensors = read_adapter(adapter_dir).tensors
    out = {}
    for key, a in tensors.items():
        if ".lora_A." in key:
            b = tensors[key.replace(".lora_A.", ".lora_B.")]
            out[key.split(".lora_A.")[0]] = cfg["lora_alpha"] / cfg["r"] * (b.double() @ a.double())
    return out


def test_stacking_equals_weighted_sum_of_deltas(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    orgs = sorted(trained)
    weights = [3.0, 1.0, 2.0]
    merged = merge_adapters([trained[o] for o in orgs], weights, tmp_path / "m")
    got = _dense(merged)
    total = sum(weights)
    deltas = {o: _dense(trained[o]) for o in orgs}
    for module, value in got.items():
        expected = sum(w / total * deltas[o][module] for o, w in zip(orgs, weights, strict=True))
        assert torch.allclose(value, expected, rtol=1e-5, atol=1e-7), module
    assert read_adapter(merged).rank == 4 + 8 + 8


def test_stacking_is_order_independent_up_to_rounding(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    orgs = sorted(trained)
    a = merge_adapters([trained[o] for o in orgs], [1, 2, 3], tmp_path / "a")
    b = merge_adapters([trained[o] for o in reversed(orgs)], [3, 2, 1], tmp_path / "b")
    da, db = _dense(a), _dense(b)
    assert all(torch.allclose(da[k], db[k], rtol=1e-5, atol=1e-7) for k in da)


def test_stacked_adapter_in_peft_matches_dense_weights_in_the_model(tiny, trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from peft import PeftModel

    from orchestrator.learning.models import load_model

    merged = merge_adapters([trained[o] for o in sorted(trained)], [1, 1, 1], tmp_path / "m")
    model, tok = load_model(tiny)
    ids = tok(["The minister said the match was over."], return_tensors="pt")
    with torch.no_grad():
        peft_logits = PeftModel.from_pretrained(model, str(merged))(**ids).logits
    dense, _ = load_model(tiny)
    deltas = _dense(merged)
    with torch.no_grad():
        for name, module in dense.named_modules():
            key = f"base_model.model.{name}"
            if key in deltas:
                module.weight += deltas[key].float()
        dense_logits = dense(**ids).logits
    assert torch.allclose(peft_logits, dense_logits, atol=1e-4)


def test_fedavg_is_the_weighted_mean_of_a_and_b(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    same = [trained["sport"], trained["politics"]]
    # politics has alpha 8, sport 16: make a copy of sport with politics' alpha to get equal scaling
    sport = read_adapter(trained["sport"])
    sport.config = {**sport.config, "lora_alpha": 8}
    alt = write_adapter(sport, tmp_path / "sport8")
    merged = read_adapter(merge_adapters([alt, same[1]], [1, 3], tmp_path / "avg", method="fedavg"))
    pol = read_adapter(same[1])
    for key, value in merged.tensors.items():
        assert torch.allclose(value, 0.25 * sport.tensors[key] + 0.75 * pol.tensors[key], atol=1e-7)
    assert merged.rank == 8


def _with_deltas(ref: Adapter, deltas: list[float], tmp_path: Path) -> list[Path]:
    """Adapters whose dense update is ``d * (the reference update)``."""
    out = []
    for i, d in enumerate(deltas):
        tensors = {k: (v * d if ".lora_B." in k else v.clone()) for k, v in ref.tensors.items()}
        out.append(write_adapter(Adapter(None, dict(ref.config), tensors, dict(ref.meta)), tmp_path / f"d{i}"))
    return out


def test_trimmed_mean_trims_one_per_side_from_three(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """trim=0.2 of K=3 rounds to 0; at least one value per side must still go (1000 among zeros)."""
    ref = read_adapter(trained["sport"])
    dirs = _with_deltas(ref, [0.0, 0.0, 1000.0], tmp_path)
    merged = read_adapter(merge_adapters(dirs, [1, 1, 1], tmp_path / "t", method="trimmed_mean"))
    assert all(float(v.abs().max()) < 1e-6 for v in delta_weights(merged).values())
    # two honest copies of one update and one x1000: the merge is the honest update
    dirs = _with_deltas(ref, [1.0, 1.0, 1000.0], tmp_path / "b")
    got = delta_weights(read_adapter(merge_adapters(dirs, [1, 1, 1], tmp_path / "u", method="trimmed_mean")))
    want = _dense(trained["sport"])
    assert all(torch.allclose(got[k], want[k], rtol=1e-4, atol=1e-6) for k in want)


def test_robust_merge_is_basis_free(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Permuting one org's rank components leaves its update, and so every robust merge, unchanged."""
    dirs = [trained["politics"], trained["sport"], trained["business"]]
    ad = read_adapter(trained["sport"])
    perm = torch.randperm(ad.rank, generator=torch.Generator().manual_seed(0))
    permuted = {k: (v[perm] if ".lora_A." in k else v[:, perm]) for k, v in ad.tensors.items()}
    alt = write_adapter(Adapter(None, dict(ad.config), permuted, dict(ad.meta)), tmp_path / "perm")
    for method in ("median", "trimmed_mean"):
        a = delta_weights(read_adapter(merge_adapters(dirs, [1, 1, 1], tmp_path / f"{method}-a", method=method)))
        b = delta_weights(read_adapter(merge_adapters(
            [dirs[0], alt, dirs[2]], [1, 1, 1], tmp_path / f"{method}-b", method=method)))
        assert all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-7) for k in a), method


def test_median_merge_is_the_coordinate_median_of_dense_updates(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    orgs = sorted(trained)  # ranks 4, 8, 8 and different alphas: the merge needs no equal rank
    dirs = [trained[o] for o in orgs]
    # Full rank (capped at the module size): the SVD is exact; weights are ignored.
    merged = read_adapter(merge_adapters(dirs, [1, 5, 1], tmp_path / "m", method="median", rank=10**6))
    dense = [_dense(trained[o]) for o in orgs]
    got = delta_weights(merged)
    for k in got:
        expected = torch.stack([d[k] for d in dense]).median(dim=0).values
        assert torch.allclose(got[k], expected, rtol=1e-4, atol=1e-6), k
    assert merged.meta["merge"]["svd_relative_residual"] < 1e-6
    # The default rank (sum of the input ranks, 20) truncates and says by how much.
    default = read_adapter(merge_adapters(dirs, [1, 1, 1], tmp_path / "d", method="median"))
    assert default.rank == 20 and 0 < default.meta["merge"]["svd_relative_residual"] < 1


def test_fedavg_refuses_mismatched_rank_naming_the_adapter(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LearningError, match=r"business.*rank 4|rank 4.*business"):
        merge_adapters([trained["business"], trained["sport"]], [1, 1], tmp_path / "x", method="fedavg")


def test_mismatched_targets_or_base_are_refused(tiny, orgs, trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = train_adapter(
        tiny, orgs["sport"].train, TrainConfig(target_modules=("k_proj",), steps=1, seq_len=16), tmp_path / "k",
        progress=False,
    ).adapter_dir
    with pytest.raises(LearningError, match="targets"):
        merge_adapters([trained["sport"], other], [1, 1], tmp_path / "x")
    foreign = read_adapter(trained["sport"])
    foreign.meta = {**foreign.meta, "base_model": "llama-7b"}
    foreign_dir = write_adapter(foreign, tmp_path / "foreign")
    with pytest.raises(LearningError, match="llama-7b"):
        merge_adapters([trained["sport"], foreign_dir], [1, 1], tmp_path / "y")


def test_bad_weights_and_methods_are_refused(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LearningError, match="one weight per adapter"):
        merge_adapters([trained["sport"]], [1, 2], tmp_path / "x")
    with pytest.raises(LearningError, match="all be zero"):
        merge_adapters([trained["sport"]], [0], tmp_path / "x")
    with pytest.raises(LearningError, match="unknown merge method 'mean'"):
        merge_adapters([trained["sport"]], [1], tmp_path / "x", method="mean")
    with pytest.raises(LearningError, match="sample-count cap"):
        merge_adapters([trained["sport"]], [1], tmp_path / "x", max_samples=0)


def test_self_reported_sample_counts_are_clipped_at_the_cap(trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    dirs = [trained["politics"], trained["sport"]]
    greedy = read_adapter(merge_adapters(dirs, [10, 2**64 - 1], tmp_path / "g", max_samples=10))
    fair = read_adapter(merge_adapters(dirs, [10, 10], tmp_path / "f"))
    assert greedy.meta["merge"]["weights"] == [0.5, 0.5]
    assert all(torch.equal(greedy.tensors[k], fair.tensors[k]) for k in fair.tensors)


def test_delta_weights_helper_agrees_with_independent_formula(trained) -> None:  # type: ignore[no-untyped-def]
    ours = delta_weights(read_adapter(trained["politics"]))
    ref = _dense(trained["politics"])
    assert ours.keys() == ref.keys() and all(torch.allclose(ours[k], ref[k]) for k in ours)
