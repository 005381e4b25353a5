"""Shared fixtures: local chains (embedded, a real Anvil, a Hardhat node) and a deployed protocol."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import localnet
from dgpt.chain.client import Chain, dev_accounts
from dgpt.chain.protocol import TOKEN, Protocol, ProtocolParams, deploy

ROOT = Path(__file__).resolve().parents[1]
# Unreachable services are retried for $DGPT_RETRY_SECONDS (default 60): keep failures quick in tests.
os.environ.setdefault("DGPT_RETRY_SECONDS", "2")


@pytest.fixture(scope="session")
def anvil_url():
    """A real Anvil node (from the npm package) on a free loopback port, stopped by PID at the end."""
    with localnet.anvil() as url:
        yield url


@pytest.fixture(scope="session")
def hardhat_url():
    """A Hardhat node on a free loopback port, stopped by PID at the end."""
    with localnet.hardhat_node() as url:
        yield url


@pytest.fixture(params=["embedded", "anvil"])
def chain(request) -> Chain:
    """The contract suite runs on both the embedded chain and a real Anvil."""
    if request.param == "embedded":
        return Chain.embedded()
    return Chain.connect(request.getfixturevalue("anvil_url"))


@dataclass
class World:
    """A freshly deployed protocol with its cast: admin, aggregator, four funded oracles, an outsider."""

    chain: Chain
    protocol: Protocol
    admin: object
    aggregator: object
    oracles: list
    outsider: object
    params: ProtocolParams


@pytest.fixture
def world(chain) -> World:
    return make_world(chain)


def make_world(chain: Chain) -> World:
    accounts = dev_accounts(10)
    admin, aggregator, outsider = accounts[0], accounts[1], accounts[9]
    oracles = accounts[2:6]
    # No validator quorum: the contract suite settles rounds by the challenge window and proofs alone
    # (tests/test_disputes.py deploys with a quorum).
    params = ProtocolParams(unbonding_period=3600, slash_window=1800, non_reveal_penalty=10 * TOKEN, challenge_window=600,
                            validator_quorum=0)
    protocol = deploy(chain, admin, aggregator.address, params)
    for o in oracles + [outsider]:
        protocol.transfer(admin, o.address, 1_000 * TOKEN)
    protocol.transfer(admin, aggregator.address, 5_000 * TOKEN)
    protocol.deposit_bond(aggregator, 4_000 * TOKEN)
    return World(chain, protocol, admin, aggregator, oracles, outsider, params)
