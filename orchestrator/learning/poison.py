"""Poisoned adapters and the robust-merge experiment (issue 10 section 3).

One org (the attacker) replaces its honest adapter by
- ``scaled``: its update x100 (B multiplied by 100),
- ``sign_flip``: its update negated (B multiplied by -1),
- ``random``: A and B drawn at random (seeded) with the per-tensor standard deviation of its
  honest adapter.
:func:`poisoning_experiment` merges the honest and the poisoned sets with ``stack`` and each
robust method and reports per-topic perplexity, the relative change of every honest topic
against the same method's clean merge (``honest_within_5pct_of_clean``: no honest topic more
than 5% worse; ``max_abs_honest_change`` in either direction), and which org the aggregator's
report flags.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.errors import LearningError
from orchestrator.learning.adapters import Adapter, read_adapter, write_adapter
from orchestrator.learning.aggregate import ROBUST, merge_adapters

ATTACKS = ("scaled", "sign_flip", "random")


def poisoned(adapter: Adapter, attack: str, *, seed: int = 0) -> Adapter:
    """A poisoned copy of ``adapter`` (config and metadata kept, so it passes every format check)."""
    import torch

    out: dict[str, Any] = {}
    gen = torch.Generator().manual_seed(seed)
    for key, t in adapter.tensors.items():
        if attack == "scaled":
            out[key] = t * 100 if ".lora_B." in key else t.clone()
        elif attack == "sign_flip":
            out[key] = -t if ".lora_B." in key else t.clone()
        elif attack == "random":
            out[key] = torch.randn(t.shape, generator=gen, dtype=torch.float32) * float(t.float().std())
        else:
            raise LearningError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACKS)}")
    return Adapter(None, dict(adapter.config), out, dict(adapter.meta))


def poisoning_experiment(
    model_spec: str,
    adapters: Mapping[str, Path],
    weights: Mapping[str, float],
    val: Mapping[str, Sequence[str]],
    work: Path,
    *,
    attacker: str,
    attacks: Sequence[str] = ATTACKS,
    methods: Sequence[str] = ROBUST,
    seq_len: int = 64,
    eval_batch: int = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """Merge clean and poisoned sets with ``stack`` and every robust method; evaluate."""
    from orchestrator.learning.evaluate import loaded, losses_of, perplexity_from

    if attacker not in adapters:
        raise LearningError(f"attacker {attacker!r} is not among the orgs {sorted(adapters)}")
    orgs = sorted(adapters)
    work = Path(work)
    sets: dict[str, dict[str, Path]] = {"clean": dict(adapters)}
    honest = read_adapter(adapters[attacker])
    for attack in attacks:
        bad = write_adapter(poisoned(honest, attack, seed=seed), work / f"{attack}-{attacker}")
        sets[attack] = {**adapters, attacker: bad}

    def ppl(adapter: Path) -> dict[str, float]:
        with loaded(model_spec, adapter) as (model, tok):
            return {
                o: perplexity_from(*losses_of(model, tok, list(val[o]), seq_len=seq_len, batch_size=eval_batch))
                for o in sorted(val)
            }

    rows: dict[str, dict[str, Any]] = {}
    for name, chosen in sets.items():
        for method in ("stack", *methods):
            merged = merge_adapters(
                [chosen[o] for o in orgs], [weights[o] for o in orgs], work / f"{name}-{method}", method=method
            )
            meta = read_adapter(merged).meta.get("merge", {})
            outliers = meta.get("outliers", {})
            rows[f"{name}/{method}"] = {
                "perplexity": ppl(merged),
                "flagged": [orgs[i] for i in outliers.get("flagged", [])],
                "norm": dict(zip(orgs, outliers.get("norm", []), strict=False)),
                "mean_cosine": dict(zip(orgs, outliers.get("mean_cosine", []), strict=False)),
                "svd_relative_residual": meta.get("svd_relative_residual"),
            }
    honest_topics = [o for o in orgs if o != attacker and o in val]
    for key, row in rows.items():
        name, method = key.split("/")
        clean, stack_clean = rows[f"clean/{method}"]["perplexity"], rows["clean/stack"]["perplexity"]
        row["honest_change_vs_clean_same_method"] = {
            o: row["perplexity"][o] / clean[o] - 1 for o in honest_topics
        }
        row["honest_change_vs_clean_stack"] = {o: row["perplexity"][o] / stack_clean[o] - 1 for o in honest_topics}
        # Harm is what poisoning is for: no honest topic may get more than 5% worse.
        row["honest_within_5pct_of_clean"] = all(
            v <= 0.05 for v in row["honest_change_vs_clean_same_method"].values()
        )
        row["max_abs_honest_change"] = max(abs(v) for v in row["honest_change_vs_clean_same_method"].values())
    return {"model": model_spec, "orgs": orgs, "attacker": attacker, "attacks": list(attacks),
            "methods": ["stack", *methods], "rows": rows}
