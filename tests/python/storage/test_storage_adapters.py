"""Adapters through packing, sealing and the store, with a real peft LoRA on a tiny Llama.

torch/transformers/peft are used here to *produce* and *load* adapters the way the learning
layer will; the code under test (orchestrator.storage.adapters) never imports torch.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")
from safetensors.torch import load_file, save_file  # noqa: E402

from orchestrator.storage.adapters import (  # noqa: E402
    AdapterLimits,
    fetch_adapter,
    generate_keypair,
    open_sealed,
    pack_adapter,
    public_key,
    seal,
    sealed_recipients,
    store_adapter,
    unpack_adapter,
    validate_adapter,
)
from orchestrator.storage.cid import compute_cid  # noqa: E402
from orchestrator.storage.errors import (  # noqa: E402
    AdapterValidationError,
    CorruptBlockError,
    DecryptionError,
    InvalidKeyError,
    MissingBlockError,
    NotFoundError,
    PayloadTooLargeError,
)

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20
CAROL = "0x" + "c3" * 20
CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"


def _tiny_config():
    return transformers.LlamaConfig(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
    )


def _base_model():
    torch.manual_seed(1234)
    return transformers.LlamaForCausalLM(_tiny_config()).eval()


@pytest.fixture(scope="module")
def lora(tmp_path_factory):
    """A real peft adapter (r=4 on q_proj, r=2 on v_proj via rank_pattern), saved twice."""
    torch.manual_seed(0)
    model = peft.get_peft_model(
        _base_model(),
        peft.LoraConfig(
            r=4,
            lora_alpha=8,
            target_modules=["q_proj", "v_proj"],
            rank_pattern={"v_proj": 2},
            init_lora_weights=False,  # non-zero B, so the adapter changes the outputs
        ),
    ).eval()
    root = tmp_path_factory.mktemp("lora")
    model.save_pretrained(root / "a")
    model.save_pretrained(root / "b")
    tokens = torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        logits = model(tokens).logits
    return {"a": root / "a", "b": root / "b", "tokens": tokens, "logits": logits}


@pytest.fixture
def keys():
    return {name: generate_keypair() for name in (ALICE, BOB, CAROL)}


def _recipients(keys, *ids):
    return {rid: keys[rid][1] for rid in ids}


def _variant(src: Path, dest: Path, tensors=None, config=None) -> Path:
    """Copy an adapter folder with tensors and/or config edited."""
    dest.mkdir(parents=True)
    cfg = json.loads((src / CONFIG).read_text())
    if config is not None:
        cfg = config(cfg)
    (dest / CONFIG).write_text(json.dumps(cfg, indent=2, sort_keys=True))
    state = load_file(str(src / WEIGHTS))
    if tensors is not None:
        state = tensors(state)
    save_file(state, str(dest / WEIGHTS), metadata={"format": "pt"})
    return dest


def _first(state, part):
    return next(k for k in sorted(state) if f"lora_{part}" in k)


# ------------------------------------------------------------------ packing
def test_pack_is_deterministic_for_the_same_adapter_saved_twice(lora):
    assert pack_adapter(lora["a"]) == pack_adapter(lora["b"])
    assert compute_cid(pack_adapter(lora["a"])) == compute_cid(pack_adapter(lora["b"]))


def test_pack_ignores_readme(lora, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(lora["a"], copy)
    (copy / "README.md").write_text("a different model card")
    assert pack_adapter(copy) == pack_adapter(lora["a"])


def test_pack_canonicalises_config_key_order(lora, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(lora["a"], copy)
    cfg = json.loads((copy / CONFIG).read_text())
    (copy / CONFIG).write_text(json.dumps(dict(reversed(list(cfg.items())))))
    assert pack_adapter(copy) == pack_adapter(lora["a"])


def test_unpack_restores_both_files_bit_exact(lora, tmp_path):
    out = unpack_adapter(pack_adapter(lora["a"]), tmp_path / "out")
    for name in (CONFIG, WEIGHTS):
        assert (out / name).read_bytes() == (lora["a"] / name).read_bytes()


def test_unpack_of_garbage_raises_adapter_validation(tmp_path):
    with pytest.raises(AdapterValidationError, match="magic"):
        unpack_adapter(b"PK\x03\x04 not an adapter", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_pack_of_folder_without_weights_raises_not_found(lora, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(lora["a"] / CONFIG, partial / CONFIG)
    with pytest.raises(NotFoundError, match=WEIGHTS):
        pack_adapter(partial)


# ------------------------------------------------------------------ sealing
def test_seal_opens_for_each_recipient_and_not_for_others(keys):
    payload = b"adapter bytes" * 1000
    blob = seal(payload, _recipients(keys, ALICE, BOB))
    assert sealed_recipients(blob) == sorted([ALICE, BOB])
    assert open_sealed(blob, ALICE, keys[ALICE][0]) == payload
    assert open_sealed(blob, BOB, keys[BOB][0]) == payload
    with pytest.raises(DecryptionError, match=CAROL):
        open_sealed(blob, CAROL, keys[CAROL][0])


def test_wrong_private_key_raises_decryption_error(keys):
    blob = seal(b"secret", _recipients(keys, ALICE))
    with pytest.raises(DecryptionError, match="wrong private key"):
        open_sealed(blob, ALICE, keys[BOB][0])


def test_tampered_ciphertext_raises_decryption_error(keys):
    blob = bytearray(seal(b"secret" * 100, _recipients(keys, ALICE)))
    blob[-40] ^= 0x01
    with pytest.raises(DecryptionError, match="tampered"):
        open_sealed(bytes(blob), ALICE, keys[ALICE][0])


def test_tampering_another_recipients_header_entry_is_detected(keys):
    """The header is the content cipher's AAD: Bob's entry changed -> Alice cannot open either."""
    blob = seal(b"secret", _recipients(keys, ALICE, BOB))
    idx = blob.index(BOB.encode()) + len(BOB) + 5  # inside Bob's ephemeral key
    bad = bytearray(blob)
    bad[idx] ^= 0x01
    with pytest.raises(DecryptionError, match="tampered"):
        open_sealed(bytes(bad), ALICE, keys[ALICE][0])


def test_deterministic_seal_repeats_and_random_seal_does_not(keys):
    payload = b"merged model delta"
    rec = _recipients(keys, ALICE, BOB)
    reordered = dict(reversed(list(rec.items())))
    assert seal(payload, rec, deterministic=True) == seal(payload, reordered, deterministic=True)
    assert seal(payload, rec) != seal(payload, rec)
    assert open_sealed(seal(payload, rec, deterministic=True), BOB, keys[BOB][0]) == payload


def test_recipient_ids_are_case_insensitive_addresses(keys):
    blob = seal(b"x", {ALICE.upper().replace("0X", "0x"): keys[ALICE][1]})
    assert open_sealed(blob, ALICE, keys[ALICE][0]) == b"x"


@pytest.mark.parametrize(
    "recipients",
    [{}, {"alice": b"\x01" * 32}, {ALICE: b"\x01" * 31}],
    ids=["no-recipient", "not-an-address", "short-key"],
)
def test_bad_recipients_raise_invalid_key(recipients):
    with pytest.raises(InvalidKeyError):
        seal(b"x", recipients)


def test_generate_keypair_gives_matching_32_byte_keys():
    priv, pub = generate_keypair()
    assert len(priv) == len(pub) == 32 and public_key(priv) == pub
    assert generate_keypair()[0] != priv


# ------------------------------------------------------------------ store round trip
def test_store_and_fetch_round_trip_is_bit_exact_and_loads_in_peft(lora, store, keys, tmp_path):
    cid = store_adapter(store, lora["a"], _recipients(keys, ALICE, BOB))
    out = fetch_adapter(store, cid, BOB, keys[BOB][0], tmp_path / "fetched")
    for name in (CONFIG, WEIGHTS):
        assert (out / name).read_bytes() == (lora["a"] / name).read_bytes()
    model = peft.PeftModel.from_pretrained(_base_model(), str(out)).eval()
    with torch.no_grad():
        assert torch.equal(model(lora["tokens"]).logits, lora["logits"])


def test_deterministic_store_gives_the_same_cid_for_the_same_adapter(lora, store, keys):
    rec = _recipients(keys, ALICE, BOB)
    first = store_adapter(store, lora["a"], rec, deterministic=True)
    assert store_adapter(store, lora["b"], rec, deterministic=True) == first
    assert store_adapter(store, lora["a"], rec) != first


def test_fetch_with_wrong_key_raises_and_leaves_no_folder(lora, store, keys, tmp_path):
    cid = store_adapter(store, lora["a"], _recipients(keys, ALICE))
    with pytest.raises(DecryptionError):
        fetch_adapter(store, cid, ALICE, keys[CAROL][0], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_fetch_of_corrupted_stored_block_raises_corrupt_block(lora, store, keys, tmp_path):
    cid = store_adapter(store, lora["a"], _recipients(keys, ALICE))
    for block in store.blocks_dir.rglob("*"):
        if block.is_file():
            raw = bytearray(block.read_bytes())
            raw[len(raw) // 2] ^= 0x10
            block.write_bytes(bytes(raw))
            break
    with pytest.raises(CorruptBlockError):
        fetch_adapter(store, cid, ALICE, keys[ALICE][0], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_fetch_of_absent_cid_raises_missing_block(store, keys, tmp_path):
    with pytest.raises(MissingBlockError):
        fetch_adapter(store, compute_cid(b"nothing"), ALICE, keys[ALICE][0], tmp_path / "out")


def test_fetch_refuses_oversize_payload_before_decrypting(lora, store, keys, tmp_path):
    cid = store_adapter(store, lora["a"], _recipients(keys, ALICE))
    assert len(store.cat(cid)) > 4000
    limits = AdapterLimits(max_bytes=1000, max_recipients=4)  # sealed bound: 1000 + 64 + 4 x 155
    # Carol's key would fail decryption: PayloadTooLargeError proves the refusal came first.
    with pytest.raises(PayloadTooLargeError, match=cid):
        fetch_adapter(store, cid, ALICE, keys[CAROL][0], tmp_path / "out", limits)
    assert not (tmp_path / "out").exists()


def test_store_refuses_oversize_adapter(lora, store, keys):
    with pytest.raises(PayloadTooLargeError, match="limit"):
        store_adapter(
            store, lora["a"], _recipients(keys, ALICE), limits=AdapterLimits(max_bytes=1000)
        )
    assert store.pins() == []


def test_adapter_limits_validate_their_fields():
    with pytest.raises(ValueError, match="max_bytes"):
        AdapterLimits(max_bytes=0)


# ------------------------------------------------------------------ validation
def _poison(value):
    def edit(state):
        name = _first(state, "B")
        t = state[name].clone()
        t.view(-1)[3] = value
        state[name] = t
        return state

    return edit


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"]
)
def test_non_finite_values_are_rejected_on_store_and_on_fetch(lora, store, keys, tmp_path, value):
    bad = _variant(lora["a"], tmp_path / "bad", tensors=_poison(value))
    with pytest.raises(AdapterValidationError, match="NaN or infinite"):
        store_adapter(store, bad, _recipients(keys, ALICE))
    # A sender who skips validation: seal the packed bytes directly and publish them.
    cid = store.add_bytes(seal(pack_adapter(bad), _recipients(keys, ALICE)))
    with pytest.raises(AdapterValidationError, match="lora_B"):
        fetch_adapter(store, cid, ALICE, keys[ALICE][0], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_shapes_that_do_not_match_the_rank_are_rejected(lora, tmp_path):
    bad = _variant(lora["a"], tmp_path / "bad", config=lambda c: {**c, "r": 8, "rank_pattern": {}})
    with pytest.raises(AdapterValidationError, match="rank 8"):
        validate_adapter(bad)


def test_rank_pattern_is_honoured(lora, tmp_path):
    validate_adapter(lora["a"])  # v_proj has rank 2 through rank_pattern, q_proj rank 4
    dropped = _variant(lora["a"], tmp_path / "dropped", config=lambda c: {**c, "rank_pattern": {}})
    with pytest.raises(AdapterValidationError, match="v_proj.lora_A"):
        validate_adapter(dropped)


def test_tensor_of_a_module_not_in_target_modules_is_rejected(lora, tmp_path):
    bad = _variant(
        lora["a"], tmp_path / "bad", config=lambda c: {**c, "target_modules": ["q_proj"]}
    )
    with pytest.raises(AdapterValidationError, match="v_proj"):
        validate_adapter(bad)


def test_tensor_that_is_not_a_lora_weight_is_rejected(lora, tmp_path):
    def add_extra(state):
        state["base_model.model.lm_head.weight"] = torch.zeros(128, 64)
        return state

    bad = _variant(lora["a"], tmp_path / "bad", tensors=add_extra)
    with pytest.raises(AdapterValidationError, match="lm_head"):
        validate_adapter(bad)


def test_missing_lora_b_is_rejected(lora, tmp_path):
    def drop_b(state):
        del state[_first(state, "B")]
        return state

    bad = _variant(lora["a"], tmp_path / "bad", tensors=drop_b)
    with pytest.raises(AdapterValidationError, match="no lora_B"):
        validate_adapter(bad)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: {**c, "peft_type": "IA3"}, "peft_type"),
        (lambda c: {**c, "r": 0}, "positive integer"),
        (lambda c: {**c, "target_modules": []}, "target_modules"),
    ],
    ids=["not-lora", "r-zero", "no-targets"],
)
def test_bad_config_is_rejected(lora, tmp_path, edit, message):
    bad = _variant(lora["a"], tmp_path / "bad", config=edit)
    with pytest.raises(AdapterValidationError, match=message):
        validate_adapter(bad)


def test_config_that_is_not_json_is_rejected(lora, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(lora["a"], bad)
    (bad / CONFIG).write_text("{not json")
    with pytest.raises(AdapterValidationError, match="not valid JSON"):
        validate_adapter(bad)


def test_bfloat16_adapter_is_validated_including_nan_detection(lora, tmp_path):
    to_bf16 = lambda s: {k: v.to(torch.bfloat16) for k, v in s.items()}  # noqa: E731
    good = _variant(lora["a"], tmp_path / "bf16", tensors=to_bf16)
    validate_adapter(good)
    bad = _variant(
        lora["a"], tmp_path / "bf16-nan", tensors=lambda s: _poison(float("nan"))(to_bf16(s))
    )
    with pytest.raises(AdapterValidationError, match="NaN"):
        validate_adapter(bad)


def test_truncated_weights_file_is_rejected(lora, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(lora["a"], bad)
    raw = (bad / WEIGHTS).read_bytes()
    (bad / WEIGHTS).write_bytes(raw[: len(raw) - 100])
    with pytest.raises(AdapterValidationError, match=WEIGHTS):
        validate_adapter(bad)


# ------------------------------------------------------------------ binding (finding 4)
def test_finding4_blob_bound_to_another_submitter_is_refused(keys):
    """A blob sealed for Alice's round-3 submission, presented as Bob's, fails its binding."""
    from orchestrator.storage.adapters import submission_context
    from orchestrator.storage.errors import BindingMismatchError

    rounds = "0x" + "11" * 20
    alice_ctx = submission_context(1337, rounds, 3, ALICE)
    blob = seal(b"adapter", _recipients(keys, ALICE, BOB), context=alice_ctx)
    assert open_sealed(blob, BOB, keys[BOB][0], expect_context=alice_ctx) == b"adapter"
    for wrong in (submission_context(1337, rounds, 3, BOB), submission_context(1337, rounds, 4, ALICE),
                  submission_context(1338, rounds, 3, ALICE)):
        with pytest.raises(BindingMismatchError, match="copied or replayed"):
            open_sealed(blob, BOB, keys[BOB][0], expect_context=wrong)


def test_rewriting_the_binding_in_the_header_fails_authentication(keys):
    """The context is part of the authenticated header: a copier cannot re-label the blob."""
    from orchestrator.storage.adapters import sealed_context, submission_context

    rounds = "0x" + "11" * 20
    alice_ctx, bob_ctx = (submission_context(1337, rounds, 3, who) for who in (ALICE, BOB))
    blob = seal(b"adapter", _recipients(keys, ALICE, BOB), context=alice_ctx)
    assert sealed_context(blob) == alice_ctx and len(alice_ctx) == len(bob_ctx)
    relabelled = blob.replace(alice_ctx, bob_ctx, 1)
    assert sealed_context(relabelled) == bob_ctx
    with pytest.raises(DecryptionError, match="tampered"):
        open_sealed(relabelled, BOB, keys[BOB][0], expect_context=bob_ctx)
