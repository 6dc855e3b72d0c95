"""Running a whole split-training experiment: servers, client processes, baseline, report.

``run_split_training(cfg)`` is what ``python -m orchestrator split-train`` and
``bench/split.py`` call. Layout per mode:

* ``sequential`` / ``batched``: one server process serving all N clients;
* ``hierarchical``: K server replicas (processes), client i served by replica ``i % K``, each
  replica client-batching its group, LoRA averaged across replicas every M steps.

Each client is its own process holding its parts A and C and its own data; it sees only the
server URL, its private key and the server's pinned public key.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from orchestrator.split.crypto import KeyPair
from orchestrator.split.errors import SplitError, SplitTimeoutError
from orchestrator.split.model import LoraSpec

log = logging.getLogger(__name__)

RUN_MODES = ("sequential", "batched", "hierarchical")
#: loading a model in a new process can take minutes on a loaded machine
START_TIMEOUT_S = 900.0


@dataclass
class SplitTrainConfig:
    """One split-training run (validated; every field has a CLI flag)."""

    model: str = field(default="tiny", metadata={"help": "tiny | smollm2 | a local HF folder"})
    clients: int = field(default=2, metadata={"help": "number of client organisations"})
    mode: str = field(
        default="sequential", metadata={"help": "sequential | batched | hierarchical"}
    )
    steps: int = field(
        default=8, metadata={"help": "training steps (each client one batch per step)"}
    )
    batch_size: int = field(default=2, metadata={"help": "sequences per client per step"})
    seq_len: int = field(default=64, metadata={"help": "max tokens per sequence (right-padded)"})
    lr: float = field(default=2e-3, metadata={"help": "Adam learning rate, server and clients"})
    seed: int = field(default=0, metadata={"help": "seeds LoRA init and data order"})
    lora_r: int = 8
    lora_alpha: int = 16
    replicas: int = field(default=2, metadata={"help": "hierarchical: server replicas K"})
    sync_every: int = field(
        default=2, metadata={"help": "hierarchical: average LoRA every M steps"}
    )
    step_timeout_s: float = field(
        default=120.0, metadata={"help": "drop a client missing this long"}
    )
    threads: int = field(default=1, metadata={"help": "torch threads per process"})
    sync: str = field(
        default="grads",
        metadata={"help": "hierarchical: grads (all-reduce every step) | adam | weights"},
    )
    server_lora: str = field(
        default="shared", metadata={"help": "shared | per-client server LoRA"}
    )
    device: str = field(default="cpu", metadata={"help": "torch device of every process"})
    exclude: tuple[int, ...] = field(
        default=(), metadata={"help": "client indices left out (a run without them)"}
    )
    adapters_dir: str | None = field(
        default=None, metadata={"help": "write each client's full-model adapter here"}
    )
    baseline: bool = field(default=True, metadata={"help": "also train centrally for comparison"})
    check_equivalence: bool = field(default=True, metadata={"help": "in-process fp32 checks"})

    def __post_init__(self) -> None:
        if self.mode not in RUN_MODES:
            raise ValueError(f"mode must be one of {RUN_MODES}, got {self.mode!r}")
        for name in ("clients", "steps", "batch_size", "lora_r", "lora_alpha", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps < 2:
            raise ValueError(f"steps must be >= 2 to measure a step rate, got {self.steps}")
        if self.seq_len < 4:
            raise ValueError(f"seq_len must be >= 4, got {self.seq_len}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        from orchestrator.split.server import check_server_choices

        check_server_choices(self.mode, self.sync, self.server_lora)
        self.exclude = tuple(sorted(set(int(i) for i in self.exclude)))
        bad = [i for i in self.exclude if not 0 <= i < self.clients]
        if bad:
            raise ValueError(f"exclude: client indices {bad} are not in 0..{self.clients - 1}")
        if len(self.exclude) >= self.clients:
            raise ValueError("exclude leaves no client to train")
        if self.mode == "hierarchical":
            if not 1 <= self.replicas <= self.clients:
                raise ValueError(
                    f"hierarchical mode needs 1 <= replicas <= clients, got replicas={self.replicas} "
                    f"for {self.clients} clients"
                )
            if self.sync_every < 1:
                raise ValueError(f"sync_every must be >= 1, got {self.sync_every}")

    @property
    def lora(self) -> LoraSpec:
        return LoraSpec(r=self.lora_r, alpha=self.lora_alpha)

    @property
    def client_indices(self) -> list[int]:
        """Who trains: client ``i`` keeps its data and id whoever else is left out."""
        return [i for i in range(self.clients) if i not in self.exclude]

    def learning_spec(self, folder: str | Path) -> str:
        """The model spec the learning layer (merge, evaluation) loads this base with."""
        return str(folder) if self.model == "tiny" else self.model


# ----------------------------------------------------------------------------- data


Batch = tuple[torch.Tensor, torch.Tensor]  # (input_ids, attention_mask), right-padded


def client_texts(
    clients: int, steps: int, batch_size: int, seq_len: int, seed: int
) -> list[list[str]]:
    """Per client, the ``steps * batch_size`` texts it trains on (its org's BBC topic i mod 5).

    Clients beyond the fifth share a topic but take disjoint shards of it, so no two clients
    ever hold the same text. Texts are article prefixes of 1/4 .. 4/4 of ~4*seq_len characters:
    lengths vary, so client-batching really pads and masks.
    """
    from orchestrator.learning.data import TOPICS, load_org_data

    per_topic = math.ceil(clients / len(TOPICS))
    need = steps * batch_size
    out: list[list[str]] = []
    for i in range(clients):
        topic, shard = TOPICS[i % len(TOPICS)], i // len(TOPICS)
        texts = load_org_data(topic, seed=seed, num_canaries=0).train[shard::per_topic]
        if not texts:
            raise SplitError(f"client {i}: topic {topic!r} shard {shard} has no texts")
        out.append([texts[j % len(texts)][: seq_len * (1 + (i + j) % 4)] for j in range(need)])
    return out


def client_batches(
    model_dir: str | Path, clients: int, steps: int, batch_size: int, seq_len: int, seed: int
) -> list[list[Batch]]:
    """Per client, ``steps`` tokenized, right-padded batches of :func:`client_texts`."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    out: list[list[Batch]] = []
    for samples in client_texts(clients, steps, batch_size, seq_len, seed):
        batches: list[Batch] = []
        for s in range(steps):
            enc = tok(
                samples[s * batch_size : (s + 1) * batch_size],
                truncation=True,
                max_length=seq_len,
                padding="longest",
                return_tensors="pt",
            )
            batches.append((enc["input_ids"].long(), enc["attention_mask"].long()))
        out.append(batches)
    return out


# ----------------------------------------------------------------------------- client process


@dataclass
class ClientJob:
    """What a client process gets at start; the server address follows on ``address`` (a
    pipe), so the client loads its model while the servers are still starting."""

    client_id: str
    private_key_hex: str
    model_dir: str
    lora: LoraSpec
    seed: int
    lr: float
    front_layers: int
    back_layers: int
    timeout_s: float
    threads: int
    batches: list[Batch]
    device: str = "cpu"
    adapter_dir: str | None = None
    base_model: str = ""
    split_meta: dict[str, Any] = field(default_factory=dict)


def client_main(job: ClientJob, address: Any, results: Any) -> None:
    """Client process entry point: train all steps, put one result dict on ``results``.

    ``address`` yields ``(server_url, server_public_hex)`` or ``None`` (abort).
    """
    from orchestrator.split.base import load_base, set_threads
    from orchestrator.split.client import SplitClient
    from orchestrator.split.model import split_model

    set_threads(job.threads)
    out: dict[str, Any] = {
        "client_id": job.client_id,
        "losses": [],
        "finished_at": [],
        "error": None,
    }
    try:
        model = load_base(job.model_dir, job.lora, job.seed)
        parts = split_model(model, job.front_layers, job.back_layers)
        parts.front.to(job.device)
        parts.back.to(job.device)
        if not address.poll(job.timeout_s * 4):
            raise SplitTimeoutError(
                f"{job.client_id}: no server address within {job.timeout_s * 4} s"
            )
        msg = address.recv()
        if msg is None:
            raise SplitError(f"{job.client_id}: run aborted before training started")
        server_url, server_public_hex = msg
        client = SplitClient(
            job.client_id,
            KeyPair.from_seed(bytes.fromhex(job.private_key_hex)),
            server_url,
            parts.front,
            parts.back,
            lr=job.lr,
            timeout_s=job.timeout_s,
            expected_server_public=bytes.fromhex(server_public_hex),
            device=job.device,
        )
        client.connect()
        for step, (ids, mask) in enumerate(job.batches):
            r = client.train_step(step, ids, mask)
            out["losses"].append(r.loss)
            out["finished_at"].append(r.finished_at)
        if job.adapter_dir is not None:
            out["adapter"] = _write_client_adapter(job, model, parts, client)
        assert client.channel is not None
        out["crypto_seconds"] = client.channel.crypto_seconds
        out["bytes_sent"] = client.wire.bytes_sent
        out["bytes_received"] = client.wire.bytes_received
    except SplitError as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - reported to the parent, never swallowed
        out["error"] = f"{type(exc).__name__}: {exc}"
    results.put(out)


def client_adapter(model: Any, parts: Any, client: Any, steps: int) -> dict[str, torch.Tensor]:
    """This client's full-model LoRA (peft keys): its own front/back LoRA + the server LoRA
    its activations went through (fetched from the server once step ``steps`` is applied)."""
    from orchestrator.split.adapters import full_adapter_tensors
    from orchestrator.split.model import trainable

    full = {id(p): n for n, p in model.named_parameters()}
    own = {full[id(p)]: p for part in (parts.front, parts.back) for p in trainable(part).values()}
    expected = {n for n, p in model.named_parameters() if p.requires_grad}
    return full_adapter_tensors(own, client.fetch_server_adapter(steps), expected)


def _write_client_adapter(job: ClientJob, model: Any, parts: Any, client: Any) -> dict[str, Any]:
    from orchestrator.learning.adapters import adapter_sha256
    from orchestrator.split.adapters import write_split_adapter

    tensors = client_adapter(model, parts, client, len(job.batches))
    num_samples = sum(int(ids.shape[0]) for ids, _ in job.batches)
    assert job.adapter_dir is not None
    folder = write_split_adapter(
        tensors, job.lora, job.base_model, num_samples, Path(job.adapter_dir), job.split_meta
    )
    return {"dir": str(folder), "sha256": adapter_sha256(folder), "num_samples": num_samples}


# ----------------------------------------------------------------------------- baseline


def centralized_losses(
    model_dir: str | Path, batches: list[list[Batch]], lora: LoraSpec, seed: int, lr: float
) -> list[float]:
    """The same LoRA, data and steps trained on one machine: per step, the mean client loss."""
    from orchestrator.split.base import load_base
    from orchestrator.split.model import causal_lm_loss, lm_labels, trainable

    model = load_base(model_dir, lora, seed)
    opt = torch.optim.Adam(trainable(model).values(), lr=lr)
    losses = []
    for step in range(len(batches[0])):
        per_client = []
        for client in batches:
            ids, mask = client[step]
            logits = model(input_ids=ids, attention_mask=mask).logits
            per_client.append(causal_lm_loss(logits, lm_labels(ids, mask)))
        loss = torch.stack(per_client).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    return losses


# ----------------------------------------------------------------------------- orchestration


def _final(losses: list[float]) -> float:
    """Mean of the last quarter of steps: less noisy than the last step alone."""
    k = max(1, len(losses) // 4)
    return float(sum(losses[-k:]) / k)


def run_split_training(
    cfg: SplitTrainConfig, model_dir: str | Path | None = None
) -> dict[str, Any]:
    """Train with servers and clients in separate processes; return the JSON-able report."""
    import multiprocessing as mp
    import queue

    from orchestrator.split.base import split_model_dir
    from orchestrator.split.equivalence import equivalence_report
    from orchestrator.split.server import ServerConfig, ServerProcess

    started = time.perf_counter()
    folder = Path(model_dir) if model_dir is not None else split_model_dir(cfg.model)
    all_batches = client_batches(
        folder, cfg.clients, cfg.steps, cfg.batch_size, cfg.seq_len, cfg.seed
    )
    batches = [all_batches[i] for i in cfg.client_indices]
    ids = [f"client-{i}" for i in cfg.client_indices]
    client_keys = {cid: secrets.token_bytes(32) for cid in ids}
    client_pubs = {cid: KeyPair.from_seed(k).public_bytes.hex() for cid, k in client_keys.items()}

    replicas = min(cfg.replicas, len(ids)) if cfg.mode == "hierarchical" else 1
    groups = [[cid for i, cid in enumerate(ids) if i % replicas == g] for g in range(replicas)]
    sync_key = secrets.token_hex(32)
    per_client = cfg.server_lora == "per-client"
    server_mode = "sequential" if cfg.mode == "sequential" or per_client else "batched"
    base_model = ""
    if cfg.adapters_dir is not None:
        from orchestrator.split.adapters import base_model_id

        base_model = base_model_id(cfg.learning_spec(folder))
    split_meta = {
        "mode": cfg.mode,
        "server_lora": cfg.server_lora,
        "sync": cfg.sync,
        "steps": cfg.steps,
        "lr": cfg.lr,
        "seed": cfg.seed,
    }

    def server_cfg(g: int, sync_url: str | None) -> ServerConfig:
        return ServerConfig(
            model_dir=str(folder),
            clients={cid: client_pubs[cid] for cid in groups[g]},
            mode=server_mode,
            lora=cfg.lora,
            seed=cfg.seed,
            lr=cfg.lr,
            step_timeout_s=cfg.step_timeout_s,
            private_key_hex=secrets.token_hex(32),
            replica=g,
            replicas=replicas,
            sync_every=cfg.sync_every if replicas > 1 else 0,
            sync_url=sync_url,
            sync_key_hex=sync_key if replicas > 1 else None,
            torch_threads=cfg.threads,
            sync=cfg.sync,
            server_lora=cfg.server_lora,
            device=cfg.device,
        )

    timings: dict[str, float] = {"prepare_s": time.perf_counter() - started}
    servers: list[ServerProcess] = []
    procs: list[Any] = []
    pipes: list[Any] = []
    outs: dict[str, dict[str, Any]] = {}
    ctx = mp.get_context("spawn")
    t0 = time.perf_counter()
    try:
        # replica 0 and every client load their models concurrently; other replicas need
        # replica 0's URL (their sync hub), so they start once it listens
        first = ServerProcess(server_cfg(0, None), START_TIMEOUT_S, wait=False)
        servers.append(first)
        results = ctx.Queue()
        for i, cid in enumerate(ids):
            job = ClientJob(
                client_id=cid,
                private_key_hex=client_keys[cid].hex(),
                model_dir=str(folder),
                lora=cfg.lora,
                seed=cfg.seed,
                lr=cfg.lr,
                front_layers=1,
                back_layers=1,
                timeout_s=cfg.step_timeout_s * 2,
                threads=cfg.threads,
                batches=batches[i],
                device=cfg.device,
                adapter_dir=(
                    str(Path(cfg.adapters_dir) / cid) if cfg.adapters_dir is not None else None
                ),
                base_model=base_model,
                split_meta={**split_meta, "client": cid},
            )
            recv_end, send_end = ctx.Pipe(duplex=False)
            p = ctx.Process(
                target=client_main, args=(job, recv_end, results), name=f"split-{cid}", daemon=True
            )
            p.start()
            procs.append(p)
            pipes.append(send_end)
        first.wait_ready()
        others = [
            ServerProcess(server_cfg(g, first.url), START_TIMEOUT_S, wait=False)
            for g in range(1, replicas)
        ]
        servers.extend(srv.wait_ready() for srv in others)
        for i, send_end in enumerate(pipes):
            srv = servers[i % replicas]
            send_end.send((srv.url, srv.hello["server_public"]))
        timings["servers_ready_s"] = time.perf_counter() - t0
        deadline = time.monotonic() + cfg.step_timeout_s * (cfg.steps + 4)
        while len(outs) < len(ids):
            try:
                r = results.get(timeout=max(1.0, deadline - time.monotonic()))
            except queue.Empty as exc:
                raise SplitTimeoutError(
                    f"only {len(outs)} of {len(ids)} clients reported before the run deadline"
                ) from exc
            outs[r["client_id"]] = r
        timings["clients_done_s"] = time.perf_counter() - t0
        server_stats = [srv.stats() for srv in servers]
    finally:
        for send_end in pipes:
            try:
                send_end.send(None)  # unblocks a client still waiting for an address
            except OSError:
                pass
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        for srv in servers:
            srv.stop()

    errors = {cid: o["error"] for cid, o in outs.items() if o["error"]}
    ok = [outs[cid] for cid in ids if not outs[cid]["error"]]
    if not ok:
        raise SplitError(f"every client failed: {errors}")
    n_steps = min(len(o["losses"]) for o in ok)
    step_loss = [sum(o["losses"][s] for o in ok) / len(ok) for s in range(n_steps)]
    step_end = [max(o["finished_at"][s] for o in ok) for s in range(n_steps)]
    wall = step_end[-1] - step_end[0]
    steps_per_s = (n_steps - 1) / wall if wall > 0 else float("nan")
    # the median step is robust to a neighbour process stealing the CPU for a moment
    durations = sorted(b - a for a, b in zip(step_end, step_end[1:]))
    median = (
        durations[len(durations) // 2]
        if len(durations) % 2
        else sum(durations[len(durations) // 2 - 1 : len(durations) // 2 + 1]) / 2
    )
    client_crypto = max(o["crypto_seconds"] for o in ok)
    server_crypto = max(s["crypto_seconds"] for s in server_stats)
    per_step_crypto = (client_crypto + server_crypto) / n_steps
    report: dict[str, Any] = {
        "config": asdict(cfg),
        "model_dir": str(folder),
        "mode": cfg.mode,
        "clients": cfg.clients,
        "replicas": replicas,
        "losses": {cid: outs[cid]["losses"] for cid in ids},
        "mean_loss_per_step": step_loss,
        "final_loss": _final(step_loss),
        "steps_per_s": steps_per_s,
        "steps_per_s_median": 1.0 / median if median > 0 else float("nan"),
        "step_seconds": 1.0 / steps_per_s if steps_per_s > 0 else None,
        "encryption": {
            "client_crypto_seconds_max": client_crypto,
            "server_crypto_seconds_max": server_crypto,
            # crypto on the critical path of one step: one client (they run in parallel) plus
            # the server (it seals/opens every client's messages)
            "overhead_fraction": per_step_crypto * steps_per_s if steps_per_s > 0 else None,
        },
        "bytes_on_wire": {
            "client_to_server": sum(o["bytes_sent"] for o in ok),
            "server_to_client": sum(o["bytes_received"] for o in ok),
            "per_client_step": (sum(o["bytes_sent"] + o["bytes_received"] for o in ok))
            / (len(ok) * n_steps),
        },
        "server": server_stats,
        "client_errors": errors,
        "client_ids": ids,
        "adapters": {cid: outs[cid]["adapter"] for cid in ids if outs[cid].get("adapter")},
    }
    t1 = time.perf_counter()
    if cfg.baseline:
        central = centralized_losses(folder, batches, cfg.lora, cfg.seed, cfg.lr)
        report["centralized"] = {
            "mean_loss_per_step": central,
            "final_loss": _final(central),
            "final_loss_rel_diff": abs(_final(step_loss) - _final(central)) / _final(central),
        }
    timings["baseline_s"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    if cfg.check_equivalence:
        report["equivalence"] = equivalence_report(folder, batches, cfg.lora, cfg.seed)
    timings["equivalence_s"] = time.perf_counter() - t1
    report["timings"] = timings
    report["wall_seconds"] = time.perf_counter() - started
    return report
