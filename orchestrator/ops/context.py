"""What every chain-facing command needs: a connection, the deployment and (for writes) a wallet."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from web3 import Web3

from orchestrator.errors import ConfigError


def connect_protocol(rpc_url: str | None, manifest: str | os.PathLike[str] | None, *, what: str) -> tuple[Web3, Any]:
    """Connect to ``rpc_url`` and bind the deployment of ``manifest`` (default: the project's
    ``deployments/<chainid>.json``); ``what`` names the command in the error for a missing URL."""
    from orchestrator.chain.artifacts import Manifest
    from orchestrator.chain.connection import connect
    from orchestrator.chain.contracts import Protocol

    if not rpc_url:
        raise ConfigError(f"{what} needs --rpc-url or ORCH_RPC_URL")
    w3 = connect(rpc_url)
    path = Path(manifest) if manifest else Manifest.path_for(int(w3.eth.chain_id))
    return w3, Protocol.from_manifest(w3, path)


def named(contract: Any, function: str, *args: Any) -> dict[str, Any]:
    """Call a view returning a struct/tuple and name its fields after the ABI's outputs."""
    fn = getattr(contract.functions, function)(*args)
    values = fn.call()
    outputs = [o["name"] for o in fn.abi["outputs"]]
    if len(outputs) == 1 and not isinstance(values, list | tuple):
        values = [values]
    return {name or f"_{i}": value for i, (name, value) in enumerate(zip(outputs, values))}


def encryption_key(state_dir: Path) -> bytes:
    """The X25519 private key: ``$ORCH_ENC_KEY`` (hex) or ``STATE_DIR/x25519.key`` (created 0600)."""
    from orchestrator.storage import adapters as sealed

    env = os.environ.get("ORCH_ENC_KEY")
    if env:
        try:
            key = bytes.fromhex(env.strip().removeprefix("0x"))
        except ValueError:
            raise ConfigError("ORCH_ENC_KEY is not hex: give the 32-byte X25519 private key as 64 hex digits "
                              "(or unset it to use STATE_DIR/x25519.key)") from None
        if len(key) != 32:
            raise ConfigError(f"ORCH_ENC_KEY must be 32 bytes of hex (64 digits), got {len(key)} bytes")
        return key
    path = state_dir / "x25519.key"
    if path.exists():
        try:
            return bytes.fromhex(path.read_text().strip())
        except ValueError:
            raise ConfigError(f"{path} does not hold a hex X25519 key; restore it from a backup") from None
    private, _ = sealed.generate_keypair()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(private.hex())
    return private
