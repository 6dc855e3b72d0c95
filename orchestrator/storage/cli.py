"""Storage sub-commands of ``python -m orchestrator``: ``cid`` and ``ipfs ...``.

Kept free of torch and of the adapter code so that ``python -m orchestrator cid FILE`` starts
in a fraction of a second.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from orchestrator.storage.base import Store
from orchestrator.storage.errors import NotFoundError, StorageError

_STORE_EPILOG = """\
Which store: the Kubo RPC API at --api or $ORCH_IPFS_API (e.g. /ip4/127.0.0.1/tcp/5001/http)
when one is given; otherwise the embedded blockstore in --data-dir, $ORCH_IPFS_DIR or
$ORCH_CACHE_DIR/ipfs (default ~/.cache/ledgerlora/ipfs). CIDs are identical either way.
"""


def register(subparsers: Any) -> None:
    """Add ``cid`` and ``ipfs`` to the top-level parser."""
    p = subparsers.add_parser(
        "cid",
        help="print the IPFS CID of a file (as Kubo's `ipfs add` computes it)",
        description=(
            "Print the CID that Kubo's `ipfs add` (defaults: CIDv0, dag-pb, 256 KiB chunks, "
            "balanced DAG of 174 links) gives FILE, and nothing else on stdout. Nothing is "
            "stored. --cid-version 1 prints the same DAG's CIDv1 (base32 bafy...), which is "
            "what `ipfs cid format -v 1 -b base32` gives for the v0; `ipfs add --cid-version 1` "
            "differs because it also switches on raw leaves."
        ),
    )
    p.add_argument("file", metavar="FILE", help="file to hash ('-' reads stdin)")
    p.add_argument(
        "--cid-version",
        type=int,
        choices=(0, 1),
        default=0,
        help="0 (Qm..., default) or 1 (bafy...)",
    )
    p.set_defaults(func=_cmd_cid)

    ipfs = subparsers.add_parser(
        "ipfs",
        help="add, fetch, pin and move content in the configured IPFS store",
        description="Operate on the configured content store (embedded blockstore or Kubo).",
        epilog=_STORE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ipfs.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="embedded store folder (chooses the embedded store even if $ORCH_IPFS_API is set)",
    )
    ipfs.add_argument(
        "--api", default=None, help="Kubo RPC API multiaddr; overrides $ORCH_IPFS_API"
    )
    sub = ipfs.add_subparsers(dest="ipfs_command", metavar="ACTION")
    sub.required = True

    a = _action(sub, "add", "store FILE, pin it and print its CIDv0")
    a.add_argument("file", metavar="FILE", type=Path)
    a.set_defaults(func=_cmd_add)

    g = _action(sub, "get", "write the file CID to OUT (default ./CID), verified block by block")
    g.add_argument("cid", metavar="CID")
    g.add_argument("-o", "--output", metavar="OUT", type=Path, default=None)
    g.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    g.set_defaults(func=_cmd_get)

    c = _action(sub, "cat", "write the file CID to stdout")
    c.add_argument("cid", metavar="CID")
    c.set_defaults(func=_cmd_cat)

    pn = _action(sub, "pin", "pin CID recursively (every block must be present)")
    pn.add_argument("cid", metavar="CID")
    pn.set_defaults(func=_cmd_pin)

    up = _action(sub, "unpin", "remove the pin on CID; its blocks go at the next gc")
    up.add_argument("cid", metavar="CID")
    up.set_defaults(func=_cmd_unpin)

    ls = _action(sub, "pins", "list pinned CIDs (embedded store)")
    ls.set_defaults(func=_cmd_pins)

    ex = _action(
        sub,
        "export-car",
        "write the DAG of CID to OUT.car (CARv1; load it into Kubo with `ipfs dag import`)",
    )
    ex.add_argument("cid", metavar="CID")
    ex.add_argument("out", metavar="OUT.car", type=Path)
    ex.set_defaults(func=_cmd_export)

    im = _action(
        sub,
        "import-car",
        "load a CAR file (e.g. from `ipfs dag export`), verify every block, pin its roots",
    )
    im.add_argument("car", metavar="FILE.car", type=Path)
    im.set_defaults(func=_cmd_import)

    gc = _action(sub, "gc", "delete every block not reachable from a pin; print the count")
    gc.set_defaults(func=_cmd_gc)

    v = _action(sub, "verify", "re-hash every stored block (or the DAG of CID); list the bad ones, exit 1 if any")
    v.add_argument("cid", metavar="CID", nargs="?", default=None)
    v.add_argument("--repair", action="store_true",
                   help="delete corrupt blocks; then re-add or import the content to write them again")
    v.set_defaults(func=_cmd_verify)


def _action(sub: Any, name: str, text: str) -> argparse.ArgumentParser:
    """A sub-action whose --help repeats its one-line help plus where the store is."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=text,
        description=text[0].upper() + text[1:] + ".",
        epilog=_STORE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _store(args: argparse.Namespace) -> Store:
    from orchestrator.storage import open_store

    # An explicit --data-dir means the embedded store even if $ORCH_IPFS_API is set.
    api = args.api if args.api else ("" if args.data_dir is not None else None)
    return open_store(args.data_dir, api)


def _cmd_cid(args: argparse.Namespace) -> int:
    from orchestrator.storage.cid import compute_cid

    if args.file == "-":
        print(compute_cid(sys.stdin.buffer, version=args.cid_version))
        return 0
    path = Path(args.file)
    if not path.is_file():
        raise NotFoundError(f"{path} does not exist or is not a regular file")
    print(compute_cid(path, version=args.cid_version))
    return 0


def _cmd_add(args: argparse.Namespace) -> int:
    print(_store(args).add_file(args.file))
    return 0


def _cmd_get(args: argparse.Namespace) -> int:
    out = args.output or Path(args.cid)
    if out.exists() and not args.force:
        raise StorageError(f"{out} exists; choose another -o OUT or pass --force to overwrite it")
    print(_store(args).get_file(args.cid, out))
    return 0


def _cmd_cat(args: argparse.Namespace) -> int:
    sys.stdout.buffer.write(_store(args).cat(args.cid))
    sys.stdout.buffer.flush()
    return 0


def _cmd_pin(args: argparse.Namespace) -> int:
    _store(args).pin(args.cid)
    print(f"pinned {args.cid}")
    return 0


def _cmd_unpin(args: argparse.Namespace) -> int:
    _store(args).unpin(args.cid)
    print(f"unpinned {args.cid}")
    return 0


def _cmd_pins(args: argparse.Namespace) -> int:
    store = _store(args)
    pins = getattr(store, "pins", None)
    if pins is None:
        raise StorageError(f"{store!r} cannot list pins; use `ipfs pin ls` on the node")
    for cid in pins():
        print(cid)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    print(_store(args).export_car(args.cid, args.out))
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    for root in _store(args).import_car(args.car):
        print(root)
    return 0


def _cmd_gc(args: argparse.Namespace) -> int:
    print(f"removed {_store(args).gc()} blocks")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    store = _store(args)
    verify = getattr(store, "verify", None)
    if verify is None:
        raise StorageError(f"{store!r} cannot verify blocks here; use `ipfs repo verify` on the node")
    problems = verify(args.cid, repair=args.repair)
    for where, problem in sorted(problems.items()):
        print(f"{where}: {problem}{' (deleted)' if args.repair and 'corrupt' in problem else ''}")
    print(f"{len(problems)} problem(s)" + (": re-add or import the affected content" if problems and args.repair else ""))
    return 1 if problems and not args.repair else 0
