"""Evidence that unlearning forgot: a report that can fail, with a real yardstick.

For the forgotten data the report measures, on the base model, the model before unlearning, the
unlearned model and independent retrains without the data over several seeds:

- a reference-calibrated membership attack: per text, score = base-model loss minus model loss
  (mean next-token NLL); the AUC of members (the forgotten org's training articles) against
  non-members (articles of the same topic that nobody trained on), with a 95% bootstrap
  interval.  Calibrating by the base model removes per-text difficulty, which is what makes a
  raw-loss attack powerless (issue 10 section 1);
- canary exposure: canaries inserted 1, 4 and 16 times; exposure = log2(1000) - log2(rank) of
  the true 3-digit code among all 1,000 codes, scored by the model's log-probability;
- sample level (``kind == "samples"``): the members are the removed articles, so the same
  attack compares removed articles with non-members of the same distribution;
- per-topic perplexity on every org's validation texts.

The yardstick is the spread (min, max, mean, sd) of every figure over the retrains, each one
trained and evaluated for real (nothing is copied from another model).  "Forgotten" means the
unlearned model's figures lie inside that spread; the model before unlearning shows the attack's
power.  The metrics hash covers every figure and setting but no wall time, so two identical runs
give identical hashes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import LearningError
from orchestrator.learning.evaluate import loaded, losses_of, mean_losses, perplexity_from

log = logging.getLogger(__name__)

TARGET_POWER_AUC = 0.75  # before unlearning the attack must reach this (issue 10 targets)
TARGET_FORGOTTEN_AUC = 0.55  # after unlearning the AUC must not exceed this
BOOTSTRAP = 1000
CANARY_CANDIDATES = 1000


# ---------------------------------------------------------------------------------------------
# Statistics (pure functions)
# ---------------------------------------------------------------------------------------------


def _finite(xs: Sequence[float]) -> list[float]:
    return [float(x) for x in xs if not math.isnan(x)]


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """P(score(positive) > score(negative)) + 0.5 P(tie): the Mann-Whitney AUC."""
    import numpy as np

    pos, neg = np.asarray(_finite(positives)), np.asarray(_finite(negatives))
    if not len(pos) or not len(neg):
        raise LearningError(f"an AUC needs positive and negative scores; got {len(pos)} and {len(neg)}")
    return float(_auc_np(pos, neg))


def _auc_np(pos: Any, neg: Any) -> Any:
    import numpy as np

    both = np.concatenate([pos, neg])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(len(both))
    sorted_vals = both[order]
    # average ranks for ties (1-based)
    i = 0
    while i < len(both):
        j = i
        while j + 1 < len(both) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n_pos, n_neg = len(pos), len(neg)
    return (ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def bootstrap_auc_ci(
    positives: Sequence[float], negatives: Sequence[float], *, rounds: int = BOOTSTRAP, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of the AUC, resampling positives and negatives independently
    with a seeded generator (deterministic)."""
    import numpy as np

    pos, neg = np.asarray(_finite(positives)), np.asarray(_finite(negatives))
    if not len(pos) or not len(neg):
        raise LearningError(f"a bootstrap needs positive and negative scores; got {len(pos)} and {len(neg)}")
    rng = np.random.Generator(np.random.PCG64(seed))
    stats = np.empty(rounds)
    for b in range(rounds):
        p = pos[rng.integers(0, len(pos), len(pos))]
        n = neg[rng.integers(0, len(neg), len(neg))]
        # rank-based AUC via searchsorted: P(p > n) + 0.5 P(p == n)
        ns = np.sort(n)
        below = np.searchsorted(ns, p, side="left")
        upto = np.searchsorted(ns, p, side="right")
        stats[b] = (below + 0.5 * (upto - below)).sum() / (len(p) * len(n))
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(lo), float(hi)


def exposure_bits(true_logprob: float, candidate_logprobs: Sequence[float]) -> tuple[float, int]:
    """(exposure, rank) of the true secret among all candidates (the true one included).

    rank = 1 + number of candidates strictly more likely; exposure = log2(N) - log2(rank).
    """
    n = len(candidate_logprobs)
    if n < 2:
        raise LearningError(f"exposure needs at least 2 candidates; got {n}")
    rank = 1 + sum(1 for lp in candidate_logprobs if lp > true_logprob)
    return math.log2(n) - math.log2(rank), rank


def spread(values: Sequence[float]) -> dict[str, float]:
    """min / max / mean / sample sd of a figure over the retrain seeds."""
    xs = _finite(values)
    if not xs:
        return {"n": 0, "min": math.nan, "max": math.nan, "mean": math.nan, "sd": math.nan}
    mean = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return {"n": len(xs), "min": min(xs), "max": max(xs), "mean": mean, "sd": sd}


def inside(value: float, sp: Mapping[str, float]) -> bool:
    return bool(sp["n"]) and sp["min"] <= value <= sp["max"]


def calibrated_scores(model_losses: Sequence[float], base_losses: Sequence[float]) -> list[float]:
    """Membership score per text: base-model loss minus model loss (higher = more member-like)."""
    if len(model_losses) != len(base_losses):
        raise LearningError(f"got {len(model_losses)} model losses for {len(base_losses)} base losses")
    return [b - m for m, b in zip(model_losses, base_losses, strict=True)]


# ---------------------------------------------------------------------------------------------
# Evaluating one model
# ---------------------------------------------------------------------------------------------


@dataclass
class EvalSets:
    """What to evaluate.

    ``members``: the forgotten org's training articles; ``nonmembers``: articles of the same topic
    nobody trained on; ``canaries`` with how often each was inserted; ``val``: per-topic texts.
    For a sample-level request the members are the removed articles.
    """

    val: Mapping[str, Sequence[str]]
    members: Sequence[str]
    nonmembers: Sequence[str]
    canaries: Sequence[str] = ()
    canary_reps: Sequence[int] = ()

    def __post_init__(self) -> None:
        if len(self.canaries) != len(self.canary_reps):
            raise LearningError(f"got {len(self.canaries)} canaries but {len(self.canary_reps)} repetition counts")
        if not self.members or not self.nonmembers:
            raise LearningError(
                f"the membership attack needs members and non-members; got {len(self.members)} and "
                f"{len(self.nonmembers)}"
            )


@dataclass
class ModelEval:
    """Raw per-text figures of one model (losses are mean next-token NLL per text)."""

    perplexity: dict[str, float]
    member_losses: list[float]
    nonmember_losses: list[float]
    canary_exposure: list[float] = field(default_factory=list)
    canary_rank: list[int] = field(default_factory=list)


def code_logprobs(model: Any, tokenizer: Any, prefix: str, codes: Sequence[str], *, batch_size: int = 64) -> list[float]:
    """log P(code | prefix) for each candidate code, in one pass over the distinct "stems".

    Candidates are tokenised as ``prefix + " " + code``; scoring starts at the first token where
    the candidates differ.  Candidates sharing every token but the last share one forward pass
    (with one token per digit, 1,000 codes need 100 sequences).
    """
    import torch

    seqs = [list(tokenizer(f"{prefix} {c}")["input_ids"]) for c in codes]
    first = seqs[0]
    start = min(next((i for i, (a, b) in enumerate(zip(first, s)) if a != b), min(len(first), len(s))) for s in seqs[1:])
    start = max(1, start)
    stems: dict[tuple[int, ...], int] = {}
    for s in seqs:
        stems.setdefault(tuple(s[:-1]), len(stems))
    stem_list = list(stems)
    stem_sum = [0.0] * len(stem_list)  # log-prob of the stem's own tokens from ``start`` on
    stem_last: list[Any] = [None] * len(stem_list)  # log-softmax after the stem's last token
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with torch.no_grad():
        for b0 in range(0, len(stem_list), batch_size):
            batch = stem_list[b0 : b0 + batch_size]
            width = max(len(s) for s in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for i, s in enumerate(batch):
                ids[i, : len(s)] = torch.tensor(s)
                mask[i, : len(s)] = 1
            logp = torch.log_softmax(model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float(), -1)
            for i, s in enumerate(batch):
                total = 0.0
                for pos in range(start, len(s)):
                    total += float(logp[i, pos - 1, s[pos]])
                stem_sum[b0 + i] = total
                stem_last[b0 + i] = logp[i, len(s) - 1].cpu()
    out = []
    for s in seqs:
        k = stems[tuple(s[:-1])]
        out.append(stem_sum[k] + float(stem_last[k][s[-1]]))
    return out


def canary_exposures(model: Any, tokenizer: Any, canaries: Sequence[str]) -> tuple[list[float], list[int]]:
    from orchestrator.learning.data import CANARY_DIGITS, canary_parts

    codes = [f"{i:0{CANARY_DIGITS}d}" for i in range(10**CANARY_DIGITS)]
    exposures, ranks = [], []
    for canary in canaries:
        prefix, code = canary_parts(canary)
        lps = code_logprobs(model, tokenizer, prefix, codes)
        e, r = exposure_bits(lps[int(code)], lps)
        exposures.append(e)
        ranks.append(r)
    return exposures, ranks


def evaluate_model(model_spec: str, adapter: Path | None, sets: EvalSets, *, seq_len: int, batch_size: int) -> ModelEval:
    """All figures for one model in one load (evaluation is the expensive part on SmolLM2)."""
    with loaded(model_spec, adapter) as (model, tok):

        def run(texts: Sequence[str]) -> tuple[list[float], list[int]]:
            return losses_of(model, tok, list(texts), seq_len=seq_len, batch_size=batch_size)

        ppl = {org: perplexity_from(*run(texts)) for org, texts in sorted(sets.val.items())}
        members = mean_losses(*run(sets.members))
        nonmembers = mean_losses(*run(sets.nonmembers))
        exposure, rank = canary_exposures(model, tok, sets.canaries) if sets.canaries else ([], [])
    return ModelEval(ppl, members, nonmembers, exposure, rank)


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def canary_keys(reps: Sequence[int]) -> list[str]:
    """Report keys of the canaries: the repetition count ("16"), or "<index>x<count>" when two
    canaries share a count."""
    if len(set(reps)) == len(reps):
        return [str(r) for r in reps]
    return [f"{i}x{r}" for i, r in enumerate(reps)]


def retrain_name(seed: int) -> str:
    return f"retrain_seed{seed}"


@dataclass
class VerificationReport:
    """Everything a member needs to check an unlearning receipt; hashed into the receipt."""

    model: str
    mode: str
    kind: str  # "org" or "samples"
    forget: str
    orgs: list[str]
    removed_samples: int
    evals: dict[str, ModelEval]  # "base", "before", "after", "retrain_seed<s>"...
    retrain_seeds: list[int]
    unlearned_sha256: str
    retrained_sha256: dict[str, str]
    canary_reps: list[int] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    cost: dict[str, int] = field(default_factory=dict)  # org trainings: unlearning vs a retrain
    contributions: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    bootstrap_seed: int = 0

    @property
    def models(self) -> list[str]:
        return ["base", "before", "after", *[retrain_name(s) for s in self.retrain_seeds]]

    @property
    def retrains(self) -> list[str]:
        return [retrain_name(s) for s in self.retrain_seeds]

    def attack(self) -> dict[str, Any]:
        """Calibrated attack per model (AUC + 95% CI) and the retrain spread of the AUC."""
        base = self.evals["base"]
        out: dict[str, Any] = {"per_model": {}}
        for m in self.models:
            if m == "base":
                continue
            ev = self.evals[m]
            pos = calibrated_scores(ev.member_losses, base.member_losses)
            neg = calibrated_scores(ev.nonmember_losses, base.nonmember_losses)
            lo, hi = bootstrap_auc_ci(pos, neg, seed=self.bootstrap_seed)
            out["per_model"][m] = {"auc": auc(pos, neg), "ci95": [lo, hi]}
        out["retrain_spread"] = spread([out["per_model"][m]["auc"] for m in self.retrains])
        out["members"] = len(_finite(base.member_losses))
        out["nonmembers"] = len(_finite(base.nonmember_losses))
        out["members_are"] = "removed articles" if self.kind == "samples" else "training articles"
        return out

    def raw_loss_auc(self) -> dict[str, float]:
        """The uncalibrated loss-threshold attack, for comparison (lower loss = member)."""
        return {
            m: auc([-x for x in self.evals[m].member_losses], [-x for x in self.evals[m].nonmember_losses])
            for m in self.models
        }

    def canaries(self) -> dict[str, Any]:
        keys = canary_keys(self.canary_reps)
        per_model = {m: dict(zip(keys, self.evals[m].canary_exposure, strict=True)) for m in self.models}
        ranks = {m: dict(zip(keys, self.evals[m].canary_rank, strict=True)) for m in self.models}
        return {
            "reps": list(self.canary_reps),
            "candidates": CANARY_CANDIDATES,
            "exposure_bits": per_model,
            "keys": canary_keys(self.canary_reps),
            "rank": ranks,
            "retrain_spread": {k: spread([per_model[m][k] for m in self.retrains]) for k in keys},
        }

    def perplexity(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for org in self.orgs:
            row: dict[str, Any] = {m: self.evals[m].perplexity[org] for m in self.models}
            row["retrain_spread"] = spread([row[m] for m in self.retrains])
            out[org] = row
        return out

    def checks(self, figures: Mapping[str, Any] | None = None) -> dict[str, bool]:
        """Pass/fail criteria, each of which a failed unlearning can fail (see docs/LEARNING.md)."""
        f = dict(figures) if figures is not None else self._figures()
        att = f["attack"]
        after_auc = att["per_model"]["after"]["auc"]
        before_auc = att["per_model"]["before"]["auc"]
        own = retrain_name(self.retrain_seeds[0])
        out = {
            "unlearned_equals_same_seed_retrain": self.unlearned_sha256 == self.retrained_sha256.get(own),
            "attack_power_before_auc_ge_0.75": before_auc >= TARGET_POWER_AUC,
            "after_auc_le_0.55": after_auc <= TARGET_FORGOTTEN_AUC,
            "after_auc_inside_retrain_spread": inside(after_auc, att["retrain_spread"]),
            "before_auc_above_retrain_spread": before_auc > att["retrain_spread"]["max"],
            "forgotten_ppl_inside_retrain_spread": inside(
                f["perplexity"][self.forget]["after"], f["perplexity"][self.forget]["retrain_spread"]
            ),
            "retained_ppl_inside_retrain_spread": all(
                inside(f["perplexity"][o]["after"], f["perplexity"][o]["retrain_spread"])
                for o in self.orgs if o != self.forget
            ),
        }
        if self.canary_reps:
            can = f["canaries"]
            top = canary_keys(self.canary_reps)[self.canary_reps.index(max(self.canary_reps))]
            out[f"canary{top}_exposure_inside_retrain_spread"] = inside(
                can["exposure_bits"]["after"][top], can["retrain_spread"][top]
            )
        return out

    def _figures(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "attack": self.attack(),
            "raw_loss_auc": self.raw_loss_auc(),
            "perplexity": self.perplexity(),
        }
        if self.canary_reps:
            figures["canaries"] = self.canaries()
        return figures

    def to_dict(self) -> dict[str, Any]:
        figures = self._figures()
        data: dict[str, Any] = {
            "model": self.model,
            "mode": self.mode,
            "kind": self.kind,
            "forget": self.forget,
            "orgs": self.orgs,
            "removed_samples": self.removed_samples,
            "models": self.models,
            "retrain_seeds": self.retrain_seeds,
            **figures,
            "cost": self.cost,
            "seconds": self.seconds,
            "unlearned_sha256": self.unlearned_sha256,
            "retrained_sha256": self.retrained_sha256,
            "contributions": self.contributions,
            "settings": self.settings,
            "provenance": self.provenance,
            "checks": self.checks(figures),
        }
        data["metrics_sha256"] = metrics_hash(data)
        return data

    def write(self, json_path: Path, png_path: Path | None = None) -> tuple[Path, Path | None]:
        json_path = Path(json_path)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        data = self.to_dict()
        json_path.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default))
        if png_path is not None:
            plot_report(data, Path(png_path))
        return json_path, png_path


def build_report(
    model_spec: str,
    *,
    mode: str,
    kind: str,
    forget: str,
    orgs: Sequence[str],
    before: Path,
    after: Path,
    retrains: Mapping[int, Path],
    sets: EvalSets,
    removed_samples: int,
    seq_len: int,
    batch_size: int = 8,
    seconds: Mapping[str, float] | None = None,
    cost: Mapping[str, int] | None = None,
    contributions: Mapping[str, float] | None = None,
    settings: Mapping[str, Any] | None = None,
    canary_reps: Sequence[int] = (),
) -> VerificationReport:
    """Evaluate base / before / after and every retrain (each for real) and assemble the report.

    ``retrains`` maps seed -> merged adapter of an independent retrain without the forgotten
    data; the first seed is the run's own (its hash is compared with the unlearned model's).
    """
    from orchestrator.learning.adapters import adapter_sha256

    if len(retrains) < 1:
        raise LearningError("the report needs at least one retrain as the yardstick")
    seeds = list(retrains)
    evals: dict[str, ModelEval] = {}
    for name, adapter in (("base", None), ("before", before), ("after", after),
                          *((retrain_name(s), retrains[s]) for s in seeds)):
        started = time.perf_counter()
        evals[name] = evaluate_model(model_spec, adapter, sets, seq_len=seq_len, batch_size=batch_size)
        log.info("evaluated %s in %.1f s", name, time.perf_counter() - started)
    return VerificationReport(
        model=model_spec,
        mode=mode,
        kind=kind,
        forget=forget,
        orgs=list(orgs),
        removed_samples=removed_samples,
        evals=evals,
        retrain_seeds=seeds,
        unlearned_sha256=adapter_sha256(after),
        retrained_sha256={retrain_name(s): adapter_sha256(retrains[s]) for s in seeds},
        canary_reps=list(canary_reps),
        seconds=dict(seconds or {}),
        cost=dict(cost or {}),
        contributions=dict(contributions or {}),
        settings=dict(settings or {}),
        provenance=provenance(),
    )


def receipt_evidence(
    model_spec: str,
    *,
    before: Path,
    after: Path,
    val: Mapping[str, Sequence[str]],
    sets: EvalSets | None = None,
    seq_len: int,
    batch_size: int = 8,
    bootstrap_seed: int = 0,
) -> dict[str, Any]:
    """The verification a live unlearning receipt carries (the executor holds no org's data, so
    it cannot retrain: no retrain spread here; ``simulate`` and bench/unlearning_evidence.py
    give the yardstick).  Per-topic perplexity for base / before / after and, when audit texts
    are given (``sets``: the forgotten org's members and non-members, canaries), the calibrated
    attack with 95% bootstrap intervals and canary exposure.  Deterministic, with its hash."""
    models = {"base": None, "before": before, "after": after}
    out: dict[str, Any] = {"models": list(models), "perplexity": {}, "provenance": provenance()}
    if sets is None:
        for name, adapter in models.items():
            with loaded(model_spec, adapter) as (model, tok):
                for org, texts in sorted(val.items()):
                    out["perplexity"].setdefault(org, {})[name] = perplexity_from(
                        *losses_of(model, tok, list(texts), seq_len=seq_len, batch_size=batch_size)
                    )
    else:
        full = EvalSets(val=val, members=sets.members, nonmembers=sets.nonmembers,
                        canaries=sets.canaries, canary_reps=sets.canary_reps)
        evals = {name: evaluate_model(model_spec, a, full, seq_len=seq_len, batch_size=batch_size)
                 for name, a in models.items()}
        for org in sorted(val):
            out["perplexity"][org] = {name: evals[name].perplexity[org] for name in models}
        base = evals["base"]
        out["attack"] = {"members": len(_finite(base.member_losses)), "nonmembers": len(_finite(base.nonmember_losses)),
                         "per_model": {}}
        for name in ("before", "after"):
            pos = calibrated_scores(evals[name].member_losses, base.member_losses)
            neg = calibrated_scores(evals[name].nonmember_losses, base.nonmember_losses)
            out["attack"]["per_model"][name] = {"auc": auc(pos, neg),
                                                "ci95": list(bootstrap_auc_ci(pos, neg, seed=bootstrap_seed))}
        if sets.canaries:
            keys = canary_keys(list(sets.canary_reps))
            out["canaries"] = {"reps": list(sets.canary_reps), "keys": keys, "candidates": CANARY_CANDIDATES,
                               "exposure_bits": {name: dict(zip(keys, evals[name].canary_exposure, strict=True))
                                                 for name in models}}
    out["retrain_spread"] = None
    out["retrain_spread_note"] = "live executors hold no data to retrain; see simulate / bench/unlearning_evidence.py"
    out["metrics_sha256"] = metrics_hash(out)
    return out


def provenance() -> dict[str, Any]:
    """Where the figures come from: device, dtype, library versions, determinism settings."""
    import platform

    import peft
    import torch
    import transformers

    from orchestrator.learning.models import deterministic_mode, pick_device

    device, dtype = pick_device()
    settings = deterministic_mode(device)
    return {
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device == "cuda" else platform.machine(),
        "dtype": str(dtype).replace("torch.", "") if device == "cuda" else "float32",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "python": platform.python_version(),
        **settings,
    }


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    raise TypeError(f"cannot serialise {type(obj)}")


def metrics_hash(data: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the figures; wall times ("seconds") are left out, so two
    identical runs give the same hash: it goes into the receipt."""
    figures = {k: v for k, v in data.items() if k not in ("seconds", "metrics_sha256")}
    blob = json.dumps(figures, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(blob.encode()).hexdigest()


def plot_report(data: Mapping[str, Any], png_path: Path) -> Path:
    """Per-topic perplexity (with the retrain spread), attack AUC with 95% CIs, canary exposure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    orgs = list(data["orgs"])
    models = [m for m in ("before", "after") if m in data["models"]]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), gridspec_kw={"width_ratios": [3, 2, 2]})
    width = 0.8 / (len(models) + 2)
    for i, m in enumerate(["base", *models]):
        xs = [j + i * width for j in range(len(orgs))]
        axes[0].bar(xs, [data["perplexity"][o][m] for o in orgs], width, label=m)
    xs = [j + (len(models) + 1) * width for j in range(len(orgs))]
    sp = [data["perplexity"][o]["retrain_spread"] for o in orgs]
    axes[0].bar(xs, [s["mean"] for s in sp], width, label="retrain (mean)",
                yerr=[[s["mean"] - s["min"] for s in sp], [s["max"] - s["mean"] for s in sp]], capsize=3)
    axes[0].set_xticks([j + 0.4 - width / 2 for j in range(len(orgs))])
    axes[0].set_xticklabels([o + (" (forgotten)" if o == data["forget"] else "") for o in orgs], rotation=15)
    axes[0].set_ylabel("validation perplexity")
    axes[0].legend(fontsize=8)
    per = data["attack"]["per_model"]
    names = [m for m in data["models"] if m != "base"]
    aucs = [per[m]["auc"] for m in names]
    axes[1].errorbar(range(len(names)), aucs, fmt="o",
                     yerr=[[a - per[m]["ci95"][0] for a, m in zip(aucs, names, strict=True)],
                           [per[m]["ci95"][1] - a for a, m in zip(aucs, names, strict=True)]], capsize=3)
    axes[1].axhline(0.5, color="grey", linestyle="--", linewidth=1)
    axes[1].set_xticks(range(len(names)))
    axes[1].set_xticklabels(names, rotation=30, fontsize=7)
    axes[1].set_title("calibrated MIA AUC (95% CI)")
    if "canaries" in data:
        reps = data["canaries"]["keys"]
        for m in names:
            axes[2].plot(reps, [data["canaries"]["exposure_bits"][m][r] for r in reps], marker="o", label=m)
        axes[2].set_xlabel("canary repetitions")
        axes[2].set_title("exposure (bits, max 9.97)")
        axes[2].legend(fontsize=7)
    fig.suptitle(f"{data['model']}, {data['mode']} mode: unlearning {data['kind']} of {data['forget']!r}")
    fig.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
