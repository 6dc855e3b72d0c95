"""Sub-commands ``org`` (stake, join, leave, claim, request-unlearning, decrypt-adapter) and ``status``.

Signing key as for the daemons: ``$ORCH_PRIVATE_KEY`` or ``$ORCH_KEYSTORE`` +
``$ORCH_KEYSTORE_PASSWORD``; X25519 key: ``$ORCH_ENC_KEY`` or ``STATE_DIR/x25519.key``; store:
``$ORCH_IPFS_API`` or the embedded blockstore in ``$ORCH_IPFS_DIR``. Never a key on the command line.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from orchestrator.errors import ConfigError

_ENV = ("Signing key: $ORCH_PRIVATE_KEY or $ORCH_KEYSTORE with $ORCH_KEYSTORE_PASSWORD. X25519 key: $ORCH_ENC_KEY "
        "or STATE_DIR/x25519.key. Storage: $ORCH_IPFS_API (Kubo) or $ORCH_IPFS_DIR (embedded).")


def _chain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rpc-url", default=os.environ.get("ORCH_RPC_URL"), help="JSON-RPC URL (env ORCH_RPC_URL)")
    p.add_argument("--manifest", default=None, help="deployment manifest (default: the project's deployments/<chainid>.json)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    org = sub.add_parser("org", help="an organisation's everyday actions, from its own wallet",
                         description="An organisation's everyday actions, each sent from its own wallet. " + _ENV)
    actions = org.add_subparsers(dest="org_command", metavar="ACTION")
    actions.required = True

    def action(name: str, text: str) -> argparse.ArgumentParser:
        p = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ". " + _ENV)
        _chain_args(p)
        return p

    p = actions.add_parser("new-key", help="create a wallet and an X25519 key into an env file (mode 0600)",
                           description="Creates a new signing key and X25519 encryption key and writes them as "
                                       "ORCH_PRIVATE_KEY=... and ORCH_ENC_KEY=... into OUT (mode 0600; usable as a "
                                       "systemd EnvironmentFile or with `set -a; . OUT`). Prints only the address.")
    p.add_argument("--out", required=True, type=Path, help="env file to create (refused if it exists)")
    p.set_defaults(func=_new_key)

    p = action("stake", "stake LLS (default: what is missing to the minimum stake)")
    p.add_argument("amount", nargs="?", default=None, help="LLS to stake, e.g. 100 or 12.5")
    p.set_defaults(func=_stake)

    p = action("join", "join the consortium with this org's X25519 key (stakes what is missing first)")
    p.add_argument("--name", required=True, help="the org's name (its metadata URI is ledgerlora://org/NAME)")
    p.add_argument("--state-dir", default=None, help="folder of x25519.key when $ORCH_ENC_KEY is not set")
    p.set_defaults(func=_join)

    p = action("leave", "leave the consortium (Protocol v2); the stake unbonds after the delay")
    p.set_defaults(func=_leave)

    p = action("claim", "claim this org's rewards, proof rebuilt from each round's report and checked on chain")
    p.add_argument("--round", type=int, default=None, help="one round (default: every finalized, unclaimed one)")
    p.set_defaults(func=_claim)

    p = action("request-unlearning", "ask for this org's contributions to be removed from the model")
    p.add_argument("--scope", choices=("org", "round", "samples"), default="org",
                   help="org: everything (default); round: --round and later; samples: retrained by the org")
    p.add_argument("--round", type=int, default=0, help="the round of --scope round")
    p.add_argument("--reason", default="", help="free text; only its SHA-256 goes on chain")
    p.set_defaults(func=_request_unlearning)

    p = action("decrypt-adapter", "fetch a sealed adapter or merged model by CID and decrypt it into a folder")
    p.add_argument("cid", metavar="CID")
    p.add_argument("-o", "--output", required=True, type=Path, help="folder to write (must not exist, unless --force)")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("--state-dir", default=None, help="folder of x25519.key when $ORCH_ENC_KEY is not set")
    p.add_argument("--address", default=None, help="recipient address (default: the signing key's)")
    p.set_defaults(func=_decrypt)

    st = sub.add_parser("status", help="rounds, members, submissions, deadlines, unlearning, set-aside events",
                        description="Reads the chain (no key needed) and the daemons' state folders on this machine.")
    _chain_args(st)
    st.add_argument("--state-dir", action="append", default=None,
                    help="a daemon state folder whose set-aside events to list (repeatable; default: every folder "
                         "under $ORCH_CACHE_DIR/daemons)")
    st.add_argument("--json", action="store_true", help="print JSON instead of text")
    st.add_argument("--wait-round", type=int, default=None, metavar="N",
                    help="first wait until round N is finalized or cancelled (exit 1 at --timeout)")
    st.add_argument("--wait-request", type=int, default=None, metavar="N",
                    help="first wait until unlearning request N is settled (exit 1 at --timeout)")
    st.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (default 600)")
    st.set_defaults(func=_status)


def _node(args: argparse.Namespace) -> Any:
    import tempfile

    from orchestrator.chain.signer import load_signer
    from orchestrator.daemons.base import Node
    from orchestrator.ops.context import connect_protocol
    from orchestrator.storage import open_store

    w3, protocol = connect_protocol(args.rpc_url, args.manifest, what=f"org {args.org_command}")
    return Node(w3, protocol, load_signer(), open_store(), Path(tempfile.mkdtemp(prefix="ledgerlora-org-")))


def _enc_key(args: argparse.Namespace, address: str) -> bytes:
    from orchestrator.daemons.cli import DEFAULT_STATE
    from orchestrator.ops.context import encryption_key

    folder = Path(args.state_dir) if args.state_dir else DEFAULT_STATE / f"org-{address[2:10].lower()}"
    if not os.environ.get("ORCH_ENC_KEY") and not (folder / "x25519.key").exists() and args.org_command != "join":
        raise ConfigError(f"no X25519 key: set ORCH_ENC_KEY or give --state-dir holding x25519.key (looked in {folder})")
    folder.mkdir(parents=True, exist_ok=True)
    return encryption_key(folder)


def _new_key(args: argparse.Namespace) -> int:
    from eth_account import Account

    from orchestrator.storage import adapters as sealed

    account = Account.create()
    enc_private, _ = sealed.generate_keypair()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{args.out} exists; a key file is never overwritten (choose another --out)") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(f"ORCH_PRIVATE_KEY=0x{bytes(account.key).hex()}\nORCH_ENC_KEY={enc_private.hex()}\n")
    print(account.address)
    return 0


def _stake(args: argparse.Namespace) -> int:
    from orchestrator.ops import org

    node = _node(args)
    staked = org.stake(node, org.parse_amount(args.amount) if args.amount else None)
    total = int(node.contract("Staking").functions.stakeOf(node.address).call())
    print(f"staked {staked / org.TOKEN:g} LLS; {node.address} now stakes {total / org.TOKEN:g} LLS")
    return 0


def _join(args: argparse.Namespace) -> int:
    from orchestrator.ops import org
    from orchestrator.storage import adapters as sealed

    node = _node(args)
    key = _enc_key(args, node.address)
    joined = org.ensure_member(node, sealed.public_key(key), args.name)
    print(f"{node.address} {'joined' if joined else 'is already a member'} as {args.name}")
    return 0


def _leave(args: argparse.Namespace) -> int:
    from orchestrator.ops import org

    node = _node(args)
    org.leave(node)
    print(f"{node.address} left; its stake unbonds after the delay (then `org` withdraw via Staking.withdraw)")
    return 0


def _claim(args: argparse.Namespace) -> int:
    from orchestrator.ops import org

    node = _node(args)
    rounds = [args.round] if args.round is not None else org.claimable_rounds(node)
    if not rounds:
        print("nothing to claim")
    for round_id in rounds:
        amount = org.claim(node, round_id)
        print(f"round {round_id}: " + (f"claimed {amount / org.TOKEN:g} LLS" if amount else "nothing due"))
    return 0


def _request_unlearning(args: argparse.Namespace) -> int:
    from orchestrator.ops import org

    if args.scope == "round" and args.round < 1:
        raise ConfigError("--scope round needs --round N (the first round to forget)")
    node = _node(args)
    request_id = org.request_unlearning(node, args.scope, args.round, args.reason)
    print(f"unlearning request {request_id} sent ({args.scope} scope); follow it with `status`")
    return 0


def _decrypt(args: argparse.Namespace) -> int:
    from orchestrator.ops import org
    from orchestrator.storage import open_store

    if args.address:
        address = args.address
    else:
        from orchestrator.chain.signer import load_signer

        address = load_signer().address
    key = _enc_key(args, address)
    print(org.decrypt_adapter(open_store(), args.cid, address, key, args.output, force=args.force))
    return 0


def _status(args: argparse.Namespace) -> int:
    from orchestrator.daemons.cli import DEFAULT_STATE
    from orchestrator.ops.context import connect_protocol
    from orchestrator.ops.status import collect, render

    w3, protocol = connect_protocol(args.rpc_url, args.manifest, what="status")
    if args.wait_round is not None or args.wait_request is not None:
        from orchestrator.ops.status import wait_until_settled

        print(wait_until_settled(protocol, args.wait_round, args.wait_request, args.timeout))
    dirs = [Path(d) for d in args.state_dir] if args.state_dir else (
        sorted(p for p in DEFAULT_STATE.iterdir() if p.is_dir()) if DEFAULT_STATE.is_dir() else [])
    report = collect(w3, protocol, dirs)
    print(json.dumps(report, indent=1, default=str) if args.json else render(report))
    return 0
