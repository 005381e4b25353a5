"""Full training rounds: end to end on embedded defaults, audits, and kill-and-restart at every step."""

from __future__ import annotations

import pytest

from dgpt import crash
from dgpt.audit import audit_round
from dgpt.chain.client import Chain, dev_accounts
from dgpt.chain.protocol import deploy
from dgpt.report import Report
from dgpt.store import LocalStore
from harness.demo import DemoPlan, demo_data, drive, setup_network

PLAN = DemoPlan(oracles=2, pretrain_rounds=1, finetune_rounds=1, max_len=32, examples_per_oracle=16, test_examples=16)


@pytest.fixture(scope="module")
def data():
    d = demo_data(PLAN)
    d.validation = d.validation[:24]
    return d


class Net:
    """A fresh embedded chain and store with the roles' nodes; `restart()` rebuilds the nodes from
    their journals, as a killed process would on restart (the chain and the store persist)."""

    def __init__(self, home, data):
        self.home, self.data = home, data
        self.chain = Chain.embedded()
        self.store = LocalStore(home / "store")
        a = dev_accounts(2 + PLAN.oracles)
        self.admin, self.agg_account, self.oracle_accounts = a[0], a[1], a[2:]
        self.protocol = deploy(self.chain, self.admin, self.agg_account.address)
        self.restart()

    def restart(self):
        self.agg, self.oracles = setup_network(
            self.protocol, self.store, self.admin, self.agg_account, self.oracle_accounts, self.data, PLAN, self.home, log=lambda *a: None
        )

    def run(self):
        drive(self.chain, self.protocol, self.agg, self.oracles, lambda rid: None)

    def outcome(self):
        p = self.protocol
        rounds = [(r, p.round(r).new_model_cid, p.round(r).report_cid) for r in range(1, p.current_round() + 1)]
        return rounds, {a.address: (p.balance_of(a.address), p.oracle(a.address).stake) for a in self.oracle_accounts}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data):
    net = Net(tmp_path_factory.mktemp("reference"), data)
    net.run()
    return net


def test_rounds_run_end_to_end_on_embedded_defaults(reference):
    net = reference
    p = net.protocol
    assert p.current_round() == 2 and all(p.round(r).published for r in (1, 2))
    assert p.latest_model() == p.round(2).new_model_cid
    report = Report.from_bytes(net.store.get_bytes(p.round(2).report_cid))
    assert report.phase == "finetune" and report.labels == ["rotten", "fresh"]
    assert {s.oracle for s in report.submissions} == {a.address for a in net.oracle_accounts}
    # every oracle claimed exactly what the report awarded it, over both rounds
    earned = {a.address: 0 for a in net.oracle_accounts}
    for r in (1, 2):
        for e in Report.from_bytes(net.store.get_bytes(p.round(r).report_cid)).submissions:
            earned[e.oracle] += e.reward
    stake = p.min_stake()
    for a in net.oracle_accounts:
        assert p.balance_of(a.address) == stake + earned[a.address]
    assert sum(earned.values()) > 0


def test_audit_confirms_honest_rounds(reference):
    for r in (1, 2):
        result = audit_round(reference.protocol, reference.store, r)
        assert result.ok, result.problems


def test_audit_flags_a_tampered_model_cid(tmp_path, data):
    net = Net(tmp_path, data)
    crash.arm("aggregator:uploaded")
    with pytest.raises(crash.Crash):
        net.run()
    journal = net.agg.journal
    j = journal.round(1)
    # the operator publishes another (valid) model than the merge gave: here the round's base model
    j["new_model_cid"] = net.protocol.round(1).base_model_cid
    journal.save()
    net.restart()
    net.run()
    result = audit_round(net.protocol, net.store, 1)
    assert not result.ok and [w for w, _, _ in result.differences] == ["model CID"]
    # round 2 built honestly on what round 1 published: its own audit passes
    assert audit_round(net.protocol, net.store, 2).ok


def _tamper(report: Report, how: str, outsider: str) -> Report:
    import copy

    from dgpt.commitments import RewardsTree
    from dgpt.report import Reason, Slash

    r = copy.deepcopy(report)
    a = next(e.oracle for e in r.submissions if e.accepted)  # an honest, merged delta
    if how == "pays an address that was not merged":
        r.rewards = RewardsTree.build({**dict(zip(r.rewards.oracles, r.rewards.amounts)), outsider: 10**18})
    elif how == "a weight that is not the revealed count":
        r.entry(a).weight = 2 * r.entry(a).weight + 1
    elif how == "leaves a reveal out":
        r.submissions = [e for e in r.submissions if e.oracle != a]
    elif how == "slashes with no faulty delta":
        r.slashes.append(Slash(a, Reason.MALFORMED))
    elif how == "marks an honest delta rejected":
        r.entry(a).accepted, r.entry(a).reason = False, Reason.HARMFUL
    elif how == "changes a score":
        r.entry(a).loss_gain = round(r.entry(a).loss_gain + 0.01, 6)
    return r


TAMPERED = ["pays an address that was not merged", "a weight that is not the revealed count", "leaves a reveal out",
            "slashes with no faulty delta", "marks an honest delta rejected", "changes a score"]


@pytest.mark.parametrize("how", TAMPERED)
def test_the_audit_recomputes_every_decision_and_catches_a_tampered_report(reference, how):
    net = reference
    # the pre-training round: L1 gains are large enough that the tiny test oracles' deltas merge
    published = Report.from_bytes(net.store.get_bytes(net.protocol.round(1).report_cid))
    assert any(e.accepted for e in published.submissions)  # the honest round this starts from
    tampered = _tamper(published, how, net.admin.address)
    result = audit_round(net.protocol, net.store, 1, report=tampered)
    assert not result.ok and result.differences, how
    assert result.recomputed_model_cid == net.protocol.round(1).new_model_cid  # the recomputation itself is sound


CRASH_POINTS = [
    "oracle:trained",
    "oracle:stored",
    "sent:commit",
    "sent:reveal",
    "sent:claim",
    "aggregator:downloaded",
    "aggregator:uploaded",
    "sent:publish",
    "sent:openRound",
]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_killed_and_restarted_roles_reach_the_same_outcome(tmp_path, data, reference, point):
    net = Net(tmp_path, data)
    crash.arm(point)
    with pytest.raises(crash.Crash):
        net.run()
    net.restart()
    net.run()
    assert net.outcome() == reference.outcome()
    assert len(net.protocol.events("Published")) == 2  # each round published exactly once
    commits = net.protocol.events("Committed")
    assert len(commits) == len({(e["args"]["roundId"], e["args"]["oracle"]) for e in commits}) == 2 * PLAN.oracles
