"""ContributionRegistry: versions and lineage, revocation by REVOKER_ROLE, contribution views over Rounds."""

import brownie
import pytest
from brownie import accounts
from conftest import ZERO32, b32, err, now, plain


@pytest.fixture(scope="module")
def registrar(registry, gov):
    registry.grantRole(registry.REGISTRAR_ROLE(), accounts[9], {"from": gov})
    return accounts[9]


@pytest.mark.view_coverage
def test_base_version_exists_with_no_parent(registry):
    assert registry.latestVersion() == 0
    model, parent, round_id, created = plain(registry.getVersion(0))
    assert (model, parent, round_id) == (ZERO32, 0, 0)
    assert 0 < created <= now()
    assert plain(registry.lineage(0)) == ()


def test_set_base_model_once_before_versions(registry, gov, registrar):
    tx = registry.setBaseModel(b32("base"), {"from": gov})
    assert tx.events["BaseModelSet"] == {"modelCid": b32("base")}
    assert registry.getVersion(0)[0] == b32("base")
    registry.recordVersion(b32("v1"), 0, 1, ZERO32, {"from": registrar})
    with brownie.reverts(err("RegistryBaseModelLocked", 1)):
        registry.setBaseModel(b32("other"), {"from": gov})


def test_set_base_model_failures(registry, gov, rando):
    with brownie.reverts(err("RegistryZeroModelCid")):
        registry.setBaseModel(ZERO32, {"from": gov})
    with brownie.reverts(err("AccessControlUnauthorizedAccount", rando, ZERO32)):
        registry.setBaseModel(b32("x"), {"from": rando})


@pytest.mark.view_coverage
def test_record_version_and_lineage(registry, registrar):
    tx = registry.recordVersion(b32("v1"), 0, 1, b32("m1"), {"from": registrar})
    assert tx.return_value == 1
    assert tx.events["VersionRecorded"] == {
        "versionId": 1,
        "parentVersion": 0,
        "roundId": 1,
        "modelCid": b32("v1"),
        "metricsHash": b32("m1"),
    }
    registry.recordVersion(b32("v2"), 1, 2, b32("m2"), {"from": registrar})
    registry.recordVersion(b32("v3"), 1, 0, b32("m3"), {"from": registrar})  # a branch from v1
    tx4 = registry.recordVersion(b32("v4"), 3, 4, b32("m4"), {"from": registrar})
    assert registry.latestVersion() == 4
    assert plain(registry.lineage(4)) == (3, 1, 0)
    assert plain(registry.lineage(2)) == (1, 0)
    assert plain(registry.lineage(99)) == ()
    assert plain(registry.getVersion(4)) == (b32("v4"), 3, 4, tx4.timestamp)
    assert registry.versionMetrics(3) == b32("m3")


def test_record_version_failures(registry, registrar, rando):
    with brownie.reverts(err("RegistryUnknownVersion", 1, 0)):
        registry.recordVersion(b32("v"), 1, 0, ZERO32, {"from": registrar})
    with brownie.reverts(err("RegistryZeroModelCid")):
        registry.recordVersion(ZERO32, 0, 0, ZERO32, {"from": registrar})
    with brownie.reverts(err("AccessControlUnauthorizedAccount", rando, registry.REGISTRAR_ROLE())):
        registry.recordVersion(b32("v"), 0, 0, ZERO32, {"from": rando})
    assert registry.latestVersion() == 0


def test_set_rounds_only_once(registry, rounds, gov):
    assert registry.rounds() == rounds  # wired by the fixture
    with brownie.reverts(err("RegistryRoundsAlreadySet", rounds)):
        registry.setRounds(gov, {"from": gov})


def test_liveness_views_read_rounds(registry, open_round, submit, members):
    rid = open_round()
    submit(rid, members[0], num_samples=17)
    assert registry.isLive(rid, members[0])
    assert not registry.isLive(rid, members[1]) and not registry.isRevoked(rid, members[0])


@pytest.fixture(scope="module")
def revoker(registry, gov):
    registry.grantRole(registry.REVOKER_ROLE(), accounts[9], {"from": gov})
    return accounts[9]


def test_revoke_from_marks_a_range_up_to_the_round_count(registry, revoker, open_round, submit, members):
    r1, r2, r3 = open_round(), open_round(), open_round()
    for r in (r1, r2, r3):
        submit(r, members[0])
    tx = registry.revokeFrom(members[0], r2, 7, {"from": revoker})
    assert tx.return_value == r3
    assert tx.events["ContributionsRevoked"] == {
        "org": members[0], "requestId": 7, "fromRound": r2, "toRound": r3
    }
    assert [registry.isRevoked(r, members[0]) for r in (r1, r2, r3)] == [False, True, True]
    assert [registry.isLive(r, members[0]) for r in (r1, r2, r3)] == [True, False, False]
    assert registry.revokedThrough(members[0]) == 0
    assert not registry.isRevoked(r2, members[1])


@pytest.mark.view_coverage
def test_revoke_ranges_merge_or_append(registry, revoker, open_round, members):
    org = members[0]
    for _ in range(3):
        open_round()
    registry.revokeFrom(org, 2, 1, {"from": revoker})  # [2, 3]
    for _ in range(3):
        open_round()
    registry.revokeFrom(org, 5, 2, {"from": revoker})  # [5, 6]: 4 stays live
    assert plain(registry.revokedRanges(org)) == ((2, 5), (3, 6))
    assert [registry.isRevoked(r, org) for r in range(1, 8)] == [False, True, True, False, True, True, False]
    registry.revokeFrom(org, 4, 3, {"from": revoker})  # touches [5, 6]: merged into it
    assert plain(registry.revokedRanges(org)) == ((2, 4), (3, 6))
    assert registry.revokedThrough(org) == 0
    open_round()
    registry.revokeFrom(org, 1, 4, {"from": revoker})  # Org scope: everything
    assert registry.revokedThrough(org) == 7
    assert all(registry.isRevoked(r, org) for r in range(1, 8))
    assert not registry.isRevoked(0, org) and not registry.isRevoked(8, org)


def test_ranges_that_join_round_one_count_as_revoked_through(registry, revoker, open_round, members):
    org = members[0]
    for _ in range(3):
        open_round()
    registry.revokeFrom(org, 1, 1, {"from": revoker})  # [1, 3]
    open_round()
    open_round()
    registry.revokeFrom(org, 4, 2, {"from": revoker})  # adjacent: merged into [1, 5]
    assert plain(registry.revokedRanges(org)) == ((1,), (5,))
    assert registry.revokedThrough(org) == 5


def test_revoke_from_failures(registry, revoker, open_round, members, rando):
    rid = open_round()
    with brownie.reverts(err("AccessControlUnauthorizedAccount", rando, registry.REVOKER_ROLE())):
        registry.revokeFrom(members[0], rid, 1, {"from": rando})
    with brownie.reverts(err("RegistryInvalidRange", 0, rid)):
        registry.revokeFrom(members[0], 0, 1, {"from": revoker})
    with brownie.reverts(err("RegistryInvalidRange", rid + 1, rid)):
        registry.revokeFrom(members[0], rid + 1, 1, {"from": revoker})


def test_set_rounds_wires_once_by_admin(gov, rando, rounds):
    from brownie import ContributionRegistry

    fresh = ContributionRegistry.deploy(gov, {"from": gov})
    assert fresh.rounds() == "0x" + "00" * 20
    assert not fresh.isLive(1, rando)
    fresh.grantRole(fresh.REVOKER_ROLE(), gov, {"from": gov})
    with brownie.reverts(err("RegistryZeroAddress")):
        fresh.revokeFrom(rando, 1, 1, {"from": gov})
    with brownie.reverts(err("AccessControlUnauthorizedAccount", rando, ZERO32)):
        fresh.setRounds(rounds, {"from": rando})
    with brownie.reverts(err("RegistryZeroAddress")):
        fresh.setRounds("0x" + "00" * 20, {"from": gov})
    tx = fresh.setRounds(rounds, {"from": gov})
    assert tx.events["RoundsSet"] == {"rounds": rounds}
    assert fresh.rounds() == rounds
