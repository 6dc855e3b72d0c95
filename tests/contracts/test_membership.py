"""Membership: join with the minimum stake and a key, update the key, governance removal, roles."""

import brownie
import pytest
from conftest import MIN_STAKE, ZERO32, b32, err, plain

KEY = b32("x25519-key")
URI = "ipfs://QmMetadata"


@pytest.fixture(scope="module")
def applicant(funded, stake_for, orgs):
    stake_for(orgs[0], MIN_STAKE)
    return orgs[0]


def test_roles_are_the_keccak_of_their_names(membership):
    from eth_utils import keccak

    for name in ("GOVERNOR_ROLE", "MEMBER_ROLE", "AGGREGATOR_ROLE", "RELAYER_ROLE"):
        assert getattr(membership, name)() == "0x" + keccak(text=name).hex()


def test_governor_holds_admin_and_governor_roles(membership, gov, staking):
    assert membership.hasRole(membership.DEFAULT_ADMIN_ROLE(), gov)
    assert membership.hasRole(membership.GOVERNOR_ROLE(), gov)
    assert membership.minStake() == MIN_STAKE
    assert membership.staking() == staking


def test_join_with_min_stake_grants_member_role_and_records_key(membership, applicant):
    tx = membership.join(KEY, URI, {"from": applicant})
    assert tx.events["MemberJoined"] == {"org": applicant, "encryptionKey": KEY, "metadataURI": URI}
    assert tx.events["RoleGranted"]["role"] == membership.MEMBER_ROLE()
    assert membership.isMember(applicant)
    assert membership.encryptionKeyOf(applicant) == KEY
    assert membership.metadataOf(applicant) == URI
    assert plain(membership.members()) == (applicant.address,)
    assert membership.memberCount() == 1


def test_join_without_min_stake_reverts(membership, stake_for, funded, orgs):
    stake_for(orgs[1], MIN_STAKE - 1)
    with brownie.reverts(err("MembershipInsufficientStake", orgs[1], MIN_STAKE - 1, MIN_STAKE)):
        membership.join(KEY, URI, {"from": orgs[1]})
    assert not membership.isMember(orgs[1])


def test_unregistered_account_without_stake_cannot_join(membership, rando):
    with brownie.reverts(err("MembershipInsufficientStake", rando, 0, MIN_STAKE)):
        membership.join(KEY, URI, {"from": rando})


def test_join_with_zero_key_reverts(membership, applicant):
    with brownie.reverts(err("MembershipZeroKey", applicant)):
        membership.join(ZERO32, URI, {"from": applicant})


def test_join_twice_reverts(membership, applicant):
    membership.join(KEY, URI, {"from": applicant})
    with brownie.reverts(err("MembershipAlreadyMember", applicant)):
        membership.join(KEY, URI, {"from": applicant})


def test_update_key_replaces_key(membership, applicant):
    membership.join(KEY, URI, {"from": applicant})
    tx = membership.updateKey(b32("new-key"), {"from": applicant})
    assert tx.events["MemberKeyUpdated"] == {"org": applicant, "encryptionKey": b32("new-key")}
    assert membership.encryptionKeyOf(applicant) == b32("new-key")


def test_update_key_by_non_member_reverts(membership, rando):
    with brownie.reverts(err("MembershipNotMember", rando)):
        membership.updateKey(KEY, {"from": rando})


def test_update_key_to_zero_reverts(membership, applicant):
    membership.join(KEY, URI, {"from": applicant})
    with brownie.reverts(err("MembershipZeroKey", applicant)):
        membership.updateKey(ZERO32, {"from": applicant})


def test_remove_member_revokes_role_and_forbids_rejoining(membership, applicant, gov):
    membership.join(KEY, URI, {"from": applicant})
    tx = membership.removeMember(applicant, b32("misbehaved"), {"from": gov})
    assert tx.events["MemberRemoved"] == {"org": applicant, "reasonHash": b32("misbehaved")}
    assert not membership.isMember(applicant)
    assert plain(membership.members()) == ()
    assert membership.encryptionKeyOf(applicant) == KEY  # kept for auditing old submissions
    with brownie.reverts(err("MembershipOrgRemoved", applicant)):
        membership.join(KEY, URI, {"from": applicant})


def test_remove_member_by_non_governor_reverts(membership, applicant, rando):
    membership.join(KEY, URI, {"from": applicant})
    with brownie.reverts(
        err("AccessControlUnauthorizedAccount", rando, membership.GOVERNOR_ROLE())
    ):
        membership.removeMember(applicant, b32("r"), {"from": rando})


def test_remove_non_member_reverts(membership, gov, rando):
    with brownie.reverts(err("MembershipNotMember", rando)):
        membership.removeMember(rando, b32("r"), {"from": gov})


def test_member_role_cannot_be_granted_revoked_or_renounced_directly(
    membership, applicant, gov, rando
):
    role = membership.MEMBER_ROLE()
    with brownie.reverts(err("MembershipRoleManagedByContract", role)):
        membership.grantRole(role, rando, {"from": gov})
    membership.join(KEY, URI, {"from": applicant})
    with brownie.reverts(err("MembershipRoleManagedByContract", role)):
        membership.revokeRole(role, applicant, {"from": gov})
    with brownie.reverts(err("MembershipRoleManagedByContract", role)):
        membership.renounceRole(role, applicant, {"from": applicant})
    assert membership.isMember(applicant) and not membership.isMember(rando)


def test_governor_grants_aggregator_and_relayer_roles(membership, gov, aggregator, relayer):
    tx = membership.grantRole(membership.AGGREGATOR_ROLE(), aggregator, {"from": gov})
    assert tx.events["RoleGranted"] == {
        "role": membership.AGGREGATOR_ROLE(),
        "account": aggregator,
        "sender": gov,
    }
    membership.grantRole(membership.RELAYER_ROLE(), relayer, {"from": gov})
    assert membership.hasRole(membership.AGGREGATOR_ROLE(), aggregator)
    assert membership.hasRole(membership.RELAYER_ROLE(), relayer)
    membership.revokeRole(membership.RELAYER_ROLE(), relayer, {"from": gov})
    assert not membership.hasRole(membership.RELAYER_ROLE(), relayer)


def test_non_governor_cannot_grant_aggregator_role(membership, rando):
    with brownie.reverts(
        err("AccessControlUnauthorizedAccount", rando, membership.GOVERNOR_ROLE())
    ):
        membership.grantRole(membership.AGGREGATOR_ROLE(), rando, {"from": rando})


def test_has_min_stake_follows_staking(membership, staking, applicant, rando):
    assert membership.hasMinStake(applicant)
    assert not membership.hasMinStake(rando)
    staking.requestUnbond(1, {"from": applicant})
    assert not membership.hasMinStake(applicant)


def test_set_min_stake(membership, gov, rando, applicant):
    tx = membership.setMinStake(MIN_STAKE * 2, {"from": gov})
    assert tx.events["MinStakeUpdated"] == {"previous": MIN_STAKE, "minStake": MIN_STAKE * 2}
    with brownie.reverts(err("MembershipInsufficientStake", applicant, MIN_STAKE, MIN_STAKE * 2)):
        membership.join(KEY, URI, {"from": applicant})
    with brownie.reverts(
        err("AccessControlUnauthorizedAccount", rando, membership.GOVERNOR_ROLE())
    ):
        membership.setMinStake(0, {"from": rando})


def test_members_lists_active_members_only(membership, members, gov):
    assert set(plain(membership.members())) == {m.address for m in members}
    membership.removeMember(members[1], b32("r"), {"from": gov})
    assert set(plain(membership.members())) == {m.address for m in members} - {members[1].address}
    assert membership.memberCount() == len(members) - 1
