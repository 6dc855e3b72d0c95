"""Prints the branch and statement coverage of the protocol contracts from brownie's report and
fails (exit 1) when the branch coverage is below a minimum.

Usage: ``python tools/coverage_gate.py build/tests.json --min-branch 95``

Reads the per-transaction coverage data that ``brownie test --coverage`` stores in
``build/tests.json`` (brownie 1.22.2's own merged report crashes in its mypyc build, see
tests/contracts/conftest.py) and the coverage maps of the build artifacts. Only the protocol's own functions count
(those of the contracts in ``contracts/*.sol``, e.g. ``Rounds.submitUpdate``); code inherited
from OpenZeppelin and the test-only contracts in ``contracts/test/`` are left out. A branch is
covered when the tests took both its outcomes: coverage = (taken true + taken false) / (2 x branches).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def own_contracts() -> set[str]:
    return {p.stem for p in (ROOT / "contracts").glob("*.sol")}


def merged_eval(tests_json: dict) -> dict[str, dict[str, list[set[int]]]]:
    """Union of every recorded transaction's coverage: contract -> source path id ->
    [statements hit, branches seen false, branches seen true] (brownie's layout)."""
    merged: dict[str, dict[str, list[set[int]]]] = {}
    for per_tx in tests_json["tx"].values():
        for contract, paths in per_tx.items():
            for path, sets in paths.items():
                into = merged.setdefault(contract, {}).setdefault(path, [set(), set(), set()])
                for i in range(3):
                    into[i].update(int(x) for x in sets[i])
    return merged


def totals(tests_json: dict, build: Path, names: set[str]) -> dict[str, tuple[int, int, int, int, int]]:
    """Per contract: (statements hit, statements, branch-true hit, branch-false hit, branches)."""
    merged = merged_eval(tests_json)
    out: dict[str, tuple[int, int, int, int, int]] = {}
    for contract in sorted(names):
        artifact = build / f"{contract}.json"
        if not artifact.is_file():
            continue
        cmap = json.loads(artifact.read_text())["coverageMap"]
        hit = merged.get(contract, {})
        s_hit = s_all = t_hit = f_hit = b_all = 0
        for path, fns in cmap["statements"].items():
            seen = hit.get(path, [set(), set(), set()])
            for fn, stmts in fns.items():
                if fn.split(".")[0] == contract:
                    s_all += len(stmts)
                    s_hit += sum(1 for i in stmts if int(i) in seen[0])
        for path, fns in cmap["branches"].items():
            seen = hit.get(path, [set(), set(), set()])
            for fn, branches in fns.items():
                if fn.split(".")[0] == contract:
                    b_all += len(branches)
                    f_hit += sum(1 for i in branches if int(i) in seen[1])
                    t_hit += sum(1 for i in branches if int(i) in seen[2])
        out[contract] = (s_hit, s_all, t_hit, f_hit, b_all)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="brownie's test data with coverage (build/tests.json)")
    parser.add_argument("--min-branch", type=float, default=95.0, help="minimum branch coverage, percent")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        print(f"{args.report} not found: run `brownie test tests/contracts --coverage` first",
              file=sys.stderr)
        return 2
    per = totals(json.loads(args.report.read_text()), args.report.parent / "contracts", own_contracts())
    if not per or not any(v[0] for v in per.values()):
        print(f"{args.report} holds no coverage of the contracts in contracts/: run `brownie test "
              "tests/contracts --coverage` on an anvil with --steps-tracing (tools/coverage-anvil)", file=sys.stderr)
        return 2
    print("Contract coverage (own functions; branches: both outcomes taken)")
    print(f"  {'contract':22s} {'statements':>14s} {'branches':>16s}")
    sums = [0, 0, 0, 0, 0]
    for name in sorted(per):
        s_hit, s_all, t_hit, f_hit, b_all = per[name]
        sums = [a + b for a, b in zip(sums, per[name], strict=True)]
        b_pct = 100.0 * (t_hit + f_hit) / (2 * b_all) if b_all else 100.0
        print(f"  {name:22s} {s_hit:5d}/{s_all:<5d} {100.0 * s_hit / max(s_all, 1):5.1f}% "
              f"{t_hit + f_hit:5d}/{2 * b_all:<5d} {b_pct:5.1f}%")
    s_hit, s_all, t_hit, f_hit, b_all = sums
    branch = 100.0 * (t_hit + f_hit) / (2 * b_all) if b_all else 100.0
    print(f"  {'TOTAL':22s} {s_hit:5d}/{s_all:<5d} {100.0 * s_hit / max(s_all, 1):5.1f}% "
          f"{t_hit + f_hit:5d}/{2 * b_all:<5d} {branch:5.1f}%")
    if branch < args.min_branch:
        print(f"branch coverage {branch:.1f}% is below the minimum {args.min_branch:.1f}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
