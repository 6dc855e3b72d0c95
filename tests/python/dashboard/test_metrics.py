"""The Prometheus endpoint, scraped over HTTP while the live consortium plays one more round."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from dashboard_helpers import Live
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.daemons.demo import drive
from orchestrator.observability import HEALTH

ROUND_FINALIZED = 3


def scrape(url: str) -> dict[str, float]:
    """Every sample of /metrics, summed over label sets (name -> total)."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            totals[s.name] = totals.get(s.name, 0.0) + float(s.value)
    return totals


def labelled(url: str, name: str) -> dict[str, float]:
    """One metric's samples by their ``daemon`` label."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return {s.labels.get("daemon", ""): float(s.value) for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == name}


def status(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return exc.code, json.loads(body) if body.startswith(b"{") else {}


def test_counters_move_while_a_round_runs(live: Live) -> None:
    setup = live.setup
    url = live.metrics.url
    rounds = live.cons.protocol.contract("Rounds")
    before = scrape(url)
    # The earlier rounds already counted what the daemons did.
    assert before["ledgerlora_rounds_finalized_total"] >= 2
    assert before["ledgerlora_unlearnings_completed_total"] >= 1

    round_id = setup.aggregator.open_round()
    opened = scrape(url)
    assert opened["ledgerlora_rounds_opened_total"] == before["ledgerlora_rounds_opened_total"] + 1
    assert opened["ledgerlora_gas_used_total"] > before["ledgerlora_gas_used_total"]

    trainers = list(setup.trainers.values())
    for trainer in trainers:  # each sees RoundOpened, trains and submits: the round is still open
        trainer.tick()
    assert rounds.functions.getRound(round_id).call()[0] == 1  # open
    during = scrape(url)
    assert during["ledgerlora_submissions_total"] == opened["ledgerlora_submissions_total"] + len(trainers)
    assert during["ledgerlora_transactions_total"] >= opened["ledgerlora_transactions_total"] + len(trainers)
    assert during["ledgerlora_gas_spent_wei_total"] > opened["ledgerlora_gas_spent_wei_total"]
    assert during["ledgerlora_events_handled_total"] >= opened["ledgerlora_events_handled_total"] + len(trainers)
    assert during["ledgerlora_transaction_seconds_count"] >= opened["ledgerlora_transaction_seconds_count"] + 3
    lag = labelled(url, "ledgerlora_scanner_lag_blocks")
    assert {t.name for t in trainers} <= set(lag) and all(v >= 0 for v in lag.values())

    drive(setup.daemons, lambda: rounds.functions.getRound(round_id).call()[0] == ROUND_FINALIZED)
    after = scrape(url)
    assert after["ledgerlora_rounds_finalized_total"] == before["ledgerlora_rounds_finalized_total"] + 1
    # No handler failed along the way (a counter with no failure yet has no sample at all).
    assert after.get("ledgerlora_handler_failures_total", 0.0) == before.get("ledgerlora_handler_failures_total", 0.0)
    hist = labelled(url, "ledgerlora_unlearning_request_to_receipt_seconds_count")
    assert sum(hist.values()) >= 1


def test_health_and_readiness_endpoints(live: Live) -> None:
    # The health state is per process; count only this consortium's daemons (other test modules
    # of the same session run daemons of their own, some of which trip on purpose).
    HEALTH.reset()
    HEALTH.register("late-daemon")  # started, but has not polled the chain yet
    code, body = status(live.metrics.url + "/readyz")
    assert code == 503 and body["daemons"]["late-daemon"] == "not polled yet"
    HEALTH.reset()
    for daemon in [*live.setup.daemons, live.setup.relayer]:
        daemon.tick()
    code, body = status(live.metrics.url + "/readyz")
    assert code == 200, body
    assert {d.name for d in live.setup.daemons} | {live.setup.relayer.name} <= set(body["daemons"])
    assert all(state == "ok" for state in body["daemons"].values())
    code, body = status(live.metrics.url + "/healthz")
    assert code == 200 and body["status"] == "ok"
    code, _ = status(live.metrics.url + "/nothing-here")
    assert code == 404
