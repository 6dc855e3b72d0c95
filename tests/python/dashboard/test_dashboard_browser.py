"""The dashboard in a real browser (Debian's chromium via playwright) against a live consortium.

Every figure checked here is read independently from the chain (view calls, ``eth_getLogs``)
or from the IPFS document the chain points to, never from the dashboard's own index.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_utils import to_checksum_address

from orchestrator.dashboard.audit import audit_receipt
from orchestrator.storage.cid import bytes32_to_cid

from dashboard_helpers import FORGOTTEN, Live

PAGES = ["/", "/members", "/rounds", "/rounds/1", "/rounds/2", "/lineage", "/unlearning", "/anchors"]


class Tab:
    """A browser tab that records console errors, page errors, failed and off-host requests."""

    def __init__(self, browser: Any, live: Live, width: int = 1280, height: int = 900) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.problems: list[str] = []
        host = live.url
        self.page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}")
                     if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url}"))
        self.page.on("request", lambda r: None if r.url.startswith(host) else self.problems.append(
            f"off-host request: {r.url}"))
        self.live = live

    def open(self, path: str) -> Any:
        response = self.page.goto(self.live.url + path)
        assert response is not None and response.status == 200, f"{path}: HTTP {response and response.status}"
        return self.page

    def value(self, selector: str) -> str:
        return str(self.page.locator(selector).first.get_attribute("data-value"))

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def tab(browser: Any, live: Live) -> Any:
    t = Tab(browser, live)
    yield t
    t.close()


def test_every_page_renders_without_console_errors_on_a_laptop_and_a_phone(browser: Any, live: Live, tmp_path) -> None:
    for width, height in ((1280, 900), (390, 844)):
        t = Tab(browser, live, width, height)
        try:
            for path in PAGES:
                page = t.open(path)
                assert page.locator("h1").first.is_visible(), path
                assert page.locator("nav a.active").count() == 1, path
                # Readable on a phone: the page itself never scrolls sideways (wide tables scroll in their box).
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, f"{path} is {overflow}px wider than a {width}px screen"
                shot = tmp_path / f"{width}{path.replace('/', '_') or '_'}.png"
                page.screenshot(path=str(shot), full_page=True)
                assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert t.problems == [], t.problems
        finally:
            t.close()


def test_overview_numbers_equal_the_chain(tab: Tab, live: Live) -> None:
    proto = live.cons.protocol
    rounds, registry = proto.contract("Rounds"), proto.contract("ContributionRegistry")
    tab.open("/")
    assert tab.value('[data-field="reward-pool"]') == str(rounds.functions.rewardPool().call())
    assert tab.value('[data-field="member-count"]') == str(proto.contract("Membership").functions.memberCount().call())
    assert tab.value('[data-field="total-staked"]') == str(proto.contract("Staking").functions.totalStaked().call())
    latest = registry.functions.latestVersion().call()
    assert tab.value('[data-field="latest-version"]') == str(latest)
    assert tab.value('[data-field="model-cid"]') == bytes32_to_cid(bytes(registry.functions.getVersion(latest).call()[0]))
    count = rounds.functions.roundCount().call()
    assert tab.value('[data-field="round-count"]') == str(count)
    for r in range(1, count + 1):
        state, _, num_subs, _, _, _, budget, claimed = rounds.functions.getRound(r).call()
        row = f'tr[data-round="{r}"]'
        assert tab.value(f'{row} [data-field="submissions"]') == str(num_subs)
        assert tab.value(f'{row} [data-field="budget"]') == str(budget)
        assert tab.value(f'{row} [data-field="claimed"]') == str(claimed)
    # The formatted figure people read is the exact one, in LLS.
    pool = rounds.functions.rewardPool().call()
    assert tab.page.locator('[data-field="reward-pool"]').inner_text().startswith(f"{pool // 10**18:,}.")


def test_members_numbers_equal_the_chain(tab: Tab, live: Live) -> None:
    proto = live.cons.protocol
    staking, token, rounds = (proto.contract(n) for n in ("Staking", "LedgerToken", "Rounds"))
    tab.open("/members")
    for org in live.cons.orgs.values():
        row = f'tr[data-org="{org.address}"]'
        assert tab.value(f'{row} [data-field="stake"]') == str(staking.functions.stakeOf(org.address).call())
        assert tab.value(f'{row} [data-field="balance"]') == str(token.functions.balanceOf(org.address).call())
        claims = rounds.events.RewardClaimed().get_logs(from_block=0, argument_filters={"org": org.address})
        assert tab.value(f'{row} [data-field="claimed"]') == str(sum(e["args"]["amount"] for e in claims))
        subs = rounds.events.UpdateSubmitted().get_logs(from_block=0, argument_filters={"org": org.address})
        assert tab.value(f'{row} [data-field="contributions"]') == str(len({e["args"]["roundId"] for e in subs}))


def test_round_page_shows_submissions_and_proofs_valid_against_the_onchain_root(tab: Tab, live: Live) -> None:
    rounds = live.cons.protocol.contract("Rounds")
    for r in (1, 2):
        tab.open(f"/rounds/{r}")
        root = "0x" + bytes(rounds.functions.getRound(r).call()[5]).hex()
        assert tab.page.locator('[data-field="rewards-root"]').inner_text() == root
        for ev in rounds.events.UpdateSubmitted().get_logs(from_block=0, argument_filters={"roundId": r}):
            row = f'table.submissions tr[data-org="{ev["args"]["org"]}"]'
            assert tab.value(f'{row} [data-field="cid"]') == bytes32_to_cid(bytes(ev["args"]["adapterCid"]))
            assert tab.value(f'{row} [data-field="samples"]') == str(ev["args"]["numSamples"])
        claims = rounds.events.RewardClaimed().get_logs(from_block=0, argument_filters={"roundId": r})
        assert claims
        for ev in claims:
            row = f'table.rewards tr[data-org="{ev["args"]["org"]}"]'
            assert tab.value(f'{row} [data-field="amount"]') == str(ev["args"]["amount"])
            assert tab.value(f'{row} [data-field="proof-valid"]') == "valid"


def test_a_report_that_disagrees_with_the_onchain_root_is_shown_invalid(live: Live) -> None:
    """The live check can fail: the same page data computed from a tampered copy of the report."""
    view = live.server.view
    rounds = live.cons.protocol.contract("Rounds")
    fin = rounds.events.RoundFinalized().get_logs(from_block=0, argument_filters={"roundId": 1})[0]["args"]
    cid = bytes32_to_cid(bytes(fin["metricsHash"]))
    genuine = view.document(cid)
    assert genuine is not None
    tampered = json.loads(json.dumps(genuine))
    tampered["rewards"][0]["amount"] = str(int(tampered["rewards"][0]["amount"]) + 1)
    try:
        view._cache.docs[cid] = tampered  # what a lying IPFS document would hand the dashboard
        rows = view.round(1)["rewards"]
        assert [w["proof_valid"] for w in rows].count(False) >= 1
    finally:
        view._cache.docs[cid] = genuine
    assert all(w["proof_valid"] for w in view.round(1)["rewards"])


def test_unlearning_shows_the_completed_receipt_and_the_revoked_contributions(tab: Tab, live: Live) -> None:
    cons = live.cons
    unlearning = cons.protocol.contract("Unlearning")
    req = unlearning.functions.getRequest(live.request_id).call()
    tab.open("/unlearning")
    section = f'section[data-request="{live.request_id}"]'
    assert tab.value(f'{section} [data-field="state"]') == "completed"
    assert tab.value(f'{section} [data-field="new-model-cid"]') == bytes32_to_cid(bytes(req[6]))
    assert tab.page.locator(f'{section} [data-field="removed-root"] .ok').count() == 1
    done = unlearning.events.UnlearningCompleted().get_logs(
        from_block=0, argument_filters={"requestId": live.request_id})[0]["args"]
    receipt = json.loads(cons.store.cat(bytes32_to_cid(bytes(done["metricsHash"]))))
    for addr, figures in receipt["perplexity"].items():
        name = cons.org_by_address(to_checksum_address(addr))
        for key in ("base", "before", "after"):
            shown = float(tab.value(f'{section} tr[data-topic="{name}"] [data-field="{key}"]'))
            assert shown == pytest.approx(figures[key], rel=1e-12)
    assert tab.page.locator(f'{section} svg.chart').count() == 1
    assert f"--request {live.request_id}" in tab.page.locator(f'{section} [data-field="rederive"]').inner_text()

    forgotten = cons.orgs[FORGOTTEN].address
    tab.open("/lineage")
    registry = cons.protocol.contract("ContributionRegistry")
    ranges = tab.page.locator(f'table.revocations tr[data-org="{forgotten}"]')
    covered = {r for i in range(ranges.count()) for r in range(int(ranges.nth(i).get_attribute("data-from")),
                                                              int(ranges.nth(i).get_attribute("data-to")) + 1)}
    for r in (1, 2):
        assert registry.functions.isRevoked(r, forgotten).call()
        assert r in covered
    requests = {ranges.nth(i).locator('[data-field="request"]').get_attribute("data-value") for i in range(ranges.count())}
    assert requests == {str(live.request_id)}
    for v in range(1, registry.functions.latestVersion().call() + 1):  # every version holding them says so
        for cell in tab.page.locator(f'section[data-version="{v}"] tr[data-org="{forgotten}"] [data-field="revoked-by"]').all():
            assert cell.get_attribute("data-value") == str(live.request_id)
    tab.open("/rounds/1")
    status = tab.page.locator(f'table.submissions tr[data-org="{forgotten}"] [data-field="status"]').inner_text()
    assert "revoked" in status and str(live.request_id) in status
    for name, org in cons.orgs.items():
        if name != FORGOTTEN:
            assert not registry.functions.isRevoked(1, org.address).call()
            assert "accepted" in tab.page.locator(
                f'table.submissions tr[data-org="{org.address}"] [data-field="status"]').inner_text()


def test_the_rederive_instruction_verifies_the_receipt(live: Live, tmp_path) -> None:
    """What the page tells an auditor to run, as a function: every check passes on the real receipt."""
    agg = live.cons.aggregator
    result = audit_receipt(live.cons.protocol, live.cons.store, live.request_id, agg.address, agg.enc_private, tmp_path)
    assert result["checks"] and all(result["checks"].values()), result["checks"]
    assert result["ok"]


def test_anchor_inclusion_check_runs_live_against_the_public_chain(tab: Tab, live: Live) -> None:
    anchor = live.cons.anchor.contract("PublicAnchor")
    batch = live.anchor_batch
    tab.open("/anchors")
    row = f'tr[data-anchor="{batch["anchor_id"]}"]'
    assert tab.value(f'{row} [data-field="range"]') == f'{batch["from_block"]}-{batch["to_block"]}'
    assert tab.page.locator(f'{row} [data-field="root"]').inner_text() == "0x" + bytes(
        anchor.functions.getAnchor(batch["anchor_id"]).call()[3]).hex()
    record = batch["records"][-1]
    tab.page.fill('input[name="tx"]', record["tx_hash"])
    tab.page.fill('input[name="log_index"]', str(record["log_index"]))
    tab.page.click('form.check button')
    tab.page.wait_for_load_state()
    assert tab.value('[data-field="check-result"]') == "verified"
    leaf = tab.page.locator('[data-field="check-result"] dd.mono').first.inner_text()
    assert leaf == record["leaf"]  # the leaf the dashboard rebuilt is the relayer's
    # A transaction that is not on the private chain is not "verified".
    tab.open("/anchors?tx=0x" + "ab" * 32 + "&log_index=0")
    assert tab.value('[data-field="check-result"]') == "not-verified"
    assert tab.problems == [], tab.problems
