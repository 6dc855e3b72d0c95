"""Unlearning vs. retraining from scratch, measured in the same run (issue 4 targets).

- org level, isolated mode: re-merging without the org vs. retraining the remaining orgs;
  target >= 100x faster.
- sample level (SISA, S shards): retraining the affected shard(s) vs. retraining all shards of
  the org; target >= S/2 times faster.

    python bench/unlearn.py [--model tiny|smollm2|PATH] [--orgs 5] [--rounds 2] [--shards 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.learning.adapters import adapter_sha256  # noqa: E402
from orchestrator.learning.cli import default_train_config  # noqa: E402
from orchestrator.learning.data import TOPICS, load_org_data  # noqa: E402
from orchestrator.learning.federation import run_rounds, train_sharded  # noqa: E402
from orchestrator.learning.models import load_model  # noqa: E402
from orchestrator.learning.unlearn import unlearn_org_isolated, unlearn_samples  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--orgs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--max-train", type=int, default=32)
    parser.add_argument("--forget", default="sport")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    cfg = default_train_config(args.model)
    if args.steps:
        cfg = type(cfg).from_dict({**cfg.to_dict(), "steps": args.steps})
    orgs = list(TOPICS[: args.orgs])
    texts = {o: load_org_data(o, max_train=args.max_train).train for o in orgs}
    load_model(args.model)  # load once, outside every timed region
    results: dict[str, object] = {"model": args.model, "orgs": orgs, "rounds": args.rounds, "config": cfg.to_dict()}
    with tempfile.TemporaryDirectory(prefix="bench-unlearn-") as tmp:
        root = Path(tmp)
        history = run_rounds(args.model, texts, cfg, args.rounds, root / "run")
        final = history[-1]

        t0 = time.perf_counter()
        unlearned = unlearn_org_isolated(final.adapters, final.weights, args.forget, root / "unlearned")
        t_unlearn = time.perf_counter() - t0
        t0 = time.perf_counter()
        remaining = {o: t for o, t in texts.items() if o != args.forget}
        retrained = run_rounds(args.model, remaining, cfg, args.rounds, root / "retrain")[-1].merged
        t_retrain = time.perf_counter() - t0
        org_ratio = t_retrain / t_unlearn
        results["org_level"] = {
            "unlearn_s": t_unlearn, "retrain_s": t_retrain, "speedup": org_ratio,
            "hashes_equal": adapter_sha256(unlearned) == adapter_sha256(retrained), "target": 100,
        }
        print(f"org level (isolated): unlearn {t_unlearn:.3f} s, retrain {t_retrain:.2f} s -> "
              f"{org_ratio:.0f}x (target >= 100x), exact={results['org_level']['hashes_equal']}")

        data = texts[args.forget]
        sharded = train_sharded(args.model, data, cfg, root / "shards", shards=args.shards, rounds=args.rounds)
        remove = [data[0]]
        t0 = time.perf_counter()
        res = unlearn_samples(args.model, sharded, remove, cfg, root / "sample-unlearn", rounds=args.rounds)
        t_sample = time.perf_counter() - t0
        t0 = time.perf_counter()
        full = train_sharded(args.model, [t for t in data if t not in remove], cfg, root / "sample-retrain",
                             shards=args.shards, rounds=args.rounds)
        t_full = time.perf_counter() - t0
        sample_ratio = t_full / t_sample
        results["sample_level"] = {
            "shards": args.shards, "removed": len(remove), "unlearn_s": t_sample, "retrain_s": t_full,
            "speedup": sample_ratio, "target": args.shards / 2,
            "hashes_equal": adapter_sha256(res.merged) == adapter_sha256(full.merged),
        }
        print(f"sample level (SISA, S={args.shards}): unlearn {t_sample:.2f} s, retrain {t_full:.2f} s -> "
              f"{sample_ratio:.1f}x (target >= {args.shards / 2:.1f}x), exact={results['sample_level']['hashes_equal']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    ok = org_ratio >= 100 and sample_ratio >= args.shards / 2
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
