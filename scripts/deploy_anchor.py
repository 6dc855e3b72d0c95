"""Deploy PublicAnchor (on the public chain) and add it to ``deployments/<chainid>.json``.

Usage: ``brownie run scripts/deploy_anchor.py [--network X]``. The relayer account is
``ORCH_RELAYER`` (an address) if set, else the deployer. Deployer as in ``scripts/deploy.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploy import DeployParams, get_deployer, write_manifest  # noqa: E402


def deploy_anchor(deployer: Any, relayer: str | Any, max_range: int | None = None) -> Any:
    """Deploys PublicAnchor governed by ``deployer`` (ranges of at most ``max_range`` blocks,
    default ``DeployParams.anchor_max_range``) and grants ``relayer`` the RELAYER_ROLE."""
    from brownie import PublicAnchor

    if max_range is None:
        max_range = DeployParams.from_env().anchor_max_range
    tx = {"from": deployer}
    anchor = PublicAnchor.deploy(deployer, max_range, tx)
    anchor.grantRole(anchor.RELAYER_ROLE(), relayer, tx)
    return anchor


def main() -> None:
    deployer = get_deployer()
    relayer = os.environ.get("ORCH_RELAYER") or deployer
    anchor = deploy_anchor(deployer, relayer)
    path = write_manifest({"PublicAnchor": anchor}, deployer, {}, {}, merge=True)
    print(f"PublicAnchor           {anchor.address}")
    print(f"manifest written to {path}")
