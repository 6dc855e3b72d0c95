"""The unlearning verification report (section 7 of issue 4): JSON plus a PNG plot.

For every org: perplexity of the base model, the merged model before unlearning, after
unlearning, and a model retrained from scratch without the forgotten data (the baseline).  For
the forgotten data: loss-threshold membership-inference AUC (forgotten vs. held-out) and canary
losses, before / after / retrain.  Wall times of unlearning vs. retraining, and the tensor hashes
of the unlearned and the retrained merged adapters.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.learning.evaluate import loaded, losses_of, mean_losses, mia_auc, perplexity_from

MODELS = ("base", "before", "after", "retrain")


@dataclass
class EvalSets:
    """What to evaluate: per-org validation texts and the forgotten / held-out / canary texts."""

    val: Mapping[str, Sequence[str]]
    forgotten: Sequence[str]
    heldout: Sequence[str]
    canaries: Sequence[str]


@dataclass
class ModelEval:
    perplexity: dict[str, float]
    mia_auc: float
    canary_loss: float
    forgotten_loss: float


def evaluate_model(model_spec: str, adapter: Path | None, sets: EvalSets, *, seq_len: int, batch_size: int) -> ModelEval:
    """All figures for one model in one load (evaluation is the expensive part on SmolLM2)."""
    with loaded(model_spec, adapter) as (model, tok):

        def run(texts: Sequence[str]) -> tuple[list[float], list[int]]:
            return losses_of(model, tok, list(texts), seq_len=seq_len, batch_size=batch_size)

        ppl = {org: perplexity_from(*run(texts)) for org, texts in sorted(sets.val.items())}
        member = mean_losses(*run(sets.forgotten))
        nonmember = mean_losses(*run(sets.heldout))
        canary = mean_losses(*run(sets.canaries)) if sets.canaries else [math.nan]
    finite = [x for x in member if not math.isnan(x)]
    return ModelEval(
        perplexity=ppl,
        mia_auc=mia_auc(member, nonmember),
        canary_loss=_mean(canary),
        forgotten_loss=_mean(finite),
    )


def _mean(xs: Sequence[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else math.nan


@dataclass
class VerificationReport:
    """Everything a member needs to check an unlearning receipt; hashed into the receipt."""

    model: str
    mode: str
    kind: str  # "org" or "samples"
    forget: str
    orgs: list[str]
    removed_samples: int
    evals: dict[str, ModelEval]
    unlearn_seconds: float
    retrain_seconds: float
    unlearned_sha256: str
    retrained_sha256: str
    contributions: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        return self.retrain_seconds / self.unlearn_seconds if self.unlearn_seconds > 0 else math.inf

    def checks(self) -> dict[str, bool]:
        """The acceptance criteria of issue 4, evaluated on this run."""
        after, retrain, before = self.evals["after"], self.evals["retrain"], self.evals["before"]
        rel = abs(after.perplexity[self.forget] / retrain.perplexity[self.forget] - 1)
        moved = {o: abs(after.perplexity[o] / before.perplexity[o] - 1) for o in self.orgs if o != self.forget}
        return {
            "hashes_equal": self.unlearned_sha256 == self.retrained_sha256,
            "forgotten_ppl_within_10pct_of_retrain": rel <= 0.10,
            "mia_auc_within_0.05_of_retrain": abs(after.mia_auc - retrain.mia_auc) <= 0.05,
            "retained_ppl_moved_lt_5pct": all(v < 0.05 for v in moved.values()),
        }

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model": self.model,
            "mode": self.mode,
            "kind": self.kind,
            "forget": self.forget,
            "orgs": self.orgs,
            "removed_samples": self.removed_samples,
            "perplexity": {
                org: {m: self.evals[m].perplexity[org] for m in MODELS if m in self.evals} for org in self.orgs
            },
            "mia_auc": {m: self.evals[m].mia_auc for m in MODELS if m in self.evals},
            "canary_loss": {m: self.evals[m].canary_loss for m in MODELS if m in self.evals},
            "forgotten_loss": {m: self.evals[m].forgotten_loss for m in MODELS if m in self.evals},
            "seconds": {
                "unlearn": self.unlearn_seconds,
                "retrain": self.retrain_seconds,
                "speedup": self.speedup,
            },
            "unlearned_sha256": self.unlearned_sha256,
            "retrained_sha256": self.retrained_sha256,
            "contributions": self.contributions,
            "settings": self.settings,
            "checks": self.checks(),
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
    retrain: Path,
    sets: EvalSets,
    unlearn_seconds: float,
    retrain_seconds: float,
    removed_samples: int,
    seq_len: int,
    batch_size: int = 8,
    contributions: Mapping[str, float] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> VerificationReport:
    """Evaluate base / before / after / retrain and assemble the report (what a daemon's
    unlearning executor calls after :func:`~orchestrator.learning.unlearn.unlearn_org_isolated`).

    When ``after`` and ``retrain`` hold bit-identical tensors the retrain's figures are reused:
    identical tensors give identical figures, evaluating twice would prove nothing.
    """
    import logging
    import time

    from orchestrator.learning.adapters import adapter_sha256

    log = logging.getLogger(__name__)
    after_sha, retrain_sha = adapter_sha256(after), adapter_sha256(retrain)
    evals: dict[str, ModelEval] = {}
    for name, adapter in (("base", None), ("before", before), ("after", after), ("retrain", retrain)):
        if name == "retrain" and after_sha == retrain_sha:
            evals[name] = evals["after"]
            continue
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
        unlearn_seconds=unlearn_seconds,
        retrain_seconds=retrain_seconds,
        unlearned_sha256=after_sha,
        retrained_sha256=retrain_sha,
        contributions=dict(contributions or {}),
        settings={
            **dict(settings or {}),
            "retrain_eval": "reused (identical tensors)" if after_sha == retrain_sha else "evaluated",
        },
    )


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    raise TypeError(f"cannot serialise {type(obj)}")


def metrics_hash(data: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the figures (without wall times): goes into the receipt."""
    figures = {k: v for k, v in data.items() if k not in ("seconds", "metrics_sha256")}
    blob = json.dumps(figures, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(blob.encode()).hexdigest()


def plot_report(data: Mapping[str, Any], png_path: Path) -> Path:
    """Per-org perplexity bars (base/before/after/retrain) and MIA AUC / canary loss panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    orgs = list(data["orgs"])
    models = [m for m in MODELS if m in data["mia_auc"]]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), gridspec_kw={"width_ratios": [3, 1, 1]})
    width = 0.8 / len(models)
    for i, m in enumerate(models):
        xs = [j + i * width for j in range(len(orgs))]
        axes[0].bar(xs, [data["perplexity"][o][m] for o in orgs], width, label=m)
    axes[0].set_xticks([j + 0.4 - width / 2 for j in range(len(orgs))])
    axes[0].set_xticklabels([o + (" (forgotten)" if o == data["forget"] else "") for o in orgs], rotation=15)
    axes[0].set_ylabel("validation perplexity")
    axes[0].legend()
    axes[1].bar(models, [data["mia_auc"][m] for m in models], color="tab:purple")
    axes[1].axhline(0.5, color="grey", linestyle="--", linewidth=1)
    axes[1].set_title("MIA AUC (forgotten vs held-out)")
    axes[2].bar(models, [data["canary_loss"][m] for m in models], color="tab:orange")
    axes[2].set_title("canary loss")
    fig.suptitle(
        f"{data['model']}, {data['mode']} mode: unlearning {data['kind']} of {data['forget']!r}; "
        f"{data['seconds']['speedup']:.0f}x faster than retraining"
    )
    fig.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
