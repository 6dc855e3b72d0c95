"""docs/ORCHESTRATOR.md's by-hand recipe, run exactly as written (issue 12).

The commands between the ``recipe:begin`` and ``recipe:end`` markers are extracted from the doc
and run by bash in a scratch folder outside the project, with the ``ledgerlora`` console script
this venv installs (its code taken from this checkout). Step 0 (two anvils) is the only part the
test does itself, with two real anvils on free ports. Afterwards it checks both chains.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.chain.anvil import AnvilProcess
from orchestrator.chain.artifacts import Manifest
from orchestrator.chain.connection import connect
from orchestrator.chain.contracts import Protocol
from orchestrator.ops.context import named

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "ORCHESTRATOR.md"
ROUND_FINALIZED, REQ_COMPLETED = 3, 3


def recipe_commands() -> str:
    text = DOC.read_text()
    match = re.search(r"<!-- recipe:begin -->(.*?)<!-- recipe:end -->", text, re.S)
    assert match, f"{DOC} has no recipe markers"
    blocks = re.findall(r"```bash\n(.*?)```", match.group(1), re.S)
    assert len(blocks) >= 8, "the recipe lost steps"
    return "\n".join(blocks)


def test_the_recipe_extracts_every_step() -> None:
    script = recipe_commands()
    for needle in ("org new-key", "deploy --dev", "org stake", "org join", "--role trainer", "--role aggregator",
                   "--role unlearner", "--role relayer", "request-unlearning", "status --wait-request"):
        assert needle in script, needle


@pytest.mark.slow
def test_the_by_hand_recipe_works_as_written(tmp_path: Path) -> None:
    venv_bin = Path(sys.executable).parent
    if shutil.which("ledgerlora", path=str(venv_bin)) is None:
        pytest.fail(f"the console script ledgerlora is not in {venv_bin}: `make setup` installs the project")
    script = recipe_commands()
    with AnvilProcess(chain_id=31337) as private, AnvilProcess(chain_id=31338) as public:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")} | {
            "ORCH_RPC_URL": private.url, "ORCH_PUBLIC_RPC_URL": public.url, "PYTHONPATH": str(ROOT),
            "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
        out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=1500)
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}"
                         for p in sorted((tmp_path / "ledgerlora-op" / "logs").glob("*.log")))
        assert out.returncode == 0, f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}\n{logs}"
        work = tmp_path / "ledgerlora-op"
        w3, pw3 = connect(private.url), connect(public.url)
        protocol = Protocol.from_manifest(w3, Manifest.read(work / "deployments" / "31337.json"))
        anchor = Protocol.from_manifest(pw3, Manifest.read(work / "deployments" / "31338-anchor.json"))
        rounds, unlearning = protocol.contract("Rounds"), protocol.contract("Unlearning")
        sport = (work / "keys" / "sport.address").read_text().strip()
        assert int(rounds.functions.roundCount().call()) == 2
        assert all(named(rounds, "getRound", r)["state"] == ROUND_FINALIZED for r in (1, 2))
        request = named(unlearning, "getRequest", 1)
        assert request["org"] == sport and request["state"] == REQ_COMPLETED
        completed = unlearning.events.UnlearningCompleted().get_logs(from_block=0)
        assert completed and completed[0]["blockNumber"] > 0
        public_anchor = anchor.contract("PublicAnchor")
        assert int(public_anchor.functions.lastToBlock(31337).call()) >= completed[0]["blockNumber"]
    assert "request 1 completed" in out.stdout and "round 2 finalized" in out.stdout
    for line in (work / "keys" / "sport.env").read_text().splitlines():  # no key in any output or log
        assert line.split("=", 1)[1] not in out.stdout + out.stderr + logs
