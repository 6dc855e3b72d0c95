"""LedgerToken: a plain OpenZeppelin ERC-20 whose whole supply goes to the admin."""

from conftest import SUPPLY


def test_constructor_mints_whole_supply_to_admin(token, gov, rando):
    assert token.name() == "LedgerLoRA Stake"
    assert token.symbol() == "LLS"
    assert token.decimals() == 18
    assert token.totalSupply() == SUPPLY
    assert token.balanceOf(gov) == SUPPLY
    assert token.balanceOf(rando) == 0


def test_transfer_moves_tokens_and_emits_transfer(token, gov, rando):
    tx = token.transfer(rando, 123, {"from": gov})
    assert tx.events["Transfer"] == {"from": gov, "to": rando, "value": 123}
    assert token.balanceOf(rando) == 123
    assert token.totalSupply() == SUPPLY
