"""scripts/deploy.py: the brownie front end of the one deployment implementation (deploy_protocol)."""

import json
import sys

import pytest
from brownie import accounts, web3
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
def deployed(deploy_module, tmp_path_factory):
    orgs = list(accounts[1:6])
    params = deploy_module.local_params(accounts[0], "development", orgs)
    path = tmp_path_factory.mktemp("deployments") / f"{web3.eth.chain_id}.json"
    contracts, manifest = deploy_module.deploy_all(accounts[0], params, path)
    return contracts, params, orgs, manifest, path


def test_the_script_wires_through_the_orchestrators_deployer(deploy_module):
    from orchestrator.chain.contracts import deploy_protocol

    assert deploy_module.deploy_protocol is deploy_protocol
    assert not hasattr(deploy_module, "DeployParams")  # no second copy of the parameters


def test_deploy_all_grants_cross_contract_roles(deployed):
    c = deployed[0]
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
    c, params, orgs, _, _ = deployed
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


def test_manifest_lists_addresses_artifacts_and_blocks(deployed):
    c, params, orgs, manifest, path = deployed
    data = json.loads(path.read_text())
    assert data["chain_id"] == web3.eth.chain_id and data["network"] == "development"
    assert data["deployer"] == accounts[0].address
    assert data["orgs"] == [o.address for o in orgs]
    assert data["params"]["min_stake"] == params.min_stake
    for name, contract in c.items():
        entry = data["contracts"][name]
        assert entry["address"] == contract.address
        assert (ROOT / entry["artifact"]).exists()
        assert web3.eth.get_code(contract.address, block_identifier=entry["block"])
        assert not web3.eth.get_code(contract.address, block_identifier=entry["block"] - 1)


def test_non_local_networks_get_no_dev_setup(deploy_module):
    params = deploy_module.local_params(accounts[0], "sepolia", list(accounts[1:3]))
    assert not params.local and params.orgs == () and params.network == "sepolia"


def test_params_from_env_override_and_validate(deploy_module, monkeypatch):
    monkeypatch.setenv("ORCH_MIN_STAKE", "5")
    monkeypatch.setenv("ORCH_RESPONSE_WINDOW", "60")
    p = deploy_module.local_params(accounts[0], "development", [])
    assert (p.min_stake, p.response_window) == (5, 60)
    monkeypatch.setenv("ORCH_SLASH_AMOUNT", "lots")
    with pytest.raises(Exception, match="ORCH_SLASH_AMOUNT"):
        deploy_module.local_params(accounts[0], "development", [])
    with pytest.raises(ValueError, match="ORCH_NUM_ORGS"):
        deploy_module.num_orgs({"ORCH_NUM_ORGS": "many"})
