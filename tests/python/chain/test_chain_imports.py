"""The chain layer must stay light: no ML framework behind `import orchestrator.chain`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_importing_orchestrator_chain_does_not_import_torch_transformers_or_peft() -> None:
    code = (
        "import sys, orchestrator.chain, orchestrator.chain.scanner, orchestrator.chain.contracts;"
        "heavy = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules];"
        "print(','.join(heavy) or 'none')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "none", f"orchestrator.chain imported {out.stdout.strip()}"
