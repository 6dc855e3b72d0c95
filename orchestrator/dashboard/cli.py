"""Sub-commands ``dashboard`` (read-only web dashboard) and ``audit-receipt`` (re-derive a receipt).

Imports are deferred to the command functions so that ``--help`` stays fast (no torch, no web3).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from orchestrator.errors import ConfigError

DEFAULT_STATE = Path(os.environ.get("ORCH_CACHE_DIR", Path.home() / ".cache" / "ledgerlora")) / "dashboard"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from orchestrator.observability import add_arguments

    d = sub.add_parser(
        "dashboard",
        help="read-only web dashboard of a consortium: rounds, members, lineage, unlearning, anchors",
        description=(
            "Indexes the protocol's events into SQLite (resumable, reorg-aware) and serves six pages on "
            "http://HOST:PORT/: overview, members, rounds, model lineage, unlearning requests and anchors. "
            "It holds no key and sends no transaction. Reports and receipts are read from IPFS: "
            "$ORCH_IPFS_API for a Kubo node, else the embedded blockstore in $ORCH_IPFS_DIR."
        ),
    )
    _chain_arguments(d)
    d.add_argument("--anchor-rpc-url", default=os.environ.get("ORCH_PUBLIC_RPC_URL"),
                   help="public chain holding PublicAnchor (env ORCH_PUBLIC_RPC_URL); without it the anchors page is empty")
    d.add_argument("--anchor-manifest", default=None,
                   help="PublicAnchor manifest (default: the one next to --manifest named <chainid>-anchor.json, "
                        "or the protocol manifest when it holds PublicAnchor)")
    d.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    d.add_argument("--port", type=int, default=8700, help="port to listen on (default 8700)")
    d.add_argument("--state-dir", default=None, help=f"where the SQLite index lives (default {DEFAULT_STATE})")
    d.add_argument("--confirmations", type=int, default=0, help="index only blocks this deep (default 0)")
    add_arguments(d)
    d.set_defaults(func=_dashboard)

    a = sub.add_parser(
        "audit-receipt",
        help="re-derive an unlearning receipt's model from the adapters on chain and compare",
        description=(
            "Reads the receipt of unlearning request N from the chain and IPFS, checks every listed input against "
            "the chain (the latest submission event of that round and org has the same CID and sample count, not "
            "revoked, none of the removed ones), rebuilds the "
            "removed-contributions root, re-merges the remaining adapters and compares the result with the "
            "receipt's model hash and the sealed model on chain. Needs a recipient's X25519 key in $ORCH_ENC_KEY "
            "(hex) and its address in --as. Exit status 0 when every check passes."
        ),
    )
    _chain_arguments(a)
    a.add_argument("--request", type=int, required=True, help="the unlearning request id")
    a.add_argument("--as", dest="auditor", default=os.environ.get("ORCH_AUDITOR"),
                   help="address whose key is in $ORCH_ENC_KEY (a member or an aggregator; env ORCH_AUDITOR)")
    a.add_argument("--work", default=None, help="scratch folder for adapters (default a temporary folder)")
    a.add_argument("--json", action="store_true", help="print the checks as JSON")
    a.set_defaults(func=_audit)


def _chain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpc-url", default=os.environ.get("ORCH_RPC_URL"),
                        help="private chain JSON-RPC URL (env ORCH_RPC_URL)")
    parser.add_argument("--manifest", default=None, help="deployment manifest (default deployments/<chainid>.json)")


def _connect(args: argparse.Namespace) -> tuple[object, object, Path]:
    from orchestrator.chain.artifacts import Manifest
    from orchestrator.chain.connection import connect
    from orchestrator.chain.contracts import Protocol

    if not args.rpc_url:
        raise ConfigError(f"{args.command} needs --rpc-url or ORCH_RPC_URL")
    w3 = connect(args.rpc_url)
    manifest_path = Path(args.manifest) if args.manifest else Manifest.path_for(int(w3.eth.chain_id))
    if not manifest_path.is_file():
        raise ConfigError(f"no deployment manifest at {manifest_path}; give --manifest PATH")
    return w3, Protocol.from_manifest(w3, manifest_path), manifest_path


def _anchor(args: argparse.Namespace, manifest_path: Path, protocol: object) -> object | None:
    from orchestrator.chain.connection import connect
    from orchestrator.chain.contracts import ANCHOR_CONTRACT, Protocol

    if not args.anchor_rpc_url:
        return protocol if ANCHOR_CONTRACT in protocol else None  # type: ignore[operator]
    pw3 = connect(args.anchor_rpc_url)
    chain_id = int(pw3.eth.chain_id)
    candidates = [Path(args.anchor_manifest)] if args.anchor_manifest else [
        manifest_path.with_name(f"{chain_id}-anchor.json"), manifest_path.with_name(f"{chain_id}.json")]
    for path in candidates:
        if path.is_file():
            return Protocol.from_manifest(pw3, path)
    raise ConfigError(f"no PublicAnchor manifest for chain {chain_id} (looked at "
                      f"{', '.join(str(p) for p in candidates)}); give --anchor-manifest PATH")


def _dashboard(args: argparse.Namespace) -> int:
    import logging

    from orchestrator.dashboard.server import build_view, serve
    from orchestrator.observability import HEALTH, start_from_args
    from orchestrator.storage import open_store

    metrics = start_from_args(args, logging.INFO)
    _, protocol, manifest_path = _connect(args)
    anchor = _anchor(args, manifest_path, protocol)
    state = Path(args.state_dir) if args.state_dir else DEFAULT_STATE
    view = build_view(protocol, state, open_store(os.environ.get("ORCH_IPFS_DIR")), anchor,  # type: ignore[arg-type]
                      rpc_url=args.rpc_url, manifest_path=str(manifest_path), confirmations=args.confirmations)
    HEALTH.add_check("indexer", lambda: (view.indexer.last_error is None, view.indexer.last_error or
                                         f"lag {view.indexer.lag()} blocks"))
    try:
        serve(view, args.host, args.port)
    finally:
        if metrics is not None:
            metrics.close()
    return 0


def _audit(args: argparse.Namespace) -> int:
    import json
    import tempfile

    from orchestrator.dashboard.audit import audit_receipt
    from orchestrator.storage import open_store

    key_hex = os.environ.get("ORCH_ENC_KEY")
    if not key_hex or not args.auditor:
        raise ConfigError("audit-receipt needs a recipient's X25519 key in $ORCH_ENC_KEY and its address in --as")
    _, protocol, _ = _connect(args)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        result = audit_receipt(protocol, open_store(os.environ.get("ORCH_IPFS_DIR")), args.request,  # type: ignore[arg-type]
                               args.auditor, bytes.fromhex(key_hex.removeprefix("0x")), work)
    if args.json:
        print(json.dumps(result, indent=1, sort_keys=True))
    else:
        for name, ok in result["checks"].items():
            print(f"{'ok  ' if ok else 'FAIL'} {name}")
        print("receipt verified" if result["ok"] else "receipt NOT verified")
    return 0 if result["ok"] else 1
