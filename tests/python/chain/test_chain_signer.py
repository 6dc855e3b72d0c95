"""Signing keys from brownie-compatible keystores and environment variables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from orchestrator.chain import SignerError, load_signer

KEY = "0x" + "4c" * 32  # a throwaway test key
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def keyfile_json() -> dict:
    # eth-keyfile JSON (scrypt) with a cheap work factor: each decryption with brownie's default
    # (n=2**18) takes about 2 s on the dev VM; the default is exercised once below.
    return Account.encrypt(KEY, PASSWORD, kdf="scrypt", iterations=2**12)


def test_keystore_file_as_brownie_writes_it_with_password_from_env_gives_the_encrypted_key(tmp_path: Path) -> None:
    path = tmp_path / "org1.json"
    path.write_text(json.dumps(Account.encrypt(KEY, PASSWORD)))  # brownie's Account.save(): defaults
    account = load_signer(keystore=path, env={"ORCH_KEYSTORE_PASSWORD": PASSWORD})
    assert account.address == Account.from_key(KEY).address


def test_keystore_named_in_orch_keystore_and_brownie_id_resolution(
    tmp_path: Path, keyfile_json: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts_dir = tmp_path / ".brownie" / "accounts"
    accounts_dir.mkdir(parents=True)
    (accounts_dir / "aggregator.json").write_text(json.dumps(keyfile_json))
    monkeypatch.setenv("HOME", str(tmp_path))  # ~/.brownie/accounts/<id>.json
    account = load_signer(env={"ORCH_KEYSTORE": "aggregator", "MY_PW": PASSWORD}, password_env="MY_PW")
    assert account.address == Account.from_key(KEY).address


def test_wrong_password_is_a_signer_error_without_the_key(tmp_path: Path, keyfile_json: dict) -> None:
    path = tmp_path / "k.json"
    path.write_text(json.dumps(keyfile_json))
    with pytest.raises(SignerError) as info:
        load_signer(keystore=path, env={"ORCH_KEYSTORE_PASSWORD": "wrong"})
    assert "wrong password" in str(info.value) and str(path) in str(info.value)
    assert KEY[2:] not in str(info.value) and PASSWORD not in str(info.value)


def test_keystore_without_password_variable_says_which_variable(tmp_path: Path, keyfile_json: dict) -> None:
    path = tmp_path / "k.json"
    path.write_text(json.dumps(keyfile_json))
    with pytest.raises(SignerError, match="ORCH_KEYSTORE_PASSWORD"):
        load_signer(keystore=path, env={})


def test_missing_keystore_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SignerError, match="does not exist"):
        load_signer(keystore=tmp_path / "absent.json", env={"ORCH_KEYSTORE_PASSWORD": "x"})


def test_hex_key_from_default_and_named_environment_variables() -> None:
    expected = Account.from_key(KEY).address
    assert load_signer(env={"ORCH_PRIVATE_KEY": KEY}).address == expected
    assert load_signer(env={"ORCH_RELAYER_KEY": KEY[2:]}, key_env="ORCH_RELAYER_KEY").address == expected


def test_malformed_hex_key_is_rejected_without_echoing_it() -> None:
    bad = KEY[:-1] + "z"
    with pytest.raises(SignerError) as info:
        load_signer(env={"ORCH_PRIVATE_KEY": bad})
    assert "ORCH_PRIVATE_KEY" in str(info.value) and bad not in str(info.value) and bad[2:] not in str(info.value)


def test_no_key_configured_lists_the_options() -> None:
    with pytest.raises(SignerError) as info:
        load_signer(env={})
    assert all(v in str(info.value) for v in ("ORCH_KEYSTORE", "ORCH_KEYSTORE_PASSWORD", "ORCH_PRIVATE_KEY"))
