"""The economic simulation behind ``python -m orchestrator incentives``.

N organisations meet for R rounds. In each round every org picks an action (skip, or train at
low / medium / high); the surrogate (:mod:`orchestrator.agents.surrogate`, calibrated from real
runs) turns the participants' levels into each coalition's validation-loss reduction; exact
Shapley values over the participants split the round's payment (``price`` tokens per nat,
capped at the round's budget, zero for a harmful contribution: :func:`allocate_rewards`, the
same function the aggregator uses on chain). Each org's utility is
``payment - cost of its level + valuation * improvement``.

Social welfare per round is ``sum_i valuation_i * v(P) - sum_i cost_i``: the value of the
model's improvement to all members minus the compute spent. Payments are transfers between the
reward pool (funded by the members) and the members, so they cancel out of welfare; they only
steer who trains. The default price is ``(N - 1) * valuation``: an org is paid for the value
its contribution creates for the others, so its own utility moves with welfare (a Groves-style
alignment, exact when Shapley values equal marginal contributions).

Policies compared under the same seeds (same costs, same per-round training noise): Q-learning
(one :class:`QAgent` per org), always participate at high, uniformly random, myopic best
response to the others' last actions (with the noise-free surrogate), and the best static
profile found by search (exhaustive over 4^N profiles for N <= 10, coordinate ascent above).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from orchestrator.agents.allocation import allocate_rewards
from orchestrator.agents.qlearning import ACTIONS, LEVEL_FRACTION, AgentConfig, Observation, QAgent, StateSpace
from orchestrator.agents.shapley import MAX_EXACT, shapley_from_table
from orchestrator.agents.surrogate import Surrogate

PRICE_FACTOR = 0.2
"""Default price per nat as a multiple of (N-1) * valuation, chosen by :func:`price_search` on
seeds 1000-1002 (disjoint from the reported seeds): Shapley values exceed marginal
contributions when the merged model saturates, so the Groves price overpays participation."""
PRICE_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)
POLICIES = ("q_learning", "always", "random", "myopic", "best_static")
TOKEN_UNITS = 10**6
"""The simulation pays integer micro-tokens through the aggregator's allocation function."""
# t-quantiles (two-sided 95%) for small numbers of seeds; normal beyond.
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


@dataclass(frozen=True)
class SimConfig:
    """One run of the economic simulation."""

    orgs: int = field(default=10, metadata={"help": "number of organisations (exact Shapley up to 10)"})
    rounds: int = field(default=300, metadata={"help": "rounds per run"})
    seed: int = field(default=0, metadata={"help": "seeds costs, training noise and every agent"})
    valuation: float = field(default=100.0, metadata={"help": "tokens each org values one nat of loss reduction at"})
    price: float | None = field(default=None, metadata={"help": "tokens paid per nat of value; None: price_factor*(N-1)*valuation"})
    price_factor: float = field(default=PRICE_FACTOR, metadata={"help": "price as a multiple of the Groves price (N-1)*valuation"})
    budget_factor: float = field(default=1.5, metadata={"help": "round budget = factor * price * v(all at high)"})
    cost_low: float = field(default=0.3, metadata={"help": "cheapest org's cost at high / social value per org at all-high"})
    cost_high: float = field(default=3.0, metadata={"help": "dearest org's cost at high / social value per org at all-high"})
    compute_budget: float = field(default=1.0, metadata={"help": "each org's compute, in rounds at high level / R"})
    window: int = field(default=50, metadata={"help": "rounds in the evaluation windows"})
    ratio_round: int = field(default=200, metadata={"help": "welfare_ratio is measured on the window ending here"})
    rule: str = field(default="shapley", metadata={"help": "payment basis: shapley or marginal (leave-one-out)"})
    band: float = field(default=0.05, metadata={"help": "|margin| < band * cost(high): indifferent, not classified"})
    agent: AgentConfig = field(default_factory=AgentConfig)

    def __post_init__(self) -> None:
        checks = [
            ("orgs", isinstance(self.orgs, int) and 2 <= self.orgs <= 64),
            ("rounds", isinstance(self.rounds, int) and self.rounds >= 1),
            ("seed", isinstance(self.seed, int) and self.seed >= 0),
            ("valuation", self.valuation >= 0),
            ("price", self.price is None or self.price >= 0),
            ("price_factor", self.price_factor >= 0),
            ("budget_factor", self.budget_factor > 0),
            ("cost_low", 0 < self.cost_low <= self.cost_high),
            ("compute_budget", self.compute_budget > 0),
            ("window", isinstance(self.window, int) and self.window >= 1),
            ("ratio_round", isinstance(self.ratio_round, int) and self.ratio_round >= 1),
            ("band", 0 <= self.band < 1),
            ("rule", self.rule in ("shapley", "marginal")),
        ]
        for name, ok in checks:
            if not ok:
                raise ValueError(f"SimConfig.{name} is invalid: {getattr(self, name)!r} ({_HELP[name]})")

    @property
    def effective_price(self) -> float:
        return self.price_factor * (self.orgs - 1) * self.valuation if self.price is None else self.price

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["effective_price"] = self.effective_price
        return data


_HELP = {f.name: f.metadata.get("help", "") for f in dataclasses.fields(SimConfig)}


@functools.lru_cache(maxsize=None)
def _fractions() -> np.ndarray:
    return np.array([LEVEL_FRACTION[a] for a in ACTIONS])


class Economy:
    """Costs, valuations and the noise of one seed; turns a joint action into outcomes."""

    def __init__(self, config: SimConfig, surrogate: Surrogate) -> None:
        self.config = config
        self.surrogate = surrogate
        n = config.orgs
        rng = np.random.default_rng([config.seed, 0])
        names = surrogate.topic_names
        self.topics = [names[i % len(names)] for i in range(n)]
        # quality[i, a]: noise-free own-topic loss reduction of org i at action a
        self.quality = np.array([[surrogate.quality(self.topics[i], f) for f in _fractions()] for i in range(n)])
        self.noise = rng.standard_normal((config.rounds, n))
        self.valuation = np.full(n, config.valuation)
        self.price = config.effective_price
        high = ACTIONS.index("high")
        v_all = float(surrogate.coalition_table(self.quality[:, high])[-1])
        self.budget = config.budget_factor * self.price * v_all
        # Heterogeneous costs, independent of the payment rule: org i's cost at high is a
        # log-uniform multiple of the average social value per org when everyone trains at high.
        reference = float(self.valuation.sum()) * v_all / n
        spread = np.exp(rng.uniform(math.log(config.cost_low), math.log(config.cost_high), n))
        self.cost_high = spread * max(reference, 1e-9)
        self.cost = self.cost_high[:, None] * _fractions()[None, :]  # (N, A), linear in steps
        self.compute_total = config.compute_budget * config.rounds  # in rounds at high

    # -- one round -----------------------------------------------------------------------
    def outcome(self, actions: Sequence[int], qualities: np.ndarray) -> dict[str, Any]:
        """Shapley values, payments, improvement and utilities for one joint action."""
        n = self.config.orgs
        players = [i for i in range(n) if actions[i] != 0]
        phi = np.zeros(n)
        improvement = 0.0
        if players:
            table = self.surrogate.coalition_table(qualities[players])
            improvement = float(table[-1])
            if self.config.rule == "shapley":
                phi[players] = _shapley(table, len(players))
            else:  # leave-one-out: v(P) - v(P without i); mask without bit j is full ^ (1 << j)
                full = len(table) - 1
                phi[players] = [table[full] - table[full ^ (1 << j)] for j in range(len(players))]
        pay = self._pay(phi, players)
        cost = np.array([self.cost[i, a] for i, a in enumerate(actions)])
        utility = pay + self.valuation * improvement - cost
        welfare = float(self.valuation.sum() * improvement - cost.sum())
        return {"phi": phi, "pay": pay, "improvement": improvement, "cost": cost, "utility": utility,
                "welfare": welfare}

    def _pay(self, phi: np.ndarray, players: Sequence[int]) -> np.ndarray:
        pay = np.zeros(self.config.orgs)
        if not players:
            return pay
        budget_units = int(self.budget * TOKEN_UNITS)
        amounts = allocate_rewards(budget_units, {str(i): float(phi[i]) for i in players},
                                   price=self.price * TOKEN_UNITS)
        for key, units in amounts.items():
            pay[int(key)] = units / TOKEN_UNITS
        return pay

    def realised_qualities(self, t: int, actions: Sequence[int]) -> np.ndarray:
        base = self.quality[np.arange(self.config.orgs), list(actions)]
        return base * (1.0 + self.surrogate.noise * self.noise[t])

    def expected_qualities(self, actions: Sequence[int]) -> np.ndarray:
        return self.quality[np.arange(self.config.orgs), list(actions)]

    def expected_payments(self, actions: Sequence[int]) -> np.ndarray:
        return self.outcome(actions, self.expected_qualities(actions))["pay"]

    def expected_utility(self, actions: Sequence[int]) -> np.ndarray:
        return self.outcome(actions, self.expected_qualities(actions))["utility"]

    def margins(self, others: Sequence[int]) -> np.ndarray:
        """Per org: best participating utility minus skipping, the others playing ``others``."""
        out = np.zeros(self.config.orgs)
        for i in range(self.config.orgs):
            profile = list(others)
            utils = []
            for a in range(len(ACTIONS)):
                profile[i] = a
                utils.append(float(self.expected_utility(profile)[i]))
            out[i] = max(utils[1:]) - utils[0]
        return out

    def expected_welfare(self, profiles: np.ndarray) -> np.ndarray:
        """Noise-free welfare of many static profiles at once: ``profiles`` is (M, N) actions."""
        total = np.zeros(profiles.shape[0])
        cost = np.zeros(profiles.shape[0])
        for i in range(self.config.orgs):
            total += self.quality[i, profiles[:, i]]
            cost += self.cost[i, profiles[:, i]]
        v = self.surrogate.value(total, (profiles > 0).sum(axis=1))
        return self.valuation.sum() * v - cost


@functools.lru_cache(maxsize=4096)
def _shapley_cached(table_bytes: bytes, k: int) -> tuple[float, ...]:
    return tuple(shapley_from_table(np.frombuffer(table_bytes, dtype=float)))


def _shapley(table: np.ndarray, k: int) -> np.ndarray:
    if k > MAX_EXACT:
        raise ValueError(f"the simulation uses exact Shapley; {k} participants > {MAX_EXACT}")
    return np.array(_shapley_cached(np.ascontiguousarray(table, dtype=float).tobytes(), k))


# -- policies -------------------------------------------------------------------------------
class Policy:
    name = ""

    def choose(self, t: int) -> list[int]:
        raise NotImplementedError

    def observe(self, t: int, actions: Sequence[int], outcome: dict[str, Any]) -> None:
        """Learn from the round's outcome (only Q-learning and myopic use it)."""


class Static(Policy):
    def __init__(self, name: str, profile: Sequence[int]) -> None:
        self.name = name
        self.profile = list(profile)

    def choose(self, t: int) -> list[int]:
        return list(self.profile)


class RandomPolicy(Policy):
    name = "random"

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.rng = np.random.default_rng([seed, 1])

    def choose(self, t: int) -> list[int]:
        return [int(a) for a in self.rng.integers(0, len(ACTIONS), self.n)]


class Myopic(Policy):
    """Each org best-responds (noise-free expected utility) to the others' previous actions."""

    name = "myopic"

    def __init__(self, economy: Economy) -> None:
        self.economy = economy
        self.last = [ACTIONS.index("high")] * economy.config.orgs

    def choose(self, t: int) -> list[int]:
        chosen = []
        for i in range(self.economy.config.orgs):
            profile = list(self.last)
            utils = []
            for a in range(len(ACTIONS)):
                profile[i] = a
                utils.append(float(self.economy.expected_utility(profile)[i]))
            best = max(utils)
            chosen.append(self.last[i] if utils[self.last[i]] == best else utils.index(best))
        return chosen

    def observe(self, t: int, actions: Sequence[int], outcome: dict[str, Any]) -> None:
        self.last = list(actions)


class QLearning(Policy):
    """One tabular Q-learning agent per org, each seeing only its own reward and share."""

    name = "q_learning"
    ema = 0.3

    def __init__(self, economy: Economy) -> None:
        self.economy = economy
        c = economy.config
        n = c.orgs
        self.space = StateSpace(reward_edges=(0.0,), share_edges=(1e-9, 1.0 / n), stake_edges=(1.0,),
                                compute_edges=(0.1,))
        self.agents = [QAgent(dataclasses.replace(c.agent, seed=c.agent.seed + 1000 * c.seed + i)) for i in range(n)]
        self.recent = np.zeros(n)
        self.share = np.zeros(n)
        self.compute_used = np.zeros(n)
        self.states = [self._state(i) for i in range(n)]
        self.decisions: list[list[str]] = []

    def _state(self, i: int) -> tuple[int, ...]:
        left = 1.0 - self.compute_used[i] / self.economy.compute_total
        return self.space.state(Observation(self.recent[i], self.share[i], 1.0, left))

    def _allowed(self, i: int) -> list[str]:
        left = self.economy.compute_total - self.compute_used[i]
        return [a for a in ACTIONS if LEVEL_FRACTION[a] <= left + 1e-12]

    def choose(self, t: int) -> list[int]:
        picks = [self.agents[i].act(self.states[i], self._allowed(i)).action for i in range(len(self.agents))]
        self.decisions.append(picks)
        return [ACTIONS.index(a) for a in picks]

    def observe(self, t: int, actions: Sequence[int], outcome: dict[str, Any]) -> None:
        phi_pos = np.maximum(outcome["phi"], 0.0)
        total = float(phi_pos.sum())
        for i, agent in enumerate(self.agents):
            reward = float(outcome["utility"][i])
            self.recent[i] = (1 - self.ema) * self.recent[i] + self.ema * reward
            now = float(phi_pos[i] / total) if total > 0 else 0.0
            self.share[i] = (1 - self.ema) * self.share[i] + self.ema * now
            self.compute_used[i] += LEVEL_FRACTION[ACTIONS[actions[i]]]
            next_state = self._state(i)
            agent.update(self.states[i], ACTIONS[actions[i]], reward, next_state)
            self.states[i] = next_state


def best_static_profile(economy: Economy) -> list[int]:
    """The static profile with the highest noise-free welfare.

    Exhaustive over all 4^N profiles for N <= 10 (vectorised in blocks of 4^8); coordinate
    ascent from all-high and from all-skip above that.
    """
    n = economy.config.orgs
    a = len(ACTIONS)
    if n <= 10:
        tail = min(n, 8)
        tail_profiles = np.array(list(itertools.product(range(a), repeat=tail)), dtype=np.int64)
        best_w, best_p = -math.inf, None
        for head in itertools.product(range(a), repeat=n - tail):
            block = np.hstack([np.tile(np.array(head, dtype=np.int64), (len(tail_profiles), 1)), tail_profiles])
            w = economy.expected_welfare(block)
            j = int(np.argmax(w))
            if w[j] > best_w:
                best_w, best_p = float(w[j]), block[j]
        assert best_p is not None
        return [int(x) for x in best_p]
    best: list[int] | None = None
    best_w = -math.inf
    for start in ([a - 1] * n, [0] * n):
        profile = list(start)
        improved = True
        while improved:
            improved = False
            for i in range(n):
                options = np.array([profile[:i] + [x] + profile[i + 1:] for x in range(a)])
                w = economy.expected_welfare(options)
                j = int(np.argmax(w))
                if j != profile[i] and w[j] > w[profile[i]] + 1e-12:
                    profile[i] = j
                    improved = True
        w_final = float(economy.expected_welfare(np.array([profile]))[0])
        if w_final > best_w:
            best, best_w = profile, w_final
    assert best is not None
    return best


# -- running ----------------------------------------------------------------------------------
def run_policy(economy: Economy, policy: Policy) -> dict[str, Any]:
    c = economy.config
    n = c.orgs
    welfare = np.zeros(c.rounds)
    improvement = np.zeros(c.rounds)
    actions_log = np.zeros((c.rounds, n), dtype=np.int64)
    paid = np.zeros(n)
    utility = np.zeros(n)
    budget_used = np.zeros(c.rounds)
    for t in range(c.rounds):
        actions = policy.choose(t)
        outcome = economy.outcome(actions, economy.realised_qualities(t, actions))
        policy.observe(t, actions, outcome)
        welfare[t] = outcome["welfare"]
        improvement[t] = outcome["improvement"]
        actions_log[t] = actions
        paid += outcome["pay"]
        utility += outcome["utility"]
        budget_used[t] = float(outcome["pay"].sum()) / economy.budget if economy.budget > 0 else 0.0
    return {"welfare": welfare, "improvement": improvement, "actions": actions_log, "paid": paid,
            "utility": utility, "budget_used": budget_used}


def gini(x: np.ndarray) -> float:
    x = np.sort(np.asarray(x, dtype=float))
    if x.sum() <= 0:
        return 0.0
    n = len(x)
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * x.sum()))


def summarise_run(run: dict[str, Any], window: int) -> dict[str, Any]:
    acts = run["actions"]
    last = acts[-window:]
    participating = last > 0
    contributed = run["improvement"][-window:] > 0
    skipped_while_improving = (~participating) & contributed[:, None]
    return {
        "welfare": float(run["welfare"].sum()),
        "welfare_per_round_last": float(run["welfare"][-window:].mean()),
        "participation": float((acts > 0).mean()),
        "participation_last": float(participating.mean()),
        "final_quality": float(run["improvement"][-window:].mean()),
        "reward_gini": gini(run["paid"]),
        "free_rider_share": float(skipped_while_improving.mean()),
        "budget_used": float(run["budget_used"].mean()),
        "private_utility": float(run["utility"].sum()),
    }


def simulate_seed(config: SimConfig, surrogate: Surrogate) -> dict[str, Any]:
    """All five policies on one seed's economy; returns per-policy runs and the org analysis."""
    economy = Economy(config, surrogate)
    static = best_static_profile(economy)
    high = ACTIONS.index("high")
    qpolicy = QLearning(economy)
    policies: list[Policy] = [qpolicy, Static("always", [high] * config.orgs), RandomPolicy(config.orgs, config.seed),
                              Myopic(economy), Static("best_static", static)]
    runs = {p.name: run_policy(economy, p) for p in policies}
    w = config.window
    q_last = runs["q_learning"]["actions"][-w:]
    modal = [int(np.bincount(q_last[:, i], minlength=len(ACTIONS)).argmax()) for i in range(config.orgs)]
    margins = economy.margins(modal)
    band = config.band * economy.cost_high
    orgs = []
    for i in range(config.orgs):
        part = float((q_last[:, i] > 0).mean())
        kind = "positive" if margins[i] > band[i] else "negative" if margins[i] < -band[i] else "indifferent"
        orgs.append({"org": i, "topic": economy.topics[i], "cost_high": float(economy.cost_high[i]),
                     "margin": float(margins[i]), "kind": kind, "participation_last": part,
                     "best_static_action": ACTIONS[static[i]], "q_modal_action": ACTIONS[modal[i]],
                     "paid_q_learning": float(runs["q_learning"]["paid"][i])})
    lo, hi = max(0, config.ratio_round - w), min(config.rounds, config.ratio_round)
    ratio = (float(runs["q_learning"]["welfare"][lo:hi].sum()) / float(runs["best_static"]["welfare"][lo:hi].sum())
             if hi > lo and runs["best_static"]["welfare"][lo:hi].sum() > 0 else math.nan)
    return {"seed": config.seed, "budget": economy.budget, "price": economy.price, "runs": runs, "orgs": orgs,
            "best_static_profile": [ACTIONS[a] for a in static], "welfare_ratio": ratio}


def mean_ci(values: Sequence[float]) -> dict[str, float]:
    x = np.asarray(values, dtype=float)
    n = len(x)
    mean = float(x.mean())
    if n < 2:
        return {"mean": mean, "ci95": 0.0, "n": n}
    half = _T95.get(n - 1, 1.96) * float(x.std(ddof=1)) / math.sqrt(n)
    return {"mean": mean, "ci95": half, "n": n}


def run_experiment(config: SimConfig, surrogate: Surrogate, seeds: int = 5) -> dict[str, Any]:
    """``seeds`` runs (seeds config.seed .. config.seed + seeds - 1) and their summary."""
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    per_seed = [simulate_seed(dataclasses.replace(config, seed=config.seed + k), surrogate) for k in range(seeds)]
    w = config.window
    policies: dict[str, Any] = {}
    for name in POLICIES:
        sums = [summarise_run(s["runs"][name], w) for s in per_seed]
        policies[name] = {key: mean_ci([x[key] for x in sums])["mean"] for key in sums[0]}
        policies[name]["welfare_ci95"] = mean_ci([x["welfare"] for x in sums])["ci95"]
        policies[name]["per_seed_welfare"] = [x["welfare"] for x in sums]
    ratios = [s["welfare_ratio"] for s in per_seed]
    last_ratio = [float(s["runs"]["q_learning"]["welfare"][-w:].sum() / s["runs"]["best_static"]["welfare"][-w:].sum())
                  for s in per_seed]
    beats = [float(s["runs"]["q_learning"]["welfare"].sum() - s["runs"]["always"]["welfare"].sum()) for s in per_seed]
    neg = [o for s in per_seed for o in s["orgs"] if o["kind"] == "negative"]
    pos = [o for s in per_seed for o in s["orgs"] if o["kind"] == "positive"]
    indiff = [o for s in per_seed for o in s["orgs"] if o["kind"] == "indifferent"]
    skip_ok = [o["participation_last"] <= 0.10 for o in neg]
    part_ok = [o["participation_last"] >= 0.90 for o in pos]
    ratio_ci = mean_ci(ratios)
    targets = {
        "welfare_ratio_at_least_0.90": ratio_ci["mean"] >= 0.90,
        "beats_always_participate": mean_ci(beats)["mean"] > 0,
        "negative_margin_orgs_skip_90pct": all(skip_ok) if neg else None,
        "positive_margin_orgs_participate_90pct": all(part_ok) if pos else None,
    }
    return {
        "config": config.to_dict(),
        "seeds": [config.seed + k for k in range(seeds)],
        "policies": policies,
        "welfare_ratio": ratio_ci["mean"],
        "welfare_ratio_ci95": ratio_ci["ci95"],
        "welfare_ratio_window": [max(0, config.ratio_round - w) + 1, min(config.rounds, config.ratio_round)],
        "welfare_ratio_per_seed": ratios,
        "welfare_ratio_last": mean_ci(last_ratio),
        "q_minus_always_welfare": mean_ci(beats),
        "orgs": {
            "negative_margin": len(neg), "negative_margin_skipping_90pct": int(sum(skip_ok)),
            "positive_margin": len(pos), "positive_margin_participating_90pct": int(sum(part_ok)),
            "indifferent": len(indiff),
            "per_seed": [s["orgs"] for s in per_seed],
        },
        "best_static_profiles": [s["best_static_profile"] for s in per_seed],
        "targets": targets,
        "curves": {name: np.mean([s["runs"][name]["welfare"] for s in per_seed], axis=0).tolist() for name in POLICIES},
    }


def price_search(config: SimConfig, surrogate: Surrogate, factors: Sequence[float] = PRICE_GRID,
                 seeds: Sequence[int] = (1000, 1001, 1002)) -> list[dict[str, float]]:
    """Q-learning welfare (and its ratio to the best static profile) per price factor."""
    rows = []
    for factor in factors:
        runs = [simulate_seed(dataclasses.replace(config, price=None, price_factor=factor, seed=s), surrogate)
                for s in seeds]
        q = [float(r["runs"]["q_learning"]["welfare"].sum()) for r in runs]
        best = [float(r["runs"]["best_static"]["welfare"].sum()) for r in runs]
        rows.append({"price_factor": factor, "q_learning_welfare": float(np.mean(q)),
                     "ratio_to_best_static": float(np.mean(q) / np.mean(best))})
    return rows
