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
