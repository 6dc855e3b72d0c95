"""The surrogate of a round's outcome: how much a coalition's merged model improves validation loss.

Calibrated from real training runs of this project (``python -m orchestrator
incentives-calibrate``; the fitted parameters are committed in ``calibration.json`` next to
this file). Functional form, every symbol a fitted parameter:

- An org of topic t that trains a fraction f of the round's S local steps brings an effective
  contribution ``q = g_t h(f)`` with ``h(f) = (1 - exp(-f S / tau)) / (1 - exp(-S / tau))``
  (``h(1) = 1``: ``g_t`` is the contribution at the high level; ``tau`` is fitted on how
  own-topic validation loss falls with local steps). Per org and round ``q`` carries a
  multiplicative noise ``(1 + sigma z)`` (sigma: the relative spread over training seeds).
- A coalition's adapters are stacked with equal sample weights; their combined effect
  saturates, and sample-weighting dilutes it: ``v(S) = M (1 - exp(-|S|^-eta sum_{i in S} q_i
  / M))``, ``v(empty) = 0`` (M: the most the consortium's adapters can reduce the public
  validation loss; eta: dilution). ``g_t``, ``M`` and ``eta`` are fitted by least squares on
  the measured values of every coalition of the topic adapters.

Everything is vectorised over the 2^K coalitions of a round (numpy, no torch).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CALIBRATION = Path(__file__).with_name("calibration.json")


@dataclass(frozen=True)
class Surrogate:
    contributions: dict[str, float]  # g_t per topic (nats on the public validation set, at high)
    saturation: float = 0.1  # M
    dilution: float = 0.0  # eta
    tau: float = 10.0  # steps
    noise: float = 0.0  # sigma
    steps: int = 24  # S: the round's local steps (the high level)
    source: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.contributions:
            raise ValueError("a surrogate needs at least one topic contribution")
        if not (self.saturation > 0 and 0 <= self.dilution <= 2 and self.tau > 0 and 0 <= self.noise < 1
                and self.steps >= 1):
            raise ValueError(f"surrogate parameters out of range: saturation={self.saturation}, dilution="
                             f"{self.dilution}, tau={self.tau}, noise={self.noise}, steps={self.steps}")

    @property
    def topic_names(self) -> list[str]:
        return sorted(self.contributions)

    def level_curve(self, fraction: float) -> float:
        if fraction <= 0:
            return 0.0
        return (1.0 - math.exp(-fraction * self.steps / self.tau)) / (1.0 - math.exp(-self.steps / self.tau))

    def quality(self, topic: str, fraction: float) -> float:
        """Effective contribution of one org of ``topic`` training ``fraction`` of the steps."""
        return self.contributions[topic] * self.level_curve(fraction)

    def value(self, total: np.ndarray | float, size: np.ndarray | float) -> np.ndarray:
        """``v`` from the sum of the members' contributions and the coalition size (vectorised)."""
        total, size = np.asarray(total, dtype=float), np.asarray(size, dtype=float)
        scale = np.where(size > 0, np.maximum(size, 1.0) ** -self.dilution, 0.0)
        return self.saturation * (1.0 - np.exp(-scale * total / self.saturation))

    def coalition_table(self, qualities: Sequence[float]) -> np.ndarray:
        """``v`` for every mask over the K players (player i = bit i); ``v[0] = 0``."""
        q = np.asarray(qualities, dtype=float)
        k = len(q)
        member = ((np.arange(1 << k)[:, None] >> np.arange(k)) & 1).astype(float)
        return self.value(member @ q, member.sum(axis=1))

    def to_dict(self) -> dict[str, Any]:
        return {"contributions": dict(sorted(self.contributions.items())), "saturation": self.saturation,
                "dilution": self.dilution, "tau": self.tau, "noise": self.noise, "steps": self.steps,
                "source": self.source}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Surrogate:
        return cls({t: float(g) for t, g in data["contributions"].items()}, float(data["saturation"]),
                   float(data["dilution"]), float(data["tau"]), float(data["noise"]), int(data["steps"]),
                   dict(data.get("source", {})))


def load_surrogate(path: Path | None = None) -> Surrogate:
    """The committed calibration (or another file written by ``incentives-calibrate``)."""
    path = Path(path or CALIBRATION)
    try:
        return Surrogate.from_dict(json.loads(path.read_text())["surrogate"])
    except FileNotFoundError as exc:
        raise ValueError(f"no surrogate calibration at {path}; run `python -m orchestrator incentives-calibrate`") from exc
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a surrogate calibration ({type(exc).__name__}: {exc})") from exc


# -- fitting (pure: measurements in, parameters out) ------------------------------------------
def fit_tau(points: Sequence[tuple[float, float]], steps: int) -> tuple[float, float]:
    """Shape of the level curve: tau minimising the squared error of ``h`` against
    (local steps, loss reduction / loss reduction at ``steps``) points; returns (tau, rmse)."""
    s = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    best = (math.inf, 1.0)
    for tau in np.geomspace(0.5, 1000.0, 800):
        h = (1.0 - np.exp(-s / tau)) / (1.0 - math.exp(-steps / tau))
        err = float(np.mean((h - y) ** 2))
        if err < best[0]:
            best = (err, float(tau))
    return best[1], math.sqrt(best[0])


def levenberg_marquardt(residuals: Callable[[np.ndarray], np.ndarray], x0: np.ndarray,
                        iterations: int = 300) -> np.ndarray:
    """Minimise ``sum(residuals(x)**2)`` (numerical Jacobian; small problems only)."""
    x = np.asarray(x0, dtype=float)
    lam = 1e-2
    r = residuals(x)
    cost = float(r @ r)
    for _ in range(iterations):
        jac = np.empty((r.size, x.size))
        for j in range(x.size):
            step = 1e-6 * max(1.0, abs(x[j]))
            dx = np.zeros_like(x)
            dx[j] = step
            jac[:, j] = (residuals(x + dx) - r) / step
        a = jac.T @ jac
        g = jac.T @ r
        delta = np.linalg.solve(a + lam * np.diag(np.diag(a) + 1e-12), -g)
        trial = x + delta
        r_trial = residuals(trial)
        c_trial = float(r_trial @ r_trial)
        if c_trial < cost:
            x, r, cost = trial, r_trial, c_trial
            lam = max(lam / 3, 1e-9)
            if np.max(np.abs(delta)) < 1e-10:
                break
        else:
            lam *= 4
            if lam > 1e9:
                break
    return x


def fit_coalitions(player_topics: Sequence[str], measured: Mapping[int, float]) -> tuple[dict[str, float], float, float, float]:
    """Least-squares (g_t, M, eta) on measured coalition values ``{mask: v}``; returns them and R^2."""
    masks = np.array(sorted(measured))
    y = np.array([measured[int(m)] for m in masks])
    k = len(player_topics)
    member = ((masks[:, None] >> np.arange(k)) & 1).astype(float)
    size = member.sum(axis=1)

    def predict(x: np.ndarray) -> np.ndarray:
        g, sat, eta = x[:k], math.exp(x[k]), min(max(x[k + 1], 0.0), 2.0)
        return sat * (1.0 - np.exp(-(size ** -eta) * (member @ g) / sat))

    singles = {int(m): measured[int(m)] for m in masks if bin(int(m)).count("1") == 1}
    g0 = np.array([max(singles.get(1 << i, 0.01), 0.01) for i in range(k)])
    x0 = np.concatenate([g0, [math.log(max(float(y.max()), 1e-3))], [0.0]])
    x = levenberg_marquardt(lambda x: predict(x) - y, x0)
    pred = predict(x)
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum((pred - y) ** 2)) / total if total > 0 else 1.0
    return ({t: float(x[i]) for i, t in enumerate(player_topics)}, math.exp(float(x[k])),
            min(max(float(x[k + 1]), 0.0), 2.0), r2)
