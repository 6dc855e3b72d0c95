"""Unlearning evidence and the price of isolation, in one run (issue 10, sections 1 and 2).

Phase "evidence": ``simulate`` in isolated mode (5 BBC orgs, sport forgotten): the calibrated
membership attack on >= 100 member and >= 100 non-member sport articles with 95% bootstrap
intervals, canaries inserted 1/4/16 times with exposure over all 1,000 codes, per-topic
perplexity, each for base / before / after and independent retrains over 3 seeds.

Phase "price": per-topic perplexity, at the same compute (org trainings x steps x batch), of
  - isolated: every org trains alone, exact stack (the evidence run's model before unlearning),
  - collaborative: FedAvg over all orgs each round (G = 1),
  - grouped (``--price-groups``): G groups (FedAvg inside, exact stack across),
  - central: one LoRA trained on the union of all orgs' texts for K x rounds x steps steps.

Phase "frontier": grouped collaboration for G = 1..K: mean per-topic perplexity (utility) and
the org trainings replayed to forget one org (cost), measured and expected over a uniformly
chosen org.

Phase "poison": the robust merge against one poisoned org (x100 scaled, sign-flipped, random
adapter), on the evidence run's org adapters: per-topic perplexity of each robust merge vs the
clean merge, and the flagged org.

Every phase writes its JSON as soon as it finishes (OUT/<phase>.json) so a run cut short keeps
what it measured.  Run under ``nice``; the exact commands used for docs/LEARNING.md are there.

    python bench/unlearning_evidence.py --model smollm2 --out out/evidence [--phases evidence,price,poison]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.learning.config import TrainConfig  # noqa: E402
from orchestrator.learning.data import TOPICS  # noqa: E402

log = logging.getLogger("unlearning_evidence")


def _config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr, seed=args.seed)


def _sim_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from orchestrator.learning.simulate import SimulationConfig

    return SimulationConfig(
        model=args.model, orgs=args.orgs, rounds=args.rounds, mode="isolated", unlearn=args.forget,
        max_train=args.max_train, max_val=args.max_val, mia_samples=args.mia_samples,
        canary_reps=(1, 4, 16), retrain_seeds=args.retrain_seeds, train=_config(args), seed=0,
        score=False, progress=False,
    )


def phase_evidence(args: argparse.Namespace, out: Path) -> dict:
    from orchestrator.learning.simulate import simulate

    report = simulate(_sim_config(args), out / "work-evidence")
    report.write(out / "evidence.json", out / "evidence.png")
    return report.to_dict()


def _isolated_run(args: argparse.Namespace, out: Path):  # type: ignore[no-untyped-def]
    """The evidence phase's federation (same data, same config): trained once, reused here."""
    from orchestrator.learning.federation import run_rounds
    from orchestrator.learning.simulate import _load

    cfg = _sim_config(args)
    data = _load(cfg)
    texts = {o: d.train for o, d in data.items()}
    work = out / "work-evidence" / "run"
    final = work / f"round{args.rounds - 1}" / "merged"
    if not final.is_dir():
        run_rounds(args.model, texts, cfg.train, args.rounds, work, mode="isolated")
    adapters = {o: work / f"round{args.rounds - 1}" / o for o in texts}
    return data, texts, adapters, final


def phase_price(args: argparse.Namespace, out: Path) -> dict:
    from orchestrator.learning.evaluate import loaded, losses_of, perplexity_from
    from orchestrator.learning.federation import assign_groups, run_rounds
    from orchestrator.learning.train import train_adapter

    orgs = list(TOPICS[: args.orgs])
    data, texts, _, isolated = _isolated_run(args, out)
    val = {o: d.val for o, d in data.items()}
    cfg = _config(args)
    work = out / "work-price"
    models: dict[str, Path] = {"isolated": isolated}
    trainings: dict[str, int] = {"isolated": len(orgs) * args.rounds}
    started = time.perf_counter()
    for name, mode, groups in [
        *[(f"grouped_G{g}", "grouped", assign_groups(orgs, g)) for g in args.price_groups],
        ("collaborative", "collaborative", None),
    ]:
        history = run_rounds(args.model, texts, cfg, args.rounds, work / name, mode=mode, groups=groups)
        models[name] = history[-1].merged
        trainings[name] = sum(r.trainings for r in history)
        log.info("price: %s trained (%.0f s so far)", name, time.perf_counter() - started)
    # Central: one LoRA on the union, as many steps as all orgs together (same compute).
    union = [t for o in orgs for t in texts[o]]
    central_cfg = replace(cfg, steps=cfg.steps * len(orgs) * args.rounds)
    models["central"] = train_adapter(args.model, union, central_cfg, work / "central", progress=False).adapter_dir
    trainings["central"] = len(orgs) * args.rounds
    rows: dict[str, dict[str, float]] = {}
    for name, adapter in [("base", None), *models.items()]:
        with loaded(args.model, adapter) as (model, tok):
            rows[name] = {
                o: perplexity_from(*losses_of(model, tok, val[o], seq_len=cfg.seq_len, batch_size=args.eval_batch))
                for o in orgs
            }
        rows[name]["mean"] = sum(rows[name][o] for o in orgs) / len(orgs)
        log.info("price: %s evaluated", name)
    result = {
        "model": args.model, "orgs": orgs, "rounds": args.rounds, "config": cfg.to_dict(),
        "central_config": central_cfg.to_dict(), "perplexity": rows, "org_trainings": trainings,
        "seconds": time.perf_counter() - started,
    }
    (out / "price.json").write_text(json.dumps(result, indent=2, sort_keys=True))
    return result


def phase_poison(args: argparse.Namespace, out: Path) -> dict:
    from orchestrator.learning.poison import poisoning_experiment

    data, _, adapters, _ = _isolated_run(args, out)
    result = poisoning_experiment(
        args.model, adapters, {o: float(len(d.train)) for o, d in data.items()}, {o: d.val for o, d in data.items()},
        out / "work-poison", attacker=args.attacker, seq_len=args.seq_len, eval_batch=args.eval_batch,
    )
    (out / "poison.json").write_text(json.dumps(result, indent=2, sort_keys=True))
    return result


def phase_frontier(args: argparse.Namespace, out: Path) -> dict:
    """G = 1..K: utility (mean per-topic perplexity) vs unlearning cost (org trainings replayed)."""
    from orchestrator.learning.evaluate import loaded, losses_of, perplexity_from
    from orchestrator.learning.federation import assign_groups, run_rounds
    from orchestrator.learning.unlearn import unlearn_org_grouped

    data, texts, _, _ = _isolated_run(args, out)
    orgs = sorted(texts)
    val = {o: d.val for o, d in data.items()}
    cfg = _config(args)
    rows = []
    for g in range(1, len(orgs) + 1):
        groups = assign_groups(orgs, g)
        started = time.perf_counter()
        history = run_rounds(args.model, texts, cfg, args.rounds, out / "work-frontier" / f"G{g}", mode="grouped",
                             groups=groups)
        with loaded(args.model, history[-1].merged) as (model, tok):
            ppl = {o: perplexity_from(*losses_of(model, tok, val[o], seq_len=cfg.seq_len, batch_size=args.eval_batch))
                   for o in orgs}
        result = unlearn_org_grouped(args.model, history, texts, args.forget, groups,
                                     out / "work-frontier" / f"G{g}-unlearn")
        sizes = [sum(1 for o in orgs if groups[o] == h) for h in range(g)]
        # expected cost of forgetting an org chosen uniformly (all joined in round 0)
        expected = sum(size * (size - 1) for size in sizes) / len(orgs) * args.rounds
        rows.append({
            "G": g, "groups": groups, "perplexity": ppl, "mean_perplexity": sum(ppl.values()) / len(ppl),
            "unlearn_trainings": result.trainings, "expected_unlearn_trainings": expected,
            "full_retrain_trainings": (len(orgs) - 1) * args.rounds, "seconds": time.perf_counter() - started,
        })
        log.info("frontier: G=%d mean ppl %.2f, unlearning %s: %d trainings", g, rows[-1]["mean_perplexity"],
                 args.forget, result.trainings)
    result = {"model": args.model, "orgs": orgs, "rounds": args.rounds, "config": cfg.to_dict(),
              "forget": args.forget, "rows": rows}
    (out / "frontier.json").write_text(json.dumps(result, indent=2, sort_keys=True))
    return result


PHASES = {"evidence": phase_evidence, "price": phase_price, "poison": phase_poison, "frontier": phase_frontier}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="tiny, smollm2 or a local Hugging Face folder")
    parser.add_argument("--out", type=Path, default=Path("out/evidence"))
    parser.add_argument("--phases", default="evidence,poison,price,frontier",
                        help="comma-separated: evidence, poison, price, frontier")
    parser.add_argument("--orgs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--steps", type=int, default=16, help="steps per org and round")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-train", type=int, default=121, help="training texts per org (canaries included)")
    parser.add_argument("--max-val", type=int, default=16, help="validation texts per topic")
    parser.add_argument("--mia-samples", type=int, default=100)
    parser.add_argument("--retrain-seeds", type=int, default=3)
    parser.add_argument("--price-groups", default="", help="G values for the grouped rows of the price table")
    parser.add_argument("--attacker", default="tech", help="the org that submits the poisoned adapter")
    parser.add_argument("--forget", default="sport")
    parser.add_argument("--eval-batch", type=int, default=16)
    args = parser.parse_args()
    args.price_groups = [int(g) for g in args.price_groups.split(",") if g.strip()]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for phase in [p.strip() for p in args.phases.split(",") if p.strip()]:
        if phase not in PHASES:
            parser.error(f"unknown phase {phase!r}; choose from {', '.join(PHASES)}")
        started = time.perf_counter()
        log.info("phase %s starts", phase)
        PHASES[phase](args, args.out)
        summary[phase] = round(time.perf_counter() - started, 1)
        log.info("phase %s done in %.0f s", phase, summary[phase])
    print(json.dumps({"phase_seconds": summary, "out": str(args.out)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
