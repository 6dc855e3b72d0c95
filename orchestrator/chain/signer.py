"""Loading the key a daemon signs with: a brownie keystore or a hex key in the environment.

Keys never appear in logs or error messages; only file paths, variable names and addresses do.
Brownie's ``accounts.generate()/.save(id)`` writes an eth-keyfile JSON (scrypt or pbkdf2) to
``~/.brownie/accounts/<id>.json``; that is exactly what :func:`load_signer` decrypts, so an org
can use the same key for ``brownie run scripts/deploy.py`` and for its daemons.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import cast

from eth_account import Account
from eth_account.signers.local import LocalAccount

from orchestrator.chain.errors import SignerError

log = logging.getLogger(__name__)

KEY_ENV = "ORCH_PRIVATE_KEY"
KEYSTORE_ENV = "ORCH_KEYSTORE"
PASSWORD_ENV = "ORCH_KEYSTORE_PASSWORD"
BROWNIE_ACCOUNTS_DIR = Path("~/.brownie/accounts")


def resolve_keystore(keystore: str | Path) -> Path:
    """A keystore path, or a brownie account id resolved in ``~/.brownie/accounts/<id>.json``."""
    path = Path(keystore).expanduser()
    if path.is_file():
        return path
    text = str(keystore)
    if os.sep not in text and not text.endswith(".json"):
        candidate = BROWNIE_ACCOUNTS_DIR.expanduser() / f"{text}.json"
        if candidate.is_file():
            return candidate
        raise SignerError(
            f"keystore {text!r} is neither a file nor a brownie account ({candidate} does not exist); "
            "create it with `brownie accounts new <id>` or give the path of an eth-keyfile JSON"
        )
    raise SignerError(f"keystore file {path} does not exist; check {KEYSTORE_ENV} or the --keystore path")


def account_from_keystore(keystore: str | Path, password: str) -> LocalAccount:
    """Decrypt an eth-keyfile JSON (as brownie writes it)."""
    path = resolve_keystore(keystore)
    try:
        keyfile = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SignerError(f"cannot read keystore {path}: {exc}") from exc
    try:
        key = Account.decrypt(keyfile, password)
    except ValueError as exc:
        # eth-keyfile raises ValueError("MAC mismatch") for a wrong password.
        raise SignerError(
            f"cannot decrypt keystore {path}: {exc} (wrong password? it is read from {PASSWORD_ENV} "
            "or the variable you named)"
        ) from None
    except (KeyError, TypeError) as exc:
        raise SignerError(f"keystore {path} is not an eth-keyfile JSON (missing {exc})") from None
    account = cast(LocalAccount, Account.from_key(key))
    log.info("loaded signer %s from keystore %s", account.address, path)
    return account


def account_from_hex(value: str, *, source: str) -> LocalAccount:
    """A key given as 64 hex digits (with or without 0x). ``source`` names it in errors."""
    text = value.strip()
    digits = text.removeprefix("0x").removeprefix("0X")
    if len(digits) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        # Do not echo the value: it may be a real key with a typo.
        raise SignerError(
            f"{source} is not a private key: expected 64 hex digits (optionally 0x-prefixed), "
            f"got {len(digits)} characters"
        )
    try:
        account = cast(LocalAccount, Account.from_key("0x" + digits))
    except ValueError:
        raise SignerError(f"{source} is not a valid secp256k1 private key (out of range)") from None
    log.info("loaded signer %s from %s", account.address, source)
    return account


def load_signer(
    *,
    keystore: str | Path | None = None,
    password_env: str = PASSWORD_ENV,
    key_env: str = KEY_ENV,
    env: Mapping[str, str] | None = None,
) -> LocalAccount:
    """The daemon's signing account.

    Order: ``keystore`` (path or brownie id) if given, else ``$ORCH_KEYSTORE``; its password
    from ``$<password_env>``. Otherwise the hex key in ``$<key_env>`` (``ORCH_PRIVATE_KEY`` or a
    per-role name such as ``ORCH_RELAYER_KEY``). ``env`` defaults to ``os.environ``.
    """
    env = os.environ if env is None else env
    source = keystore if keystore is not None else (env.get(KEYSTORE_ENV) or None)
    if source is not None:
        password = env.get(password_env)
        if password is None:
            raise SignerError(
                f"keystore {source} needs a password: set the environment variable {password_env}"
            )
        return account_from_keystore(source, password)
    raw = env.get(key_env)
    if raw:
        return account_from_hex(raw, source=f"environment variable {key_env}")
    raise SignerError(
        f"no signing key configured: set {KEYSTORE_ENV} (keystore path or brownie account id) and "
        f"{password_env}, or {key_env} (hex private key)"
    )
