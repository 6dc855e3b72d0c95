import brownie
from conftest import b32

def test_revert_format(protocol, orgs, rando):
    rounds = protocol["rounds"]
    try:
        rounds.submitUpdate(7, b32("x"), 1, b32("y"), {"from": orgs[0]})
    except Exception as e:
        print("REVERT:", repr(e), getattr(e, "revert_msg", None))
    try:
        protocol["staking"].slash(orgs[0], 1, b32("r"), {"from": rando})
    except Exception as e:
        print("REVERT2:", getattr(e, "revert_msg", None))
    tx = rounds.openRound(b32("c"), brownie.chain.time()+100, 0, {"from": protocol["rounds"].governor()})
    print(tx.events["RoundOpened"], dict(tx.events["RoundOpened"]))
    tx = rounds.submitUpdate(1, b32("x"), 5, b32("y"), {"from": orgs[0]})
    print("GAS submit", tx.gas_used)
    tx = rounds.submitUpdate(1, b32("x2"), 5, b32("y"), {"from": orgs[1]})
    print("GAS submit", tx.gas_used)
