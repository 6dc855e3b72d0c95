"""The surrogate: its fits recover known parameters; the committed calibration is loadable and sane."""

from __future__ import annotations

import json

import numpy as np
import pytest

from orchestrator.agents.surrogate import CALIBRATION, Surrogate, fit_coalitions, fit_tau, load_surrogate


def test_coalition_fit_recovers_known_parameters() -> None:
    truth = Surrogate({"a": 0.09, "b": 0.05, "c": 0.02, "d": -0.01}, saturation=0.12, dilution=0.3)
    topics = ["a", "b", "c", "d"]
    table = truth.coalition_table([truth.contributions[t] for t in topics])
    g, sat, eta, r2 = fit_coalitions(topics, {m: float(table[m]) for m in range(1, 16)})
    assert r2 > 0.999
    assert sat == pytest.approx(0.12, rel=0.02)
    assert eta == pytest.approx(0.3, abs=0.02)
    assert [g[t] for t in topics] == pytest.approx([0.09, 0.05, 0.02, -0.01], abs=2e-3)


def test_level_curve_fit_recovers_tau() -> None:
    steps = 24
    truth = Surrogate({"a": 1.0}, tau=9.0, steps=steps)
    points = [(f * steps, truth.level_curve(f)) for f in (0.0, 0.25, 0.5, 1.0)]
    tau, rmse = fit_tau(points, steps)
    assert tau == pytest.approx(9.0, rel=0.02)
    assert rmse < 1e-3


def test_values_saturate_and_empty_coalition_is_zero() -> None:
    s = Surrogate({"a": 0.1}, saturation=0.12)
    table = s.coalition_table([0.1] * 6)
    assert table[0] == 0.0
    sizes = [bin(m).count("1") for m in range(64)]
    by_size = [max(table[m] for m in range(64) if sizes[m] == k) for k in range(7)]
    assert all(np.diff(by_size) > 0) and by_size[-1] < 0.12
    assert np.diff(by_size)[-1] < np.diff(by_size)[0] / 5  # diminishing returns


def test_committed_calibration_is_from_real_runs_and_reproduces_its_fit() -> None:
    from orchestrator.agents.calibrate import fit

    doc = json.loads(CALIBRATION.read_text())
    measured = doc["measurements"]
    assert measured["model"] == "tiny" and len(measured["coalitions"]) == 32
    assert fit(measured)["surrogate"] == doc["surrogate"]  # the parameters follow from the data
    assert load_surrogate().saturation == doc["surrogate"]["saturation"]
    assert doc["fit"]["coalition_r2"] > 0.8


def test_smollm2_calibration_reproduces_its_fit() -> None:
    from orchestrator.agents.calibrate import fit

    doc = json.loads(CALIBRATION.with_name("calibration-smollm2.json").read_text())
    assert doc["measurements"]["model"] == "smollm2" and len(doc["measurements"]["coalitions"]) == 32
    assert fit(doc["measurements"])["surrogate"] == doc["surrogate"]
    assert doc["fit"]["coalition_r2"] > 0.9
