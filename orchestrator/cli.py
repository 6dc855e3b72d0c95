"""``python -m orchestrator <command>`` (console script ``ledgerlora``): one entry point.

Each layer owns its sub-commands in a ``cli.py`` module exposing ``register(subparsers)``;
the module is imported lazily so that ``cid`` does not pay for importing torch. The top-level
``--help`` and ``--version`` import no layer at all (:data:`_SUMMARY` lists the commands;
``tests/python/daemons/test_ops_cli.py`` checks it against the modules).

Every log record and error message passes through :func:`orchestrator.redact.redact`, so no
credential in an RPC or IPFS URL is ever printed; an unexpected exception prints its
(redacted) traceback and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
import warnings
from collections.abc import Sequence

from orchestrator import __version__
from orchestrator.errors import OrchestratorError
from orchestrator.redact import install_log_redaction, redact

#: Which module owns which command (its register() adds it), so `cid` does not pay for torch.
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
    "org": "orchestrator.ops.cli",
    "status": "orchestrator.ops.cli",
    "dashboard": "orchestrator.dashboard.cli",
    "audit-receipt": "orchestrator.dashboard.cli",
}
#: One line per command for the top-level help (so that it imports nothing heavy).
_SUMMARY: dict[str, str] = {
    "cid": "print the CIDv1 (and CIDv0) of a file or of stdin, as Kubo's `ipfs add` would",
    "ipfs": "the content-addressed store: add, get, cat, pin, verify, gc, CAR export/import",
    "simulate": "federated LoRA rounds and unlearning in one process (no chain)",
    "split-train": "split learning (FL-GLM) across client and server processes",
    "demo": "a whole consortium on two in-process chains: train, reward, unlearn, anchor, report",
    "deploy": "deploy the protocol (and optionally the anchor) over JSON-RPC",
    "daemon": "run one daemon (trainer, aggregator, unlearner, relayer), or list/requeue its dead letters",
    "org": "an organisation's everyday actions: stake, join, leave, claim, request-unlearning, decrypt-adapter",
    "status": "the consortium at a glance: rounds, members, submissions, deadlines, unlearning, model",
    "dashboard": "read-only web dashboard: rounds, members, lineage, unlearning, anchors (Prometheus metrics too)",
    "audit-receipt": "re-derive an unlearning receipt's model from the adapters on chain and compare",
    "incentives": "economic simulation: Q-learning orgs paid by exact Shapley values",
    "incentives-calibrate": "fit the incentives surrogate from real training runs",
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
    parser.add_argument("--version", action="version", version=f"ledgerlora {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    command = _command_of(argv or [])
    owner = _OWNER.get(command or "")
    if owner is None:
        # No (known) command: argparse prints the help or the "invalid choice" error from the
        # summary without importing any layer.
        for name, text in _SUMMARY.items():
            sub.add_parser(name, help=text, add_help=False)
        return parser
    importlib.import_module(owner).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    install_log_redaction()
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
        print(f"error: {redact(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug, not bad input: keep the traceback, minus any secret in it
        print(redact(traceback.format_exc()), file=sys.stderr, end="")
        return 2
