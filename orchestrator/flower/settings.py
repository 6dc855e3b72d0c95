"""Where a Flower app finds the ledger: chain, manifest, store, state folder and keys.

Flower hands an app two dictionaries: the run config (``[tool.flwr.app.config]`` plus
``flwr run -c``; the same for the ServerApp and every ClientApp) and, on each SuperNode, the node
config (``flower-supernode --node-config``; one org's own settings). Keys never travel in
either: the signing key and the X25519 key come from the environment of the process that
starts the SuperLink (for the ServerApp) or the SuperNode (for its ClientApps), exactly as for
``python -m orchestrator daemon`` (``ORCH_PRIVATE_KEY`` or ``ORCH_KEYSTORE``, ``ORCH_ENC_KEY``).

Recognised keys (node config wins over run config, which wins over the environment):

- ``ledger-rpc-url`` (env ``ORCH_RPC_URL``): the consortium chain's JSON-RPC URL.
- ``ledger-manifest``: the deployment manifest (default ``deployments/<chainid>.json``).
- ``ledger-ipfs-dir`` (env ``ORCH_IPFS_DIR``): the shared embedded blockstore; ``ORCH_IPFS_API``
  (a Kubo node) wins over it, as for the daemons.
- ``ledger-state-dir``: this process's cursor, cache and work folder.
- ``ledger-org`` / ``ledger-data`` (node config): the org's BBC topic, or a folder of texts.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.errors import ConfigError

PREFIX = "ledger-"


def _lookup(key: str, *configs: Mapping[str, Any]) -> Any:
    for cfg in configs:
        if cfg.get(key) not in (None, ""):
            return cfg[key]
    return None


def daemon_args(role: str, run_config: Mapping[str, Any], node_config: Mapping[str, Any] | None = None,
                **extra: Any) -> argparse.Namespace:
    """The ``daemon`` command's arguments for ``role``, read from Flower's configs.

    The result goes to :func:`orchestrator.daemons.cli.build_daemon`, so a Flower-driven org
    loads its key, store, data and state exactly as ``python -m orchestrator daemon`` would.
    """
    node_config = node_config or {}
    rpc_url = _lookup("ledger-rpc-url", node_config, run_config) or os.environ.get("ORCH_RPC_URL")
    if not rpc_url:
        raise ConfigError("no chain to use: set `ledger-rpc-url` in the run or node config, or ORCH_RPC_URL "
                          "in the environment of the SuperLink/SuperNode")
    ipfs_dir = _lookup("ledger-ipfs-dir", node_config, run_config)
    if ipfs_dir and not os.environ.get("ORCH_IPFS_DIR"):
        os.environ["ORCH_IPFS_DIR"] = str(ipfs_dir)  # open_store() reads it (ORCH_IPFS_API wins)
    state = _lookup("ledger-state-dir", node_config, run_config)
    values: dict[str, Any] = {
        "role": role, "rpc_url": str(rpc_url), "manifest": _lookup("ledger-manifest", node_config, run_config),
        "state_dir": str(Path(str(state)).expanduser()) if state else None,
        "confirmations": int(os.environ.get("ORCH_CONFIRMATIONS", "0")),
        "org": _lookup("ledger-org", node_config), "data": _lookup("ledger-data", node_config), "join": False,
        "model": str(_lookup("ledger-model", run_config) or "tiny"),
        "rounds": int(_lookup("num-server-rounds", run_config) or 1),
        "steps": int(_lookup("ledger-steps", run_config) or 1),
        "duration": int(_lookup("ledger-round-seconds", run_config) or 3600),
        "budget": float(_lookup("ledger-reward-budget", run_config) or 1000.0),
    }
    values.update(extra)
    # Start from the `daemon` command's own defaults, so options added there later keep working.
    from orchestrator.daemons import cli

    parser = argparse.ArgumentParser(add_help=False)
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["daemon", "--role", role])
    for key, value in values.items():
        setattr(args, key, value)
    return args
