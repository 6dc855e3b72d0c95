"""The aggregator's chain reads are batched (issue 15): their number does not grow with the orgs.

Real parts: the in-process py-evm chain with the compiled contracts (Multicall3 deployed by the
deploy wiring), the embedded store, five tiny-model trainers. The JSON-RPC requests are counted
by wrapping web3's request manager (it still makes every request).
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.chain.submissions import reader_for
from orchestrator.daemons import modelbook
from orchestrator.daemons.demo import DemoConfig, build_setup, drive

ROUND_FINALIZED = 3


class Counter:
    def __init__(self, w3) -> None:  # type: ignore[no-untyped-def]
        self.manager, self.original, self.methods = w3.manager, w3.manager._make_request, []

    def __enter__(self) -> list[str]:
        def counting(method, params):  # type: ignore[no-untyped-def]
            self.methods.append(str(method))
            return self.original(method, params)

        self.manager._make_request = counting
        return self.methods

    def __exit__(self, *exc: object) -> None:
        del self.manager._make_request  # the class's method again


def test_live_inputs_of_five_orgs_take_as_many_json_rpc_calls_as_of_one(tmp_path: Path) -> None:
    names = ["business", "entertainment", "politics", "sport", "tech"]
    cfg = DemoConfig(model="tiny", orgs=5, rounds=1, unlearn="business", out=tmp_path, steps=1)
    setup = build_setup(cfg, tmp_path / "state", trainer_names=names)
    cons, node = setup.consortium, setup.aggregator.node
    assert "Multicall3" in cons.protocol.manifest.contracts
    rounds = cons.protocol.contract("Rounds")
    drive([setup.aggregator, *setup.trainers.values()],
          lambda: rounds.functions.getRound(1).call()[0] == ROUND_FINALIZED, max_ticks=8)
    orgs = sorted((cons.orgs[n].address for n in names), key=str.lower)

    with Counter(node.w3) as cold:
        batched = modelbook.live_inputs(node, orgs)
    # the reference: one plain call per flag, as before batching
    reader = reader_for(node.protocol)
    reference = {org: modelbook.latest_live(
        reader.of_org(org),
        is_rejected=lambda r, org=org: bool(rounds.functions.isRejected(r, org).call()),
        is_revoked=lambda r, org=org: bool(cons.protocol.contract("ContributionRegistry").functions.isRevoked(r, org).call()),
    ) for org in orgs}
    assert {o: (i.round, i.adapter_cid) for o, i in batched.items() if i} == \
        {o: (s.round_id, s.cid) for o, s in reference.items() if s}
    assert all(batched[o] is not None for o in orgs)

    with Counter(node.w3) as one:
        modelbook.live_inputs(node, orgs[:1])
    with Counter(node.w3) as five:
        modelbook.live_inputs(node, orgs)
    assert len(five) == len(one), (one, five)
    assert five.count("eth_call") == 1  # the five orgs' flags in one Multicall3 call
    # at most: the flags, the chosen commitments and the new rounds' caps, one call each (the
    # aggregator's finalization has already verified and cached some of them)
    assert 1 <= cold.count("eth_call") <= 3, cold
    assert cold.count("eth_getLogs") <= 3, cold  # two submission events, the removals
