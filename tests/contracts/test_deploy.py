"""scripts/deploy.py: deploy_all wires every role the protocol needs; the manifest names the artifacts."""

import json
import sys

import pytest
from brownie import accounts
from conftest import ROOT, plain


@pytest.fixture(scope="module")
def deploy_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "ledgerlora_deploy", ROOT / "scripts" / "deploy.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def deployed(deploy_module):
    params = deploy_module.DeployParams()
    orgs = list(accounts[1:6])
    return deploy_module.deploy_all(accounts[0], params, True, orgs), params, orgs


def test_deploy_all_grants_cross_contract_roles(deployed):
    c, _, _ = deployed
    registry, staking = c["ContributionRegistry"], c["Staking"]
    assert registry.rounds() == c["Rounds"]
    assert registry.hasRole(registry.REGISTRAR_ROLE(), c["Rounds"])
    assert registry.hasRole(registry.REGISTRAR_ROLE(), c["Unlearning"])
    assert registry.hasRole(registry.REVOKER_ROLE(), c["Unlearning"])
    assert not registry.hasRole(registry.REVOKER_ROLE(), c["Rounds"])
    assert staking.hasRole(staking.SLASHER_ROLE(), c["Unlearning"])
    assert staking.hasRole(staking.LOCKER_ROLE(), c["Membership"])
    assert staking.hasRole(staking.LOCKER_ROLE(), c["Unlearning"])


def test_local_deploy_makes_deployer_a_staked_aggregator_and_funds_orgs(deployed):
    c, params, orgs = deployed
    m, deployer = c["Membership"], accounts[0]
    assert m.hasRole(m.GOVERNOR_ROLE(), deployer)
    assert m.hasRole(m.AGGREGATOR_ROLE(), deployer)
    assert m.hasRole(m.RELAYER_ROLE(), deployer)
    assert m.hasMinStake(deployer)
    assert c["Unlearning"].defaultAggregator() == deployer
    assert [c["LedgerToken"].balanceOf(o) for o in orgs] == [params.org_tokens] * len(orgs)
    assert c["Rounds"].rewardPool() == params.reward_pool
    assert plain(c["Staking"].unbondDelay()) == params.unbond_delay
    assert c["Unlearning"].responseWindow() == params.response_window


def test_manifest_lists_addresses_artifacts_and_blocks(
    deployed, deploy_module, tmp_path, monkeypatch
):
    c, params, _ = deployed
    monkeypatch.setattr(deploy_module, "MANIFEST_DIR", tmp_path)
    path = deploy_module.write_manifest(c, accounts[0], {"min_stake": params.min_stake}, {})
    manifest = json.loads(path.read_text())
    assert path.name == f"{manifest['chain_id']}.json"
    assert manifest["deployer"] == accounts[0].address
    for name, contract in c.items():
        entry = manifest["contracts"][name]
        assert entry["address"] == contract.address
        assert entry["artifact"] == f"build/contracts/{name}.json"
        assert (ROOT / entry["artifact"]).exists()
        assert entry["block"] == contract.tx.block_number


def test_params_from_env_override_and_validate(deploy_module):
    p = deploy_module.DeployParams.from_env({"ORCH_MIN_STAKE": "5", "ORCH_RESPONSE_WINDOW": "60"})
    assert (p.min_stake, p.response_window) == (5, 60)
    with pytest.raises(ValueError, match="ORCH_SLASH_AMOUNT"):
        deploy_module.DeployParams.from_env({"ORCH_SLASH_AMOUNT": "lots"})
    with pytest.raises(ValueError, match="slash_amount"):
        deploy_module.DeployParams(slash_amount=0)
