"""``python -m orchestrator <command>``: one entry point, one sub-command per capability.

Each layer owns its sub-commands in a ``cli.py`` module exposing ``register(subparsers)``;
the module is imported lazily so that ``cid`` does not pay for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings
from collections.abc import Sequence

from orchestrator.errors import OrchestratorError

# A module's register() adds one or more sub-commands.
_COMMAND_MODULES: list[str] = [
    "orchestrator.storage.cli",
    "orchestrator.learning.cli",
    "orchestrator.split.cli",
    "orchestrator.daemons.cli",
    "orchestrator.agents.cli",
]
#: Which module owns which command, so that `cid` does not pay for importing torch.
_OWNER: dict[str, str] = {
    "cid": "orchestrator.storage.cli",
    "ipfs": "orchestrator.storage.cli",
    "simulate": "orchestrator.learning.cli",
    "split-train": "orchestrator.split.cli",
    "demo": "orchestrator.daemons.cli",
    "daemon": "orchestrator.daemons.cli",
    "deploy": "orchestrator.daemons.cli",
    "incentives": "orchestrator.agents.cli",
    "incentives-calibrate": "orchestrator.agents.cli",
}


def _command_of(argv: Sequence[str]) -> str | None:
    for token in argv:
        if not token.startswith("-"):
            return token
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator",
        description=(
            "LedgerLoRA: federated LoRA fine-tuning governed by smart contracts, "
            "with verifiable unlearning."
        ),
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    owner = _OWNER.get(_command_of(argv or []) or "")
    for name in [owner] if owner else _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a layer not built yet
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.verbose == 0:
        # Deprecation chatter from the ML libraries drowns the progress bars; -v shows it again.
        for category in (FutureWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=r"(transformers|peft|torch)\.")
    try:
        return int(args.func(args) or 0)
    except OrchestratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
