"""The learning layer's public API: what the daemons and the CLI call.  Names are stable."""

from __future__ import annotations

from orchestrator.learning.adapters import Adapter, adapter_sha256, read_adapter, write_adapter
from orchestrator.learning.aggregate import (
    METHODS,
    Aggregator,
    ClippedMeanAggregator,
    FedAvgAggregator,
    MedianAggregator,
    StackAggregator,
    TrimmedMeanAggregator,
    clip_weights,
    delta_weights,
    get_aggregator,
    merge_adapters,
    outlier_report,
)
from orchestrator.learning.config import TrainConfig
from orchestrator.learning.data import TOPICS, OrgData, load_org_data
from orchestrator.learning.evaluate import (
    evaluate_perplexity,
    mia_auc,
    sample_losses,
    score_contributions,
)
from orchestrator.learning.federation import RoundRecord, ShardedAdapter, assign_groups, run_rounds, train_sharded
from orchestrator.learning.models import load_model, pick_device, resolve_model
from orchestrator.learning.simulate import SimulationConfig, simulate
from orchestrator.learning.train import TrainResult, train_adapter
from orchestrator.learning.unlearn import (
    SamplesReplacement,
    UnlearnResult,
    retrain_without_samples,
    train_org_sisa,
    unlearn_org_collaborative,
    unlearn_org_grouped,
    unlearn_org_isolated,
    unlearn_samples,
)
from orchestrator.learning.verify import EvalSets, VerificationReport, build_report, evaluate_model, provenance

__all__ = [
    "METHODS", "TOPICS", "Adapter", "Aggregator", "EvalSets", "FedAvgAggregator", "MedianAggregator",
    "OrgData", "RoundRecord", "ShardedAdapter", "SimulationConfig", "StackAggregator", "TrainConfig",
    "TrainResult", "TrimmedMeanAggregator", "UnlearnResult", "VerificationReport", "adapter_sha256", "build_report",
    "delta_weights", "evaluate_model", "evaluate_perplexity", "get_aggregator", "load_model",
    "load_org_data", "merge_adapters", "mia_auc", "pick_device", "read_adapter", "resolve_model",
    "run_rounds", "sample_losses", "score_contributions", "simulate", "train_adapter",
    "train_sharded", "unlearn_org_collaborative", "unlearn_org_isolated", "unlearn_samples",
    "write_adapter", "ClippedMeanAggregator", "clip_weights", "outlier_report", "assign_groups",
    "SamplesReplacement", "retrain_without_samples", "train_org_sisa", "unlearn_org_grouped", "provenance",
]
