"""deploy_protocol / deploy_anchor from the build artifacts, and Protocol.from_manifest."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from orchestrator.chain import (
    ArtifactError,
    ContractRevertError,
    Manifest,
    Protocol,
    ProtocolParams,
    Transactor,
    advance_time,
    connect,
    deploy_anchor,
    deploy_protocol,
    funded_accounts,
)
from orchestrator.chain.contracts import MULTICALL_CONTRACT, PROTOCOL_CONTRACTS
from orchestrator.chain.multicall import multicall_address

MIN_STAKE = 100 * 10**18


def _deploy(w3: Web3, accounts: list[LocalAccount], build_dir: Path, directory: Path) -> tuple[Manifest, Protocol]:
    params = ProtocolParams(orgs=[a.address for a in accounts[1:]], min_stake=MIN_STAKE, org_tokens=500 * 10**18)
    manifest = deploy_protocol(w3, Transactor(w3, accounts[0], build_dir=build_dir), params,
                               build_dir=build_dir, manifest_path=directory / "deployments" / "1337.json")
    return manifest, Protocol.from_manifest(w3, directory / "deployments" / "1337.json", build_dir)


@pytest.fixture(scope="module")
def module_chain() -> tuple[Web3, list[LocalAccount]]:
    w3 = connect()
    return w3, funded_accounts(w3, 4)


@pytest.fixture(scope="module")
def deployed(module_chain, build_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Manifest, Protocol]:
    """One deployment shared by the read-only tests of this module (deploying takes seconds)."""
    w3, accounts = module_chain
    return _deploy(w3, accounts, build_dir, tmp_path_factory.mktemp("deploy"))


def test_deploy_protocol_writes_a_manifest_with_every_contract(build_dir: Path, tmp_path: Path) -> None:
    w3 = connect()
    accounts = funded_accounts(w3, 2)
    manifest, protocol = _deploy(w3, accounts, build_dir, tmp_path)
    # a local chain without the canonical Multicall3 gets its own, listed for the batched reads
    assert set(manifest.contracts) == {*PROTOCOL_CONTRACTS, MULTICALL_CONTRACT} == set(protocol.names)
    assert multicall_address(w3, protocol) == manifest.contracts[MULTICALL_CONTRACT].address
    assert manifest.chain_id == 1337 and manifest.deployer == accounts[0].address
    assert Manifest.read(tmp_path / "deployments" / "1337.json") == manifest
    assert manifest.orgs == [accounts[1].address]
    for name, record in manifest.contracts.items():
        assert len(w3.eth.get_code(record.address)) > 0
        assert record.artifact.endswith(f"{name}.json")
        # The recorded block is the one whose receipt created the contract.
        assert w3.eth.get_code(record.address, block_identifier=record.block - 1) == b""

    # The anchor deployed on the same (local) chain joins the manifest, as deploy_anchor.py does.
    path = tmp_path / "deployments" / "1337.json"
    deploy_anchor(w3, Transactor(w3, accounts[0], build_dir=build_dir), accounts[1].address,
                  build_dir=build_dir, manifest_path=path)
    merged = Manifest.read(path)
    assert set(merged.contracts) == {*PROTOCOL_CONTRACTS, MULTICALL_CONTRACT, "PublicAnchor"}
    assert merged.orgs == [accounts[1].address] and merged.params == manifest.params


def test_roles_are_wired_like_scripts_deploy(deployed, module_chain) -> None:
    _, p = deployed
    accounts = module_chain[1]
    deployer = accounts[0].address

    def has(contract: str, role: str, who: str) -> bool:
        return p.contract(contract).functions.hasRole(p.role(contract, role), who).call()

    assert has("ContributionRegistry", "REGISTRAR_ROLE", p.Rounds.address)
    assert has("ContributionRegistry", "REGISTRAR_ROLE", p.Unlearning.address)
    assert has("ContributionRegistry", "REVOKER_ROLE", p.Unlearning.address)
    assert has("Staking", "SLASHER_ROLE", p.Unlearning.address)
    assert has("Membership", "AGGREGATOR_ROLE", deployer)
    assert has("Membership", "RELAYER_ROLE", deployer)
    assert p.Unlearning.functions.defaultAggregator().call() == deployer
    assert p.Staking.functions.stakeOf(deployer).call() == MIN_STAKE  # slashable aggregator
    assert p.ContributionRegistry.functions.rounds().call() == p.Rounds.address
    assert not has("ContributionRegistry", "REVOKER_ROLE", p.Rounds.address)
    assert not has("Staking", "SLASHER_ROLE", accounts[1].address)


def test_a_separate_aggregator_gets_the_role_and_answers_for_unacknowledged_requests(
    w3: Web3, accounts, build_dir: Path
) -> None:
    deployer, aggregator, relayer = (a.address for a in accounts[:3])
    params = ProtocolParams(aggregators=[aggregator], relayers=[relayer], reward_pool=0)
    p = Protocol.from_manifest(w3, deploy_protocol(w3, Transactor(w3, accounts[0], build_dir=build_dir),
                                                   params, build_dir=build_dir), build_dir)
    agg_role, rel_role = p.role("Membership", "AGGREGATOR_ROLE"), p.role("Membership", "RELAYER_ROLE")
    assert p.Membership.functions.hasRole(agg_role, aggregator).call()
    assert not p.Membership.functions.hasRole(agg_role, deployer).call()
    assert p.Membership.functions.hasRole(rel_role, relayer).call()
    assert p.Unlearning.functions.defaultAggregator().call() == aggregator
    assert p.Staking.functions.stakeOf(deployer).call() == 0  # not an aggregator: nothing to slash


def test_orgs_get_test_tokens_and_the_reward_pool_is_funded(deployed, module_chain) -> None:
    manifest, p = deployed
    accounts = module_chain[1]
    for org in accounts[1:]:
        assert p.LedgerToken.functions.balanceOf(org.address).call() == 500 * 10**18
    assert p.LedgerToken.functions.balanceOf(p.Rounds.address).call() == manifest.params["reward_pool"]
    assert p.Staking.functions.unbondDelay().call() == manifest.params["unbond_delay"]
    assert p.Membership.functions.minStake().call() == MIN_STAKE


def test_protocol_reverts_are_decoded_with_the_protocol_errors(w3: Web3, accounts, build_dir, tmp_path: Path) -> None:
    _, p = _deploy(w3, accounts, build_dir, tmp_path)
    org = Transactor(w3, accounts[1], build_dir=build_dir)
    key = b"\x42" * 32
    with pytest.raises(ContractRevertError) as info:
        org.transact(p.Membership.functions.join(key, "ipfs://org1"))
    assert info.value.error_name == "MembershipInsufficientStake"
    assert info.value.error_args == {"org": accounts[1].address, "staked": 0, "minStake": MIN_STAKE}

    org.transact(p.LedgerToken.functions.approve(p.Staking.address, MIN_STAKE))
    org.transact(p.Staking.functions.stake(MIN_STAKE))
    org.transact(p.Membership.functions.join(key, "ipfs://org1"))
    assert p.Membership.functions.isMember(accounts[1].address).call()

    aggregator = Transactor(w3, accounts[0], build_dir=build_dir)
    deadline = w3.eth.get_block("latest")["timestamp"] + 3600
    aggregator.transact(p.Rounds.functions.openRound(b"\x01" * 32, deadline, 10**18, 1000))
    org.transact(p.Rounds.functions.submitUpdate(1, b"\x02" * 32, 10, b"\x03" * 32))
    with pytest.raises(ContractRevertError) as info:
        org.transact(p.Rounds.functions.submitUpdate(1, b"\x04" * 32, 10, b"\x03" * 32))
    assert info.value.error_name == "RoundsAlreadySubmitted"
    assert str(info.value) == (
        f"Rounds.submitUpdate reverted: RoundsAlreadySubmitted(roundId=1, org={accounts[1].address})")

    advance_time(w3, 3601)
    with pytest.raises(ContractRevertError) as info:
        org.transact(p.Rounds.functions.submitUpdate(1, b"\x05" * 32, 10, b"\x03" * 32))
    assert info.value.error_name == "RoundsDeadlinePassed"
    assert info.value.error_args["roundId"] == 1 and info.value.error_args["deadline"] == deadline


def test_manifest_of_another_chain_or_a_restarted_chain_is_refused(deployed, build_dir) -> None:
    manifest, _ = deployed
    other = connect(chain_id=4242)
    with pytest.raises(ArtifactError, match="manifest is for chain 1337"):
        Protocol.from_manifest(other, manifest, build_dir)
    fresh = connect()  # same chain id, but a new chain: nothing deployed there
    with pytest.raises(ArtifactError, match="stale"):
        Protocol.from_manifest(fresh, manifest, build_dir)


def test_deploy_anchor_on_a_second_chain_grants_the_relayer(build_dir: Path, accounts) -> None:
    public = connect(chain_id=11155111)
    deployer, relayer = funded_accounts(public, 2, start=10)
    manifest = deploy_anchor(public, Transactor(public, deployer, build_dir=build_dir), relayer.address,
                             build_dir=build_dir, network="public-in-process")
    assert manifest.chain_id == 11155111 and list(manifest.contracts) == ["PublicAnchor"]
    anchor = Protocol.from_manifest(public, manifest, build_dir).PublicAnchor
    role = anchor.functions.RELAYER_ROLE().call()
    assert anchor.functions.hasRole(role, relayer.address).call()
    tx = Transactor(public, relayer, build_dir=build_dir)
    tx.transact(anchor.functions.postRoot(1337, 1, 10, b"\x09" * 32))
    assert anchor.functions.lastToBlock(1337).call() == 10


def _load_script(name: str):
    import importlib.util

    path = Path(__file__).resolve().parents[3] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_script_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through it
    spec.loader.exec_module(module)  # brownie is imported lazily there: safe without a network
    return module


def test_scripts_deploy_is_a_front_end_of_deploy_protocol() -> None:
    """One deployment implementation: the brownie scripts call the orchestrator's deployer."""
    from orchestrator.chain import contracts

    deploy, anchor = _load_script("deploy"), _load_script("deploy_anchor")
    assert deploy.deploy_protocol is contracts.deploy_protocol
    assert anchor.deploy_anchor is contracts.deploy_anchor
    assert not hasattr(deploy, "DeployParams")

    class Acct:
        address = "0x" + "ab" * 20

    local = deploy.local_params(Acct(), "development", [Acct()])
    assert local.local and local.orgs == (Web3.to_checksum_address(Acct.address),)
    remote = deploy.local_params(Acct(), "sepolia", [Acct()])
    assert not remote.local and remote.orgs == () and remote.network == "sepolia"


def test_protocol_params_validate_their_values() -> None:
    with pytest.raises(ValueError, match="min_stake must be a non-negative integer, got -1"):
        ProtocolParams(min_stake=-1)
    with pytest.raises(ValueError, match="orgs\\[\\] must be an address, got 'bob'"):
        ProtocolParams(orgs=["bob"])
    with pytest.raises(ValueError, match="initial_supply"):
        ProtocolParams(initial_supply=10, reward_pool=100)
