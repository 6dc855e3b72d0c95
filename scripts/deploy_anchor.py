"""Deploy PublicAnchor (on the public chain) and add it to ``deployments/<chainid>.json``.

Usage: ``brownie run scripts/deploy_anchor.py [--network X]``. The relayer account is
``ORCH_RELAYER`` (an address) if set, else the deployer. Deployer as in ``scripts/deploy.py``;
the deployment itself is :func:`orchestrator.chain.contracts.deploy_anchor`, as for
``python -m orchestrator deploy``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploy import MANIFEST_DIR, build_dir, get_deployer, plain_web3, transactor_for  # noqa: E402

from orchestrator.chain.artifacts import Manifest  # noqa: E402
from orchestrator.chain.contracts import deploy_anchor  # noqa: E402


def main() -> None:
    from brownie import chain, network

    deployer = get_deployer()
    relayer = os.environ.get("ORCH_RELAYER") or deployer.address
    path = Manifest.path_for(chain.id, MANIFEST_DIR)
    w3 = plain_web3()
    manifest = deploy_anchor(w3, transactor_for(deployer, w3), relayer, build_dir=build_dir(),
                             network=network.show_active(), manifest_path=path)
    print(f"PublicAnchor           {manifest.address('PublicAnchor')}")
    print(f"manifest written to {path}")
