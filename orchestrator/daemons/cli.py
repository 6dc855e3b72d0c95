"""Sub-commands ``demo``, ``daemon`` and ``deploy``.

``daemon`` runs one role as its own OS process against any JSON-RPC chain (anvil, geth, a
testnet); keys come from the environment or a keystore, never from flags or files in the repo.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

from orchestrator.errors import ConfigError

ROLES = ("trainer", "aggregator", "unlearner", "relayer")
DEFAULT_STATE = Path(os.environ.get("ORCH_CACHE_DIR", Path.home() / ".cache" / "ledgerlora")) / "daemons"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = sub.add_parser(
        "demo",
        help="a whole consortium on two in-process chains: train, reward, unlearn, anchor, report",
        description=(
            "Deploys the protocol on an in-process private chain and the anchor on a public one, "
            "onboards one org per BBC News topic, runs ROUNDS training rounds with the trainer, "
            "aggregator, unlearning and relayer daemons, lets one org exercise its right to be "
            "forgotten, checks the receipt by re-deriving the model, anchors the records and writes "
            "OUT/report.json and OUT/report.png."
        ),
    )
    demo.add_argument("--model", default="smollm2", help="tiny | smollm2 | a local HF folder (default smollm2)")
    demo.add_argument("--orgs", type=int, default=5, help="number of orgs, one per topic (2-5, default 5)")
    demo.add_argument("--rounds", type=int, default=2, help="training rounds (default 2)")
    demo.add_argument("--unlearn", default="sport", help="the org (topic) that asks to be forgotten (default sport)")
    demo.add_argument("--steps", type=int, default=None, help="training steps per org and round (default per model)")
    demo.add_argument("--seed", type=int, default=0, help="seed of data splits and training (default 0)")
    demo.add_argument("--groups", type=int, default=0,
                      help="0: isolated orgs (default); G >= 1: grouped collaboration in G groups (FedAvg inside a "
                           "group, exact stacking across; forgetting an org replays only its group)")
    demo.add_argument("--agents", action="store_true",
                      help="trainers are Q-learning agents choosing each round to skip or train at low/medium/high; "
                           "prints each org's decisions and rewards")
    demo.add_argument("--out", default="out/demo", help="folder for the report, plots and state (default out/demo)")
    demo.add_argument("--serve", action="store_true",
                      help="then serve the read-only dashboard of the demo's chains until Ctrl-C")
    demo.add_argument("--port", type=int, default=8700, help="dashboard port with --serve (default 8700)")
    demo.set_defaults(func=_demo)

    dep = sub.add_parser(
        "deploy",
        help="deploy the protocol (and optionally the anchor) from the build artifacts over JSON-RPC",
        description="Deploys with the key in $ORCH_PRIVATE_KEY (or $ORCH_KEYSTORE + $ORCH_KEYSTORE_PASSWORD) "
        "and writes deployments/<chainid>.json. Parameters from ORCH_MIN_STAKE, ORCH_UNBOND_DELAY, "
        "ORCH_RESPONSE_WINDOW, ORCH_SLASH_AMOUNT, ... as for scripts/deploy.py. For brownie users: "
        "`brownie run scripts/deploy.py` does the same.",
    )
    dep.add_argument("--rpc-url", default=os.environ.get("ORCH_RPC_URL"), help="JSON-RPC URL (env ORCH_RPC_URL)")
    dep.add_argument("--aggregator", action="append", default=None, help="address given AGGREGATOR_ROLE (repeatable)")
    dep.add_argument("--relayer", action="append", default=None, help="address given RELAYER_ROLE (repeatable)")
    dep.add_argument("--org", action="append", default=[], help="--dev: address that receives test tokens (repeatable)")
    dep.add_argument("--dev", action="store_true",
                     help="development set-up as scripts/deploy.py on local networks: test tokens to each --org, "
                          "the reward pool funded, the roles (and a stake) to the deployer unless --aggregator/"
                          "--relayer are given. Without it only the contracts and the roles named are set up")
    dep.add_argument("--network", default=None,
                     help="name written to the manifest (default: the RPC URL without credentials or query values)")
    dep.add_argument("--anchor-rpc-url", default=None, help="also deploy PublicAnchor on this chain")
    dep.add_argument("--out-dir", default=None,
                     help="where manifests are written (default $ORCH_DEPLOYMENTS_DIR or the project's deployments/)")
    dep.set_defaults(func=_deploy)

    d = sub.add_parser(
        "daemon",
        help="run one daemon (trainer, aggregator, unlearner, relayer) against a JSON-RPC chain",
        description=(
            "Runs one role until interrupted. Signing key: $ORCH_PRIVATE_KEY or $ORCH_KEYSTORE with "
            "$ORCH_KEYSTORE_PASSWORD (brownie keystore). X25519 encryption key: $ORCH_ENC_KEY (hex) or "
            "STATE_DIR/x25519.key (created with mode 0600 on first start). Storage: $ORCH_IPFS_API for a "
            "Kubo node, else the embedded blockstore in $ORCH_IPFS_DIR (share it between daemons on one machine)."
        ),
    )
    d.add_argument("action", nargs="?", choices=("run", "dead-letters"), default="run",
                   help="run (default): run the daemon; dead-letters: list its set-aside events "
                        "(with --requeue ID or --all: hand them back to the daemon, which retries them)")
    d.add_argument("--role", choices=ROLES, required=True)
    d.add_argument("--requeue", metavar="ID", default=None, help="dead-letters: requeue the event ID (as listed)")
    d.add_argument("--all", action="store_true", help="dead-letters: requeue every set-aside event")
    d.add_argument("--rpc-url", default=os.environ.get("ORCH_RPC_URL"), help="private chain JSON-RPC URL (env ORCH_RPC_URL)")
    d.add_argument("--manifest", default=None, help="deployment manifest (default deployments/<chainid>.json)")
    d.add_argument("--state-dir", default=None, help=f"cursor, keys and work files (default {DEFAULT_STATE}/ROLE-ADDR)")
    d.add_argument("--confirmations", type=int, default=int(os.environ.get("ORCH_CONFIRMATIONS", "0")),
                   help="blocks to wait before acting on an event (env ORCH_CONFIRMATIONS, default 0)")
    d.add_argument("--poll-interval", type=float, default=0.5, help="seconds between polls (default 0.5)")
    d.add_argument("--org", default=None, help="trainer: the org's BBC topic (its data)")
    d.add_argument("--data", default=None, help="trainer: a folder of .txt/.jsonl files instead of a topic")
    d.add_argument("--join", action="store_true", help="trainer: stake the minimum and join if not yet a member")
    d.add_argument("--shards", type=int, default=1,
                   help="trainer: SISA shards per adapter; > 1 lets the org answer its Samples-scope requests (default 1)")
    d.add_argument("--model", default="smollm2", help="aggregator: model of the rounds it opens (default smollm2)")
    d.add_argument("--rounds", type=int, default=1, help="aggregator: rounds to run (default 1)")
    d.add_argument("--steps", type=int, default=8, help="aggregator: training steps per round (default 8)")
    d.add_argument("--duration", type=int, default=3600, help="aggregator: seconds a round stays open")
    d.add_argument("--budget", type=float, default=1000.0, help="aggregator: reward budget per round in LLS")
    d.add_argument("--max-samples", type=int, default=1_000_000,
                   help="aggregator: per-submission sample cap of the rounds it opens (default 1000000)")
    d.add_argument("--groups-file", default=None,
                   help="aggregator: JSON object {member address: group number} fixed when the consortium forms; "
                        "the rounds run grouped collaboration (FedAvg inside a group, exact stacking across)")
    d.add_argument("--min-members", type=int, default=1, help="aggregator: members needed before a round opens (default 1)")
    d.add_argument("--status-every", type=float, default=60.0,
                   help="aggregator: seconds between 'waiting for X of N' lines while a round is open (default 60)")
    d.add_argument("--public-rpc-url", default=os.environ.get("ORCH_PUBLIC_RPC_URL"), help="relayer: public chain URL")
    d.add_argument("--anchor-manifest", default=None, help="relayer: PublicAnchor manifest")
    d.add_argument("--interval", type=float, default=10.0, help="relayer: seconds between anchors (default 10)")
    from orchestrator.observability import add_arguments

    add_arguments(d)  # --log-format, --metrics-port, --metrics-host
    d.set_defaults(func=_daemon)


def _demo(args: argparse.Namespace) -> int:
    from orchestrator.daemons.demo import demo_config_from_args, run_demo

    result = run_demo(demo_config_from_args(args))
    print(f"report written to {result.report_path}")
    ok = result.report["unlearning"]["rederived_matches"]
    anchors = result.report["anchor"]
    ok = ok and anchors["proofs_verified_on_public_chain"] == anchors["records"]
    if getattr(args, "serve", False):
        from orchestrator.dashboard.server import serve_consortium

        serve_consortium(result.consortium, Path(args.out) / "dashboard", args.port)
    return 0 if ok else 1


def _addresses(values: list[str] | None, flag: str) -> list[str] | None:
    from eth_utils import is_address, to_checksum_address

    if values is None:
        return None
    for value in values:
        if not is_address(value):
            raise ConfigError(f"{flag} {value!r} is not an address: give 0x followed by 40 hex digits")
    return [to_checksum_address(v) for v in values]


def _deploy(args: argparse.Namespace) -> int:
    from orchestrator.chain.artifacts import DEFAULT_DEPLOYMENTS_DIR, Manifest
    from orchestrator.chain.connection import connect
    from orchestrator.chain.contracts import ProtocolParams, deploy_anchor, deploy_protocol
    from orchestrator.chain.signer import load_signer
    from orchestrator.chain.tx import Transactor
    from orchestrator.redact import redact_url

    if not args.rpc_url:
        raise ConfigError("deploy needs --rpc-url or ORCH_RPC_URL (the in-process chain lives only inside `demo`)")
    orgs, aggregators = _addresses(args.org, "--org") or [], _addresses(args.aggregator, "--aggregator")
    relayers = _addresses(args.relayer, "--relayer")
    if orgs and not args.dev:
        raise ConfigError("--org only hands out test tokens, which happens with --dev; add --dev on a development chain")
    w3 = connect(args.rpc_url)
    account = load_signer()
    try:  # ORCH_MIN_STAKE, ORCH_UNBOND_DELAY, ... as for scripts/deploy.py
        params = ProtocolParams.from_env(orgs=orgs, aggregators=aggregators, relayers=relayers, local=args.dev,
                                         network=args.network or redact_url(args.rpc_url))
    except ValueError as exc:
        raise ConfigError(f"deployment parameters: {exc}") from None
    out = Path(args.out_dir) if args.out_dir else DEFAULT_DEPLOYMENTS_DIR
    manifest = deploy_protocol(w3, Transactor(w3, account), params,
                               manifest_path=Manifest.path_for(int(w3.eth.chain_id), out))
    print(json.dumps({n: r.address for n, r in manifest.contracts.items()}, indent=1))
    if args.anchor_rpc_url:
        pw3 = connect(args.anchor_rpc_url)
        am = deploy_anchor(pw3, Transactor(pw3, account), relayers or [account.address],
                           network=redact_url(args.anchor_rpc_url),
                           manifest_path=Manifest.path_for(int(pw3.eth.chain_id), out).with_name(
                               f"{int(pw3.eth.chain_id)}-anchor.json"))
        print(json.dumps({n: r.address for n, r in am.contracts.items()}, indent=1))
    return 0


def build_daemon(args: argparse.Namespace) -> Any:
    """Construct the daemon a ``daemon`` invocation describes (separated for tests)."""
    from orchestrator.chain.connection import connect
    from orchestrator.chain.contracts import Protocol
    from orchestrator.chain.signer import load_signer
    from orchestrator.daemons.base import Node
    from orchestrator.ops.context import connect_protocol, encryption_key
    from orchestrator.ops.org import ensure_member
    from orchestrator.storage import adapters as sealed
    from orchestrator.storage import open_store

    if not args.rpc_url:
        raise ConfigError("daemon needs --rpc-url or ORCH_RPC_URL")
    account = load_signer()  # before connecting: a missing key is the first thing to say
    w3, protocol = connect_protocol(args.rpc_url, args.manifest, what="daemon")
    state_dir = Path(args.state_dir) if args.state_dir else DEFAULT_STATE / f"{args.role}-{account.address[2:10].lower()}"
    state_dir.mkdir(parents=True, exist_ok=True)
    enc = encryption_key(state_dir)
    node = Node(w3, protocol, account, open_store(), state_dir, args.confirmations)

    if args.role == "trainer":
        from orchestrator.daemons.trainer import TrainerDaemon
        from orchestrator.learning.data import load_org_data

        if not args.org and not args.data:
            raise ConfigError("a trainer needs --org TOPIC or --data FOLDER")
        name = args.org or Path(args.data).name
        data = load_org_data(name, source=Path(args.data) if args.data else None)
        if args.join:
            ensure_member(node, sealed.public_key(enc), name)
        from orchestrator.observability import progress_enabled

        return TrainerDaemon(node, name, data.train, data.commitment(), enc, progress=progress_enabled(),
                             shards=args.shards)
    if args.role in ("aggregator", "unlearner"):
        from orchestrator.daemons.aggregator import AggregatorDaemon, RoundPlan
        from orchestrator.daemons.roundconfig import RoundConfig
        from orchestrator.daemons.unlearner import UnlearningDaemon
        from orchestrator.learning.api import TrainConfig
        from orchestrator.learning.data import TOPICS, load_org_data

        val = {t: load_org_data(t).val[:4] for t in TOPICS}
        keys = {account.address: sealed.public_key(enc)}
        if args.role == "unlearner":
            return UnlearningDaemon(node, enc, keys, {})
        train = TrainConfig(steps=args.steps, seq_len=64, batch_size=4)
        groups = _load_groups(args.groups_file) if args.groups_file else {}
        config = RoundConfig(model=args.model, train=train.to_dict(), mode="grouped" if groups else "isolated",
                             groups=groups, aggregator_keys={k: v.hex() for k, v in keys.items()})
        plan = RoundPlan(rounds=args.rounds, duration_s=args.duration, reward_budget=int(args.budget * 10**18),
                         config=config, max_samples=args.max_samples, min_members=args.min_members,
                         status_every_s=args.status_every)
        return AggregatorDaemon(node, enc, plan, [t for v in val.values() for t in v])
    from orchestrator.daemons.relayer import RelayerDaemon

    if not args.public_rpc_url or not args.anchor_manifest:
        raise ConfigError("a relayer needs --public-rpc-url and --anchor-manifest")
    pw3 = connect(args.public_rpc_url)
    public = Node(pw3, Protocol.from_manifest(pw3, Path(args.anchor_manifest)), account, node.store,
                  state_dir / "public", args.confirmations)
    return RelayerDaemon(node, public)


def _daemon(args: argparse.Namespace) -> int:
    if args.action == "dead-letters":
        from orchestrator.ops.deadletters import dead_letters_command

        return dead_letters_command(args, DEFAULT_STATE)
    from orchestrator.observability import start_from_args

    metrics = start_from_args(args, logging.INFO)  # --log-format, --metrics-port
    daemon = build_daemon(args)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    interval = args.interval if args.role == "relayer" else args.poll_interval
    try:
        daemon.run_forever(stop, poll_interval=interval)
    except KeyboardInterrupt:
        pass
    finally:
        if metrics is not None:
            metrics.close()
    return 0


def _load_groups(path: str) -> dict[str, int]:
    """``--groups-file``: {member address: group}, addresses lower-cased (RoundConfig checks the rest)."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--groups-file {path}: cannot read a JSON object ({exc}); "
                          'write e.g. {"0xabc...": 0, "0xdef...": 1}') from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"--groups-file {path}: must be a JSON object of address -> group, got {type(raw).__name__}")
    return {str(addr).lower(): group for addr, group in raw.items()}
