"""Per-client session encryption: confidentiality between clients, binding, replay refusal."""

from __future__ import annotations

import secrets

import pytest

from orchestrator.split.crypto import C2S, KeyPair, SessionChannel, derive_session_keys, peek_header
from orchestrator.split.errors import SplitAuthError, SplitProtocolError, SplitReplayError

SESSION = bytes(range(16))


def _pair(client: KeyPair, server: KeyPair, cid: str) -> tuple[SessionChannel, SessionChannel]:
    """(client end, server end) of one session, each derived from its own private key."""
    kc = derive_session_keys(
        client,
        server.public_bytes,
        client_id=cid,
        client_public=client.public_bytes,
        server_public=server.public_bytes,
        session_id=SESSION,
    )
    ks = derive_session_keys(
        server,
        client.public_bytes,
        client_id=cid,
        client_public=client.public_bytes,
        server_public=server.public_bytes,
        session_id=SESSION,
    )
    return SessionChannel(cid, *kc, is_server=False), SessionChannel(cid, *ks, is_server=True)


@pytest.fixture
def keys() -> dict[str, KeyPair]:
    return {"server": KeyPair.generate(), "alice": KeyPair.generate(), "bob": KeyPair.generate()}


def test_both_ends_derive_the_same_keys_and_a_message_round_trips(keys: dict[str, KeyPair]) -> None:
    alice, server = _pair(keys["alice"], keys["server"], "alice")
    payload = secrets.token_bytes(1000)

    header, plain = server.open(alice.seal(3, "forward", payload), kind="forward")
    reply_header, reply = alice.open(server.seal(3, "forward_result", b"ok"))

    assert plain == payload and reply == b"ok"
    assert (header.client_id, header.step, header.kind, header.direction, header.counter) == (
        "alice",
        3,
        "forward",
        C2S,
        1,
    )
    assert reply_header.kind == "forward_result"


def test_ciphertext_does_not_contain_the_plaintext(keys: dict[str, KeyPair]) -> None:
    alice, _ = _pair(keys["alice"], keys["server"], "alice")
    secret = b"token ids 101 202 303 " * 20
    assert secret[:32] not in alice.seal(0, "forward", secret)


def test_another_clients_key_cannot_decrypt_captured_traffic(keys: dict[str, KeyPair]) -> None:
    alice, _ = _pair(keys["alice"], keys["server"], "alice")
    captured = alice.seal(0, "forward", b"alice's activations")
    # Bob knows the server's public key and his own private key, and claims to be alice: the
    # key he derives is not alice's, so authentication fails.
    kb = derive_session_keys(
        keys["bob"],
        keys["server"].public_bytes,
        client_id="alice",
        client_public=keys["alice"].public_bytes,
        server_public=keys["server"].public_bytes,
        session_id=SESSION,
    )
    bob_as_server_end = SessionChannel("alice", *kb, is_server=True)
    with pytest.raises(SplitAuthError, match="failed authentication"):
        bob_as_server_end.open(captured)


def test_a_forged_message_under_another_key_is_refused_by_the_server(
    keys: dict[str, KeyPair],
) -> None:
    _, server_end = _pair(keys["alice"], keys["server"], "alice")
    bob_posing, _ = _pair(keys["bob"], keys["server"], "alice")  # bob's key, alice's name
    with pytest.raises(SplitAuthError):
        server_end.open(bob_posing.seal(0, "forward", b"forged"))


def test_replayed_and_reordered_messages_are_refused_after_authentication(
    keys: dict[str, KeyPair],
) -> None:
    alice, server = _pair(keys["alice"], keys["server"], "alice")
    first = alice.seal(0, "forward", b"one")
    second = alice.seal(0, "backward", b"two")
    server.open(second)
    with pytest.raises(SplitReplayError, match="counter 1 is not newer than 2"):
        server.open(first)  # older counter (reordered)
    with pytest.raises(SplitReplayError, match="counter 2 is not newer than 2"):
        server.open(second)  # exact replay
    third = alice.seal(1, "forward", b"three")
    assert server.open(third)[1] == b"three"  # the session goes on


def test_header_is_bound_to_the_ciphertext(keys: dict[str, KeyPair]) -> None:
    alice, server = _pair(keys["alice"], keys["server"], "alice")
    env = alice.seal(5, "forward", b"x")
    tampered = env.replace(b'"s":5', b'"s":6')  # claim another step
    assert tampered != env
    with pytest.raises(SplitAuthError):
        server.open(tampered)
    flipped = env[:-1] + bytes([env[-1] ^ 1])
    with pytest.raises(SplitAuthError):
        server.open(flipped)
    assert server.open(env)[0].step == 5  # failures did not advance the replay window


def test_a_reflected_message_is_refused(keys: dict[str, KeyPair]) -> None:
    alice, _ = _pair(keys["alice"], keys["server"], "alice")
    with pytest.raises(SplitAuthError, match="reflected"):
        alice.open(alice.seal(0, "forward", b"x"))


def test_wrong_kind_and_garbage_are_protocol_errors(keys: dict[str, KeyPair]) -> None:
    alice, server = _pair(keys["alice"], keys["server"], "alice")
    with pytest.raises(SplitProtocolError, match="expected a 'backward' message"):
        server.open(alice.seal(0, "forward", b"x"), kind="backward")
    with pytest.raises(SplitProtocolError, match="not a split-learning message"):
        peek_header(b"GET / HTTP/1.1")


def test_sessions_differ_per_server_start(keys: dict[str, KeyPair]) -> None:
    args = dict(
        client_id="alice",
        client_public=keys["alice"].public_bytes,
        server_public=keys["server"].public_bytes,
    )
    k1 = derive_session_keys(
        keys["alice"], keys["server"].public_bytes, session_id=b"1" * 16, **args
    )
    k2 = derive_session_keys(
        keys["alice"], keys["server"].public_bytes, session_id=b"2" * 16, **args
    )
    assert k1 != k2 and k1[0] != k1[1]  # also: one key per direction
