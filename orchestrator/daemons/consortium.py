"""Bringing a consortium up: deploy, hand out test tokens, stake, join, build the daemons.

Used by ``demo``, the end-to-end tests and ``bench/overhead.py`` on in-process chains or
anvil. Every organisation acts from its own wallet: the deployer only transfers test tokens;
each org approves, stakes and joins with its own key, exactly as on a real network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from web3.logs import DISCARD

from orchestrator.chain.contracts import Protocol, ProtocolParams, deploy_anchor, deploy_protocol
from orchestrator.chain.tx import Transactor
from orchestrator.daemons.base import Node
from orchestrator.storage import adapters as sealed
from orchestrator.storage.base import Store

TOKEN = 10**18


@dataclass
class Identity:
    """An actor: its wallet and its X25519 encryption key pair."""

    name: str
    account: LocalAccount
    enc_private: bytes = b""
    enc_public: bytes = b""

    def __post_init__(self) -> None:
        if not self.enc_private:
            self.enc_private, self.enc_public = sealed.generate_keypair()

    @property
    def address(self) -> str:
        return str(self.account.address)


@dataclass
class Consortium:
    private: Web3
    public: Web3
    protocol: Protocol
    anchor: Protocol
    store: Store
    governor: Identity
    aggregator: Identity
    relayer: Identity
    orgs: dict[str, Identity] = field(default_factory=dict)

    def node(self, who: Identity, state_dir: Path, *, public: bool = False, confirmations: int = 0) -> Node:
        w3, proto = (self.public, self.anchor) if public else (self.private, self.protocol)
        return Node(w3, proto, who.account, self.store, state_dir, confirmations)

    def aggregator_keys(self) -> dict[str, bytes]:
        return {self.aggregator.address: self.aggregator.enc_public}

    def org_by_address(self, address: str) -> str:
        for name, ident in self.orgs.items():
            if ident.address.lower() == address.lower():
                return name
        return address


def send(w3: Web3, account: LocalAccount, fn: Any) -> Any:
    return Transactor(w3, account).transact(fn)


def request_unlearning(w3: Web3, protocol: Protocol, account: LocalAccount, org: str, scope: int,
                       target: bytes = b"\x00" * 32, reason_hash: bytes = b"\x01" * 32) -> int:
    """Approve the request bond and ask for unlearning from ``account``; returns the request id."""
    unlearning = protocol.contract("Unlearning")
    tx = Transactor(w3, account)
    bond = int(unlearning.functions.requestBond().call())
    if bond:
        tx.transact(protocol.contract("LedgerToken").functions.approve(unlearning.address, bond))
    receipt = tx.transact(unlearning.functions.requestUnlearning(org, scope, target, reason_hash))
    return int(unlearning.events.UnlearningRequested().process_receipt(receipt, errors=DISCARD)[0]["args"]["requestId"])


def onboard(
    private: Web3,
    public: Web3,
    protocol: Protocol,
    anchor: Protocol,
    store: Store,
    governor: Identity,
    aggregator: Identity,
    relayer: Identity,
    orgs: dict[str, Identity],
) -> Consortium:
    """Each org (and the aggregator, who must be slashable) stakes from its own wallet; orgs join."""
    token = protocol.contract("LedgerToken")
    staking = protocol.contract("Staking")
    membership = protocol.contract("Membership")
    stake = int(membership.functions.minStake().call())
    gov = Transactor(private, governor.account)
    for ident in [*orgs.values(), aggregator]:
        if int(token.functions.balanceOf(ident.address).call()) < stake:
            gov.transact(token.functions.transfer(ident.address, stake))
        tx = Transactor(private, ident.account)
        tx.transact(token.functions.approve(staking.address, stake))
        tx.transact(staking.functions.stake(stake))
    for name, ident in orgs.items():
        Transactor(private, ident.account).transact(
            membership.functions.join(ident.enc_public, f"ledgerlora://org/{name}"))
    return Consortium(private, public, protocol, anchor, store, governor, aggregator, relayer, dict(orgs))


def deploy_consortium(
    private: Web3,
    public: Web3,
    accounts: list[LocalAccount],
    org_names: list[str],
    store: Store,
    **params: Any,
) -> Consortium:
    """Deploy the protocol on ``private`` and the anchor on ``public``, then onboard the orgs.

    ``accounts``: governor (the deployer), aggregator, relayer, then one per org. ``params``
    override :class:`ProtocolParams` fields (min_stake, response_window, ...).
    """
    if len(accounts) < 3 + len(org_names):
        raise ValueError(f"need {3 + len(org_names)} accounts, got {len(accounts)}")
    governor = Identity("governor", accounts[0])
    aggregator = Identity("aggregator", accounts[1])
    relayer = Identity("relayer", accounts[2])
    orgs = {name: Identity(name, accounts[3 + i]) for i, name in enumerate(org_names)}
    protocol_params = ProtocolParams(
        orgs=[o.address for o in orgs.values()], aggregators=[aggregator.address],
        relayers=[relayer.address], **params)
    manifest = deploy_protocol(private, Transactor(private, governor.account), protocol_params)
    anchor_manifest = deploy_anchor(public, Transactor(public, governor.account), relayer.address)
    protocol = Protocol.from_manifest(private, manifest)
    anchor = Protocol.from_manifest(public, anchor_manifest)
    return onboard(private, public, protocol, anchor, store, governor, aggregator, relayer, orgs)
