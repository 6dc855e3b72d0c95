"""Throughput and memory of our UnixFS importer against the Rust ``ipfs_cid`` on one file.

    python bench/cid.py                 # 256 MiB seeded file, best of 3
    python bench/cid.py --size-mb 1024  # memory must not grow with the file

Both tools hash the same file from the page cache in the same run (the file is read once
before timing). ``ipfs_cid`` is timed as a process (its start-up is ~1 ms); ours in-process,
and separately as ``python -c`` child to give the RSS figure. Targets (issue 3): throughput
>= 0.5x ipfs_cid, peak extra memory < 64 MB whatever the file size.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.storage.cid import compute_cid  # noqa: E402
from orchestrator.storage.embedded import EmbeddedStore  # noqa: E402

MIB = 1024 * 1024


def make_file(path: Path, size: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 8 * MIB)
            fh.write(rng.randbytes(n))
            left -= n


def run_child(argv: list[str]) -> tuple[float, int, str]:
    """(wall seconds, max RSS in KiB, stdout) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{argv[0]} failed with status {proc.returncode}")
    return wall, usage.ru_maxrss, out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size-mb", type=int, default=256, help="file size in MiB (default 256)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per tool; the best counts")
    ap.add_argument(
        "--file", type=Path, default=None, help="use this file instead of a generated one"
    )
    ap.add_argument("--oracle", default=shutil.which("ipfs_cid") or "/usr/bin/ipfs_cid")
    ap.add_argument(
        "--skip-store", action="store_true", help="skip the EmbeddedStore.add_file figure"
    )
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-cid-", dir=os.environ.get("ORCH_CACHE_DIR")))
    try:
        path = args.file or workdir / "input.bin"
        if args.file is None:
            make_file(path, args.size_mb * MIB)
        size = path.stat().st_size
        with open(path, "rb") as fh:  # warm the page cache for both tools
            while fh.read(8 * MIB):
                pass

        theirs = [run_child([args.oracle, str(path)]) for _ in range(args.repeat)]
        t_theirs = min(t for t, _, _ in theirs)
        rss_theirs = max(r for _, r, _ in theirs)
        expected = json.loads(theirs[0][2])["CIDv0"]

        t_ours = float("inf")
        cid = ""
        for _ in range(args.repeat):
            start = time.perf_counter()
            cid = compute_cid(path)
            t_ours = min(t_ours, time.perf_counter() - start)
        if cid != expected:
            raise SystemExit(f"CID mismatch: ours {cid}, ipfs_cid {expected}")

        tracemalloc.start()
        compute_cid(path)
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        code = "import sys; from orchestrator.storage.cid import compute_cid; "
        base_code = code + "print('-')"
        work_code = code + "print(compute_cid(sys.argv[1]))"
        env_py = [sys.executable, "-c"]
        os.environ["PYTHONPATH"] = str(REPO)
        _, rss_base, _ = run_child([*env_py, base_code])
        t_child, rss_work, child_out = run_child([*env_py, work_code, str(path)])
        assert child_out.strip() == expected
        rss_extra = (rss_work - rss_base) * 1024

        mb = size / 1e6
        print(f"file: {size} bytes ({size / MIB:.0f} MiB), CID {expected} (both tools agree)")
        print(
            f"ipfs_cid (Rust)        : {t_theirs:6.3f} s  {mb / t_theirs:7.1f} MB/s  max RSS {rss_theirs / 1024:6.1f} MiB"
        )
        print(f"compute_cid in-process : {t_ours:6.3f} s  {mb / t_ours:7.1f} MB/s")
        print(f"compute_cid child proc : {t_child:6.3f} s  (incl. interpreter start-up)")
        ratio = t_theirs / t_ours
        print(
            f"throughput ratio ours/ipfs_cid: {ratio:.2f}x  (target >= 0.5x: {'PASS' if ratio >= 0.5 else 'FAIL'})"
        )
        print(
            f"peak extra memory: tracemalloc {traced_peak / MIB:.2f} MiB; child max RSS "
            f"{rss_work / 1024:.1f} MiB vs {rss_base / 1024:.1f} MiB for a bare import "
            f"(+{max(rss_extra, 0) / MIB:.2f} MiB)  "
            f"(target < 64 MB: {'PASS' if max(traced_peak, rss_extra) < 64e6 else 'FAIL'})"
        )
        if not args.skip_store:
            store = EmbeddedStore(workdir / "store")
            start = time.perf_counter()
            stored = store.add_file(path)
            t_add = time.perf_counter() - start
            start = time.perf_counter()
            out = store.get_file(stored, workdir / "read-back.bin")
            t_cat = time.perf_counter() - start
            assert stored == expected and out.stat().st_size == size
            print(
                f"EmbeddedStore.add_file : {t_add:6.3f} s  {mb / t_add:7.1f} MB/s (blocks written to {workdir})"
            )
            print(
                f"EmbeddedStore.get_file : {t_cat:6.3f} s  {mb / t_cat:7.1f} MB/s (every block re-hashed)"
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
