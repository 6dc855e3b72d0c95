"""``python -m orchestrator daemon dead-letters --role R [--requeue ID | --all]``.

Reads the daemon's state database directly (no chain connection, works while the daemon runs):
lists the events it set aside after repeated failures, with the last error and when it retries
them by itself; ``--requeue`` hands one (or ``--all``) back at once. The daemon picks requeued
events up on its next poll.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

from orchestrator.errors import ConfigError


def event_names() -> dict[str, str]:
    """topic0 -> "Contract.Event" over every build artifact (for listing raw logs)."""
    from eth_utils import event_abi_to_log_topic

    from orchestrator.chain.artifacts import DEFAULT_BUILD_DIR

    names: dict[str, str] = {}
    for path in sorted(Path(DEFAULT_BUILD_DIR).glob("*.json")):
        try:
            abi = json.loads(path.read_text()).get("abi", [])
        except (OSError, json.JSONDecodeError):
            continue
        for entry in abi:
            if entry.get("type") == "event":
                names.setdefault("0x" + event_abi_to_log_topic(entry).hex(), f"{path.stem}.{entry['name']}")
    return names


def state_dir_of(args: argparse.Namespace, default_state: Path) -> Path:
    """--state-dir, else the daemon's default folder (from the signing key, or the only one there is)."""
    import os

    if args.state_dir:
        return Path(args.state_dir)
    if os.environ.get("ORCH_PRIVATE_KEY") or os.environ.get("ORCH_KEYSTORE"):
        from orchestrator.chain.signer import load_signer

        return default_state / f"{args.role}-{load_signer().address[2:10].lower()}"
    found = sorted(default_state.glob(f"{args.role}-*"))
    if len(found) != 1:
        where = ", ".join(str(p) for p in found) or f"none under {default_state}"
        raise ConfigError(f"give --state-dir (the {args.role}'s state folders: {where})")
    return found[0]


def dead_letters_command(args: argparse.Namespace, default_state: Path) -> int:
    from orchestrator.chain.scanner import DeadLetterStore

    state = state_dir_of(args, default_state)
    databases = sorted(state.rglob("*.sqlite"))
    if not databases:
        raise ConfigError(f"no daemon state in {state}: has the {args.role} daemon run with this --state-dir?")
    names = event_names()
    matched = 0
    for db_path in databases:
        store = DeadLetterStore.open(db_path)
        try:
            letters = store.list()
            if args.requeue or args.all:
                chosen = letters if args.all else [d for d in letters if d.matches(args.requeue)]
                store.requeue(chosen)
                matched += len(chosen)
                for d in chosen:
                    print(f"requeued {d.id} {names.get(d.topic, d.topic)} (block {d.block})")
                continue
            for d in letters:
                retry = ("now" if d.retry_at is not None and d.retry_at <= time.time() else
                         dt.datetime.fromtimestamp(d.retry_at).isoformat(timespec="seconds") if d.retry_at else "on restart")
                print(f"{d.id}  {names.get(d.topic, d.topic)}  block {d.block}  {d.attempts} attempts, "
                      f"requeued {d.requeues}x, retry {retry}\n    {d.last_error}")
                matched += 1
        finally:
            store.close()
    if args.requeue and not matched:
        raise ConfigError(f"no set-aside event {args.requeue!r} in {state}; list them without --requeue")
    if not (args.requeue or args.all):
        print(f"{matched} set-aside event(s) in {state}")
    return 0
