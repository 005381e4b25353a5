"""Full training rounds: end to end on embedded defaults, audits, and kill-and-restart at every step."""

from __future__ import annotations

import copy
import json
import re
import time

import pytest

from dgpt import crash
from dgpt.audit import audit_round
from dgpt.chain.client import Chain, dev_accounts
from dgpt.chain.protocol import deploy
from dgpt.encoding import DEFAULT_ENCODING, Encoding
from dgpt.status import status
from dgpt.report import Report
from dgpt.store import LocalStore
from harness.demo import DEMO_PARAMS, DemoPlan, demo_data, drive, setup_network, setup_validators

PLAN = DemoPlan(oracles=2, pretrain_rounds=1, finetune_rounds=1, max_len=32, examples_per_oracle=16, test_examples=16)


@pytest.fixture(scope="module")
def data():
    d = demo_data(PLAN)
    # 3 snippets for the pre-training round, then the 12 the fine-tuning round was always judged on
    # (dgpt/dataset.py: one share to four): on 24, one of the two 16-snippet deltas is harmful
    d.validation = d.validation[:3] + d.validation[12:24]
    return d


class Net:
    """A fresh embedded chain and store with the roles' nodes; `restart()` rebuilds the nodes from
    their journals, as a killed process would on restart (the chain and the store persist)."""

    def __init__(self, home, data, plan=PLAN):
        self.home, self.data, self.plan = home, data, plan
        self.chain = Chain.embedded()
        self.store = LocalStore(home / "store")
        a = dev_accounts(2 + PLAN.oracles + PLAN.validators)
        self.admin, self.agg_account = a[0], a[1]
        self.oracle_accounts, self.validator_accounts = a[2:2 + PLAN.oracles], a[2 + PLAN.oracles:]
        self.protocol = deploy(self.chain, self.admin, self.agg_account.address, DEMO_PARAMS,
                               tuple(v.address for v in self.validator_accounts))
        self.restart()

    def restart(self):
        self.agg, self.oracles = setup_network(
            self.protocol, self.store, self.admin, self.agg_account, self.oracle_accounts, self.data, self.plan, self.home, log=lambda *a: None
        )
        self.validators = setup_validators(self.protocol, self.store, self.admin, self.validator_accounts, self.home, log=lambda *a: None)

    def run(self):
        drive(self.chain, self.protocol, self.agg, self.oracles, lambda rid: None, self.validators)

    def outcome(self):
        p = self.protocol
        rounds = [(r, p.round(r).new_model_cid, p.round(r).report_cid) for r in range(1, p.current_round() + 1)]
        return rounds, {a.address: (p.balance_of(a.address), p.oracle(a.address).stake) for a in self.oracle_accounts}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data):
    net = Net(tmp_path_factory.mktemp("reference"), data)
    net.logs = {"aggregator": [], "oracle": []}
    net.agg.log = lambda *a: net.logs["aggregator"].append(" ".join(map(str, a)))
    net.oracles[0].log = lambda *a: net.logs["oracle"].append(" ".join(map(str, a)))
    net.run()
    return net


def test_rounds_run_end_to_end_on_embedded_defaults(reference):
    net = reference
    p = net.protocol
    assert p.current_round() == 2 and all(p.round(r).state == "final" for r in (1, 2))
    assert all((p.round(r).agree, p.round(r).disagree) == (2, 0) for r in (1, 2))  # both validators bore each round out
    assert p.latest_model() == p.round(2).new_model_cid
    report = Report.from_bytes(net.store.get_bytes(p.round(2).report_cid))
    assert report.phase == "finetune" and report.labels == ["rotten", "fresh"]
    assert {s.oracle for s in report.submissions} == {a.address for a in net.oracle_accounts}
    # a fine-tuning delta is judged on L2 without the LM head; the model before and after keep L1
    assert all(e.alone["l1"] is None and e.alone["l2"] > 0 for e in report.submissions)
    assert report.validation["before"]["l1"] > 0 and report.validation["after"]["l1"] > 0
    pre = Report.from_bytes(net.store.get_bytes(p.round(1).report_cid))
    assert all(e.alone["l1"] > 0 for e in pre.submissions)  # pre-training is scored on L1
    # every oracle claimed exactly what the report awarded it, over both rounds
    earned = {a.address: 0 for a in net.oracle_accounts}
    for r in (1, 2):
        for e in Report.from_bytes(net.store.get_bytes(p.round(r).report_cid)).submissions:
            earned[e.oracle] += e.reward
    stake = p.min_stake()
    for a in net.oracle_accounts:
        assert p.balance_of(a.address) == stake + earned[a.address]
    assert sum(earned.values()) > 0


def test_the_daemons_log_each_transfer_and_each_scored_delta(reference):
    """No long silence: a line per delta fetched and per delta scored (with the count and an ETA),
    around the merge, and for every upload and download by bytes (issue 17)."""
    agg, oracle = "\n".join(reference.logs["aggregator"]), "\n".join(reference.logs["oracle"])
    for r in (1, 2):
        assert re.search(rf"^round {r}: 2 revealed, 0 did not", agg, re.M), agg
    mb = r"\d+\.\d\d MB in \d+\.\d s \(\d+\.\d MB/s\)"
    assert len(re.findall(rf"^  fetched and checked 1/2 \(\d+\.\d s, ETA \d+ s\): 0x[0-9a-fA-F]{{40}}: {mb}, well-formed", agg, re.M)) == 2, agg
    assert len(re.findall(r"^  scored 2/2 \(\d+\.\d s\): 0x[0-9a-fA-F]{40}: (accepted|rejected)", agg, re.M)) == 2, agg
    assert len(re.findall(r"^round \d: merging \d accepted deltas with fedavg$", agg, re.M)) == 2, agg
    assert len(re.findall(rf"^round \d: new model uploaded, {mb}$", agg, re.M)) == 2, agg
    assert len(re.findall(rf"^round \d: delta uploaded, {mb}$", oracle, re.M)) == 2, oracle
    assert len(re.findall(rf"^round \d: base model fetched, {mb}$", oracle, re.M)) == 2, oracle


def test_oracles_send_the_default_encoding_and_status_counts_its_bytes(reference):
    """The demo's rounds run in the project's default encoding: every revealed file is encoded, the
    report records its size, and `dgpt status` adds the sizes up per round."""
    net, p = reference, reference.protocol
    data = json.loads(status(p, net.store, as_json=True))
    for r in (1, 2):
        report = Report.from_bytes(net.store.get_bytes(p.round(r).report_cid))
        assert report.checks["delta_encoding"] == Encoding(DEFAULT_ENCODING).label
        sizes = [e.delta_bytes for e in report.submissions]
        assert all(sizes) and data["rounds"][r - 1]["delta_bytes"] == sum(sizes)
        for e in report.submissions:
            assert net.store.get_bytes(e.delta_cid)[:4096].count(b'"encoding":"' + Encoding(DEFAULT_ENCODING).label.encode()) == 1
    # the tables: per-oracle earnings, each submission's verdict, the deadlines (UTC)
    table = status(p, net.store)
    report = Report.from_bytes(net.store.get_bytes(p.round(2).report_cid))
    for e in report.submissions:
        verdict = "merged" if e.accepted and e.reward else (e.reason.value if e.reason else "accepted")
        assert re.search(rf"2 .*{e.oracle} .*revealed .*{verdict}", table), (e.oracle, verdict)
        # what the delta adds to the merge (leave-one-out), as the report has it, in the JSON and the table
        assert e.marginal_gain is not None
        v = data["rounds"][1]["verdicts"][e.oracle]
        assert (v["marginal_gain"], v["marginal_gain_se"]) == (e.marginal_gain, e.marginal_gain_se)
        assert re.search(rf"{e.oracle} .*{re.escape(f'{e.marginal_gain:+.4f} +- {e.marginal_gain_se:.4f}')}", table), e.oracle
    earned = {a.address: sum(e.reward for r in (1, 2) for e in Report.from_bytes(net.store.get_bytes(p.round(r).report_cid)).submissions
                             if e.oracle == a.address) for a in net.oracle_accounts}
    for a in net.oracle_accounts:
        assert re.search(rf"{a.address} .*{earned[a.address] / 10**18:,.2f}\s*$", table, re.M)
    assert time.strftime("%m-%d %H:%M:%S", time.gmtime(p.round(2).reveal_deadline)) in table
    assert p.round(2).new_model_cid in table  # whole, never cut
    assert "revealed" in status(p, None)  # without a store: no verdicts, still the tables


def test_an_oracle_claims_from_the_chain_on_a_machine_without_its_journal(tmp_path, data, monkeypatch):
    """The rewards are found from the chain's reveals and the final reports, not the local journal:
    `dgpt oracle claim` from another home pays what is owed, and says so when there is nothing."""
    from oracle.node import OracleConfig, OracleNode

    monkeypatch.setattr(OracleNode, "claim_rewards", lambda self, known=None: None)  # the daemons never claim
    net = Net(tmp_path / "net", data)
    net.run()
    monkeypatch.undo()
    p = net.protocol
    owed = {a.address: sum(e.reward for r in (1, 2) for e in Report.from_bytes(net.store.get_bytes(p.round(r).report_cid)).submissions
                           if e.oracle == a.address) for a in net.oracle_accounts}
    assert sum(owed.values()) > 0
    for a in net.oracle_accounts:
        before = p.balance_of(a.address)
        node = OracleNode(p, net.store, a, OracleConfig(tmp_path / "elsewhere" / a.address, []), log=lambda *x: None)
        settled = node.claim_from_chain()
        assert [r for r, _, _ in settled] == [1, 2]
        assert p.balance_of(a.address) - before == owed[a.address] == sum(amount for _, amount, _ in settled)
        again = node.claim_from_chain()  # claimed once: the second time says so and pays nothing
        assert p.balance_of(a.address) - before == owed[a.address]
        assert all(note.endswith("already claimed") or note.startswith("nothing to claim") for _, _, note in again)


def test_audit_confirms_honest_rounds(reference):
    for r in (1, 2):
        result = audit_round(reference.protocol, reference.store, r)
        assert result.ok, result.problems


def test_validators_void_a_proposal_whose_model_is_not_the_merge(tmp_path, data):
    """Attack: the aggregator proposes another (valid) model than the merge gave: here the round's base
    model. The audit finds exactly that; both validators attest against it, the quorum voids it, the
    aggregator's bond pays, the oracles lose nothing, and the network goes on from the same base."""
    from dgpt.chain.protocol import Outcome
    from dgpt.commitments import Result

    net = Net(tmp_path, data)
    crash.arm("aggregator:uploaded")
    with pytest.raises(crash.Crash):
        net.run()
    journal = net.agg.journal
    j = journal.round(1)
    j["result"]["new_model_cid"] = net.protocol.round(1).base_model_cid
    j["result_hash"] = Result.from_json(j["result"]).hash(1).hex()
    journal.save()
    net.restart()
    agg = net.agg_account.address
    bond_before = net.protocol.bond(agg)[0]
    stakes = {a.address: net.protocol.oracle(a.address).stake for a in net.oracle_accounts}
    net.run()
    result = audit_round(net.protocol, net.store, 2)  # round 2 builds on the genesis again and is final
    assert result.ok and net.protocol.round(2).state == "final"
    assert net.protocol.round(1).state == "aborted" and net.protocol.round(1).proposals == 1
    (voided,) = net.protocol.events("Voided", roundId=1)
    assert Outcome(voided["args"]["outcome"]) is Outcome.VOIDED_BY_QUORUM and voided["args"]["bondSlashed"] > 0
    deposited = sum(e["args"]["amount"] for e in net.protocol.events("BondDeposited", account=agg))
    assert net.protocol.bond(agg)[0] == bond_before + deposited - voided["args"]["bondSlashed"]
    assert {a.address: net.protocol.oracle(a.address).stake for a in net.oracle_accounts} == stakes
    assert net.protocol.round(2).base_model_cid == net.protocol.round(1).base_model_cid
    # each validator that caught it was paid a share of the bond, once its attestation was settled
    share = net.protocol.settlement(1, 1)[2]
    settled = net.protocol.events("AttestationSettled", roundId=1)
    assert share > 0 and sorted(e["args"]["paid"] for e in settled) == [share] * PLAN.validators


def _tamper(report: Report, how: str, outsider: str) -> Report:
    import copy

    from dgpt.report import Entry, Reason, Slash

    r = copy.deepcopy(report)
    a = next(e.oracle for e in r.submissions if e.accepted)  # an honest, merged delta
    if how == "pays an address that was not merged":
        r.submissions.append(Entry(outsider, r.entry(a).delta_cid, 1, reward=10**18))
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
    elif how == "changes what a delta adds to the merge":
        r.entry(a).marginal_gain = round(r.entry(a).marginal_gain + 0.01, 6)
    elif how == "claims a delta was judged in the merge":
        r.entry(a).in_merge = {"loss_gain": 0.01, "gain_se": 0.001}
    elif how == "claims a server learning rate past the bound":
        r.strategy = {**r.strategy, "server_lr": 50.0}
    elif how == "claims a momentum past the bound":
        r.strategy = {**r.strategy, "momentum": 0.99}
    return r


TAMPERED = ["pays an address that was not merged", "a weight that is not the revealed count", "leaves a reveal out",
            "slashes with no faulty delta", "marks an honest delta rejected", "changes a score",
            "changes what a delta adds to the merge", "claims a delta was judged in the merge"]
OUT_OF_BOUNDS = {"claims a server learning rate past the bound": "server_lr 50 is outside (0, 8]",
                 "claims a momentum past the bound": "momentum 0.99 is outside [0, 0.9]"}


@pytest.mark.parametrize("how", OUT_OF_BOUNDS)
def test_the_audit_refuses_a_report_outside_the_codes_bounds(reference, how):
    net = reference
    published = Report.from_bytes(net.store.get_bytes(net.protocol.round(1).report_cid))
    result = audit_round(net.protocol, net.store, 1, report=_tamper(published, how, net.admin.address))
    assert not result.ok and any(OUT_OF_BOUNDS[how] in p for p in result.problems), result.problems


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
    "sent:attest",
    "sent:finalize",
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
    attested = net.protocol.events("Attested")
    assert len(attested) == len({(e["args"]["roundId"], e["args"]["validator"]) for e in attested}) == 2 * PLAN.validators
    commits = net.protocol.events("Committed")
    assert len(commits) == len({(e["args"]["roundId"], e["args"]["oracle"]) for e in commits}) == 2 * PLAN.oracles


def test_a_server_learning_rate_is_recorded_and_recomputed_by_the_audit(tmp_path, data):
    from dataclasses import replace

    from dgpt.aggregate import Strategy
    from dgpt.round import RoundPolicy

    net = Net(tmp_path, data)
    net.agg.cfg = replace(net.agg.cfg, policy=RoundPolicy(Strategy("fedavg", {"server_lr": 2.0})))
    net.run()
    for r in (1, 2):
        report = Report.from_bytes(net.store.get_bytes(net.protocol.round(r).report_cid))
        assert report.strategy == {"name": "fedavg", "server_lr": 2.0}
        result = audit_round(net.protocol, net.store, r)
        assert result.ok, (result.problems, result.differences)


def test_server_momentum_carries_the_last_published_update_and_the_audit_recomputes_it(tmp_path, data):
    from dataclasses import replace

    from dgpt.aggregate import Strategy
    from dgpt.round import RoundPolicy

    net = Net(tmp_path, data, replace(PLAN, pretrain_rounds=2))  # L1 gains are large enough that the tiny oracles' deltas merge
    net.agg.cfg = replace(net.agg.cfg, policy=RoundPolicy(Strategy("fedavg", {"momentum": 0.5})))
    net.run()
    p = net.protocol
    reports = {r: Report.from_bytes(net.store.get_bytes(p.round(r).report_cid)) for r in (1, 2, 3)}
    assert all(r.strategy == {"name": "fedavg", "momentum": 0.5} for r in reports.values())
    assert "momentum_base_cid" not in reports[1].strategy_decisions  # the first round has no previous update
    assert reports[2].strategy_decisions["momentum_base_cid"] == p.round(1).base_model_cid
    assert "momentum_base_cid" not in reports[3].strategy_decisions  # the first fine-tuning round: the phase changed
    for r in (1, 2, 3):
        result = audit_round(p, net.store, r)
        assert result.ok, (r, result.problems, result.differences)
    # The model on chain holds the carried update: a report that claims the plain merge does not rebuild it.
    plain = copy.deepcopy(reports[2])
    plain.strategy = {"name": "fedavg"}
    result = audit_round(p, net.store, 2, report=plain)
    assert not result.ok and ("model CID", p.round(2).new_model_cid, result.recomputed_model_cid) in result.differences


def test_status_shows_a_malformed_merge_gain_as_a_dash():
    """A report is the aggregator's word: a merge gain that is not a number shows as "-", and `dgpt
    status` (and the dashboard) still render the round."""
    from dgpt.status import _merge_gain

    ok = {"marginal_gain": 0.0123, "marginal_gain_se": 0.004, "in_merge": None}
    assert _merge_gain(ok) == "+0.0123 +- 0.0040"
    assert _merge_gain({"marginal_gain": None, "marginal_gain_se": None, "in_merge": {"loss_gain": -0.01, "gain_se": 0.002}}) == "-0.0100 +- 0.0020"
    for bad in ({**ok, "marginal_gain_se": None}, {**ok, "marginal_gain": "1"}, {**ok, "marginal_gain": None, "in_merge": {}},
                {**ok, "marginal_gain": None, "in_merge": [1, 2]}, None):
        assert _merge_gain(bad) == "-"
