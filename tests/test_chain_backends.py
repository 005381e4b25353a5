"""The chain layer against each backend: a Hardhat node, connection errors, paged event queries."""

from __future__ import annotations

import pytest

from dgpt.chain import client
from dgpt.chain.client import Chain, ChainError, decode_revert
from harness.localnet import free_port
from tests.conftest import make_world
from tests.test_contracts import publish_final, register, run_round


@pytest.mark.hardhat
def test_smoke_flow_on_a_hardhat_node(hardhat_url):
    w = make_world(Chain.connect(hardhat_url))
    a = w.oracles[0]
    register(w, a)
    rid = run_round(w, revealers=[a])
    tree = publish_final(w, rid, {a.address: 5 * 10**18})
    e = tree.of(a.address)
    w.protocol.claim(a, rid, e, tree.proof(e.index))
    assert w.protocol.round(rid).rewards_claimed == 5 * 10**18


def test_connect_to_nothing_is_a_clear_error():
    with pytest.raises(ChainError, match="no JSON-RPC chain answers at http://127.0.0.1:"):
        Chain.connect(f"http://127.0.0.1:{free_port()}")


def test_events_are_fetched_in_pages(monkeypatch):
    w = make_world(Chain.embedded())
    for o in w.oracles:
        register(w, o)
    monkeypatch.setattr(client, "PAGE_BLOCKS", 3)  # force many pages over a short chain
    events = w.protocol.events("OracleRegistered")
    assert [e["args"]["oracle"] for e in events] == [o.address for o in w.oracles]


def test_unknown_revert_data_is_not_misread():
    assert decode_revert("0xdeadbeef") is None
    assert decode_revert(None) is None


@pytest.mark.parametrize("backend", [pytest.param("anvil", marks=pytest.mark.anvil), pytest.param("hardhat", marks=pytest.mark.hardhat)])
def test_the_clock_moves_on_a_node_that_mines_no_blocks(request, backend):
    """A plain `anvil` (and Hardhat's node) automines: no block comes between transactions. The
    roles' clock is the next block's time, which moves with the wall clock; the latest block's
    stood still, and a daemon waiting for a deadline waited forever (issue 17)."""
    import time

    chain = Chain.connect(request.getfixturevalue(f"{backend}_url"))
    block, t0 = chain.w3.eth.block_number, chain.now()
    time.sleep(2.2)
    assert chain.w3.eth.block_number == block  # nothing was mined
    assert chain.now() >= t0 + 2


@pytest.mark.anvil
def test_a_key_without_gas_money_is_told_what_it_needs_and_sends_nothing(anvil_url):
    """A new keystore holds no ETH; the node's own message ('Insufficient funds for gas * price +
    value') named neither the address nor the amount (issue 17)."""
    from eth_account import Account

    from dgpt.chain.client import dev_accounts
    from dgpt.chain.protocol import TOKEN

    chain = Chain.connect(anvil_url)
    w = make_world(chain)
    poor = Account.create()
    w.protocol.transfer(dev_accounts(1)[0], poor.address, 10 * TOKEN)  # DGPT, but no ETH for gas
    with pytest.raises(ChainError) as info:
        w.protocol.transfer(poor, dev_accounts(1)[0].address, TOKEN)
    msg = str(info.value)
    # the advice is a command this project installs (no `cast` here), and it works
    assert msg.startswith(f"{poor.address} has 0.000000 ETH for gas") and f"dgpt fund {poor.address} 1 --dev --dev-key 0" in msg
    assert chain.w3.eth.get_transaction_count(poor.address) == 0
    chain.send_eth(dev_accounts(1)[0], poor.address, 10**18)
    assert chain.eth_balance(poor.address) == 10**18
    w.protocol.transfer(poor, dev_accounts(1)[0].address, TOKEN)
    assert w.protocol.balance_of(poor.address) == 9 * TOKEN
