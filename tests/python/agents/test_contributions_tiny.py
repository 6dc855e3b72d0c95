"""Contribution accounting on the real tiny model: coalition values of re-merged stacked adapters.

Honest orgs (business, entertainment, politics) train on their own BBC data with the round's
config; "dup" trains on politics' data with the same config and seed, so it submits politics'
adapter bit for bit (copying cannot do better than that); "noise" submits random matrices of the
honest scale; "zero" submits B = 0. The aggregator's path values every coalition's re-merged
model on the mixed validation set, takes exact Shapley values and pays a budget through
``allocate_rewards``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from orchestrator.agents.allocation import allocate_rewards
from orchestrator.agents.shapley import exact_shapley

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
HONEST = ("business", "entertainment", "politics")
BUDGET = 10**21
SEQ = 64


@pytest.fixture(scope="module")
def game(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    import torch

    from orchestrator.learning.adapters import Adapter, read_adapter, write_adapter
    from orchestrator.learning.api import TrainConfig, load_org_data, train_adapter
    from orchestrator.learning.coalitions import coalition_values

    work = Path(tmp_path_factory.mktemp("contrib"))
    cfg = TrainConfig(steps=24, lr=5e-3, seq_len=SEQ, batch_size=4, seed=0)  # the calibration's high level
    data = {o: load_org_data(o, max_train=32, max_val=4) for o in HONEST}
    dirs, samples = {}, {}
    for org, texts in [*((o, data[o].train) for o in HONEST), ("dup", data["politics"].train)]:
        result = train_adapter("tiny", texts, cfg, work / org, progress=False)
        dirs[org], samples[org] = result.adapter_dir, result.num_samples
    honest = read_adapter(dirs["business"])
    gen = torch.Generator().manual_seed(0)
    noise = {k: torch.randn(v.shape, generator=gen) * float(v.float().std()) for k, v in honest.tensors.items()}
    dirs["noise"] = write_adapter(Adapter(None, dict(honest.config), noise, dict(honest.meta)), work / "noise")
    zero = {k: (torch.zeros_like(v) if "lora_B" in k else v.clone()) for k, v in honest.tensors.items()}
    dirs["zero"] = write_adapter(Adapter(None, dict(honest.config), zero, dict(honest.meta)), work / "zero")
    samples["noise"] = samples["zero"] = samples["business"]
    val = [t for o in HONEST for t in data[o].val]
    players = sorted(dirs)
    masks = [frozenset(p for i, p in enumerate(players) if m >> i & 1) for m in range(1 << len(players))]
    _, values = coalition_values("tiny", dirs, samples, val, masks, seq_len=SEQ)
    return dirs, samples, val, values


def pay(players: list[str], values: dict[frozenset[str], float]) -> tuple[dict[str, float], dict[str, int]]:
    shapley = exact_shapley(players, values.__getitem__).values
    return shapley, allocate_rewards(BUDGET, shapley)


@pytest.mark.slow
def test_duplicate_noise_and_zero_adapters_earn_clearly_less_than_honest_orgs(game) -> None:  # type: ignore[no-untyped-def]
    _, _, _, values = game
    players = sorted({p for c in values for p in c})
    shapley, rewards = pay(players, values)
    assert sum(shapley.values()) == pytest.approx(values[frozenset(players)])  # efficiency
    assert sum(rewards.values()) <= BUDGET
    unique = min(rewards["business"], rewards["entertainment"])  # honest orgs whose data nobody copied
    assert unique > 0
    for cheat in ("dup", "noise", "zero"):
        assert rewards[cheat] < 0.5 * unique, (cheat, rewards, shapley)
    assert rewards["noise"] == 0 and rewards["zero"] == 0  # the model is better without them
    # Copier and copied are indistinguishable (symmetry), and copying gains nothing: together
    # they earn about what politics earns alone in the same consortium without the copy.
    assert rewards["dup"] == pytest.approx(rewards["politics"], rel=1e-4)  # float rounding of the evaluations
    without = [p for p in players if p != "dup"]
    shapley_alone, _ = pay(without, {c: v for c, v in values.items() if "dup" not in c})
    assert shapley["dup"] + shapley["politics"] == pytest.approx(shapley_alone["politics"], abs=0.25 * abs(
        shapley_alone["politics"]) + 1e-4)


@pytest.mark.slow
def test_a_coalition_value_equals_a_fresh_re_merge(game, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from orchestrator.learning.api import evaluate_perplexity, merge_adapters

    dirs, samples, val, values = game
    pair = frozenset({"entertainment", "politics"})
    merged = merge_adapters([dirs["entertainment"], dirs["politics"]],
                            [samples["entertainment"], samples["politics"]], tmp_path / "m")
    base = math.log(evaluate_perplexity("tiny", None, val, seq_len=SEQ))
    fresh = math.log(evaluate_perplexity("tiny", merged, val, seq_len=SEQ))
    assert values[pair] == pytest.approx(base - fresh, abs=1e-5)
    assert values[frozenset({"politics", "dup"})] == pytest.approx(values[frozenset({"politics"})], abs=1e-6)
