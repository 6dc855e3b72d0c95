"""Multicall3 (the daemons' batched reads): results in order, failures allowed or reverting."""

import brownie
from brownie import Multicall3
from conftest import _share_pc_maps, err


def test_aggregate3_returns_each_result_and_honours_allow_failure(token, gov, orgs):
    mc = Multicall3.deploy({"from": gov})
    _share_pc_maps()
    good = (token.address, False, token.balanceOf.encode_input(gov))
    bad = (token.address, True, "0xdeadbeef")  # no such function: fails, allowed
    tx = mc.aggregate3([good, bad], {"from": gov})
    (ok, data), (failed, _) = tx.return_value
    assert ok and int(data.hex(), 16) == token.balanceOf(gov)
    assert not failed
    with brownie.reverts(err("Multicall3CallFailed", 1)):
        mc.aggregate3([good, (token.address, False, "0xdeadbeef")], {"from": gov})
    assert mc.getChainId() == brownie.chain.id
    assert mc.getBlockNumber() == brownie.web3.eth.block_number
