"""The aggregator bot: opens the rounds of its plan; after each reveal deadline aggregates and
publishes (proposes) the new model and the report with its entries and slashes roots, backed by its
bond; once the challenge window is over finalizes the round, then executes the slashes the evidence
shows.

`tick()` does at most one step and returns what it did; `run()` repeats it. Every step is recorded
in a journal before the next starts, and each chain write is preceded by a look at the chain, so a
bot killed anywhere (after downloading, after uploading, after sending the publish transaction and
before its receipt) and restarted publishes each round exactly once. A proposal of its own that
was voided is not proposed again unchanged: the round is left to a corrected proposal or to abort.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from eth_account.signers.local import LocalAccount

from dgpt.round import RoundPolicy, Scorer, aggregate_round, context
from dgpt.chain.protocol import Protocol, Status
from dgpt.commitments import Result
from dgpt.crash import crashpoint
from dgpt.data import Example
from dgpt.dataset import examples_bytes, merkle_root, slices_root, validation_slices
from dgpt.errors import DGPTError
from dgpt.chain.client import ContractRevert
from dgpt.node import Action, Node, Step, at, decided_elsewhere
from dgpt.progress import rate
from dgpt.report import Reason, Report, Slash
from dgpt.store import Store
from dgpt.task import TaskSpec


@dataclass
class AggregatorConfig:
    home: Path
    genesis_model: Path  # model file of the first round's base model
    plan: list[TaskSpec]  # the rounds to run, in order
    validation: list[Example]  # the aggregator's labelled validation set: one fresh slice per round, published with its report
    policy: RoundPolicy = field(default_factory=RoundPolicy)
    reward_budget: int = 100 * 10**18
    commit_duration: int = 600
    reveal_duration: int = 600
    scorer: Scorer | None = None  # how a model is scored on the validation set (None: StateScorer; the simulator memoises it)


class AggregatorNode(Node):
    role = "aggregator"

    def __init__(self, protocol: Protocol, store: Store, account: LocalAccount, cfg: AggregatorConfig, log=print):
        super().__init__(protocol, store, account, cfg.home, log)
        self.cfg = cfg
        self.slices = validation_slices(cfg.validation, [t.phase for t in cfg.plan])
        self._quorum: int | None = None
        self.plan_root = slices_root(self.slices).hex()

    def tick(self) -> Step:
        p = self.protocol
        rid = p.current_round()
        info = p.round(rid) if rid else None
        if info and not info.final and not info.aborted:
            now = p.chain.now()
            if now <= info.reveal_deadline:
                return Step(Action.WAITING, rid, f"for the reveal deadline, {at(info.reveal_deadline)}", info.reveal_deadline)
            if info.proposed:
                if now <= info.challenge_deadline and info.disagree < self.quorum:
                    return Step(Action.WAITING, rid, f"for the challenge window to close at {at(info.challenge_deadline)}", info.challenge_deadline)
                try:
                    p.finalize(self.account, rid)
                except ContractRevert as exc:  # a validator or anyone finalized it first
                    if not decided_elsewhere(exc):
                        raise
                after = p.round(rid)
                self.log(f"round {rid}: {after.state} (proposal {after.proposals}: {info.agree} agreeing, {info.disagree} disagreeing attestations)")
                return Step(Action.FINALIZED if after.final else Action.VOIDED, rid, after.state)
            if now > info.publish_deadline:
                p.abort_round(self.account, rid)
                self.log(f"round {rid}: aborted (no final proposal within the publish window)")
                return Step(Action.ABORTED, rid)
            if info.voided_at and self.journal.round(rid).get("result_hash") == self._voided_hash(rid, info.proposals):
                return Step(Action.WAITING, rid, "own proposal voided: waiting for a corrected one or the abort")
            return self.finish_round(rid)
        if rid and self.journal.round(rid).get("slashes_pending"):
            return self.slash(rid)
        if rid >= len(self.cfg.plan):
            return Step(Action.DONE, detail="plan complete")
        return self.open_round(rid + 1)

    def finished(self, step: Step) -> bool:
        return step.action is Action.DONE

    @property
    def quorum(self) -> int:
        if self._quorum is None:
            m = self.protocol.contract.functions.validatorQuorum().call()
            self._quorum = m if m else 1 << 30
        return self._quorum

    def _voided_hash(self, rid: int, proposal: int) -> str:
        return self.protocol.settlement(rid, proposal)[0].hex() if proposal else ""

    def ensure_bond(self, required: int) -> None:
        """Top the bond up to what the publish locks, from the aggregator's own balance."""
        amount, locked = self.protocol.bond(self.account.address)
        short = required - (amount - locked)
        if short <= 0:
            return
        balance = self.protocol.balance_of(self.account.address)
        if balance < short:
            raise DGPTError(f"publishing locks a bond of {required / 10**18:g} DGPT; {self.account.address} has "
                            f"{(amount - locked) / 10**18:g} DGPT free in its bond and {balance / 10**18:g} DGPT to add: send it DGPT")
        self.protocol.deposit_bond(self.account, short)
        self.log(f"bond topped up by {short / 10**18:g} DGPT")

    def open_round(self, rid: int) -> Step:
        # The task spec commits to this round's validation slice (and to every round's) before it opens.
        task = replace(self.cfg.plan[rid - 1], validation_root=merkle_root(self.slices[rid - 1]).hex(),
                       validation_plan_root=self.plan_root)
        base_cid = self.protocol.latest_model() or self.store.put_file(self.cfg.genesis_model)
        spec_cid = self.store.put_bytes(task.to_bytes())
        opened = self.protocol.open_round(
            self.account, base_cid, spec_cid, self.cfg.commit_duration, self.cfg.reveal_duration, self.cfg.reward_budget
        )
        self.log(f"round {opened} opened: {task.phase}, base model {base_cid}, task spec {spec_cid}")
        return Step(Action.OPENED, opened)

    def finish_round(self, rid: int) -> Step:
        p, j = self.protocol, self.journal.round(rid)
        info = p.round(rid)
        if "new_model_cid" not in j:
            task = TaskSpec.from_bytes(self.store.get_bytes(info.task_spec_cid, max_bytes=1 << 20))
            base_path = self.store.cached(info.base_model_cid, self.cache)
            validation = self.slices[rid - 1]
            if merkle_root(validation).hex() != task.validation_root:
                raise DGPTError(f"round {rid}: the validation set is not the one this round's task spec commits to")
            validation_cid = self.store.put_bytes(examples_bytes(validation))  # published with the report
            self.store.pin(validation_cid)
            ctx = context(p, rid, base_path, task, validation, self.cfg.policy,
                          self.cfg.home / "work" / f"round-{rid}", self.cfg.scorer, self.log, validation_cid)
            outcome = aggregate_round(p, self.store, ctx, p.oracle_budget(info))
            t0 = time.monotonic()
            report, model_cid = self.propose(rid, outcome.report, self.store.put_file(outcome.new_model_path))
            self.log(f"round {rid}: new model uploaded, {rate(outcome.new_model_path.stat().st_size, time.monotonic() - t0)}")
            report_cid = self.store.put_bytes(report.to_bytes())
            self.store.pin(model_cid)
            self.store.pin(report_cid)
            tree = report.slashes_tree
            pending = [{**s.to_json(), "proof": [] if s.reason is Reason.NO_REVEAL else
                        [h.hex() for h in tree.proof(s.oracle, s.reason.slash_reason)]} for s in report.slashes]
            result = report.result(model_cid, report_cid)
            self.journal.record(rid, new_model_cid=model_cid, report_cid=report_cid, result=result.to_json(),
                                result_hash=result.hash(rid).hex(), slashes_pending=pending)
            crashpoint("aggregator:uploaded")
            j = self.journal.round(rid)
        if not p.round(rid).published:  # look first: a publish sent before a crash may have landed
            result = Result.from_json(j["result"])
            self.ensure_bond(p.publish_bond_for(info.reward_budget, result.slash_count))
            p.publish(self.account, rid, result)
        self.journal.record(rid, published=True)
        self.log(f"round {rid} published: model {j['new_model_cid']}, report {j['report_cid']}; final after the challenge window")
        return Step(Action.PUBLISHED, rid, j["new_model_cid"])

    def propose(self, rid: int, report: Report, model_cid: str) -> tuple[Report, str]:
        """What this node proposes for the round: the pipeline's report and model, unchanged. (The
        dispute benchmark's dishonest aggregators override it; the validators and challengers
        must catch each of them.)"""
        return report, model_cid

    def slash(self, rid: int) -> Step:
        pending = self.journal.round(rid)["slashes_pending"]
        s, proof = Slash.from_json(pending[0]), [bytes.fromhex(h) for h in pending[0]["proof"]]
        sub = self.protocol.submission(rid, s.oracle)
        if s.reason is not Reason.NO_REVEAL and not self.protocol.round(rid).final:  # an aborted round slashes nothing
            self.journal.record(rid, slashes_pending=pending[1:])
            return Step(Action.WAITING, rid, f"no slash of {s.oracle}: the round has no final result")
        if sub.status != Status.SLASHED:  # look first: the slash may have landed before a crash
            if s.reason is Reason.NO_REVEAL:
                self.protocol.slash_non_revealer(self.account, rid, s.oracle)
            else:
                self.protocol.slash(self.account, rid, s.oracle, s.reason.slash_reason, proof)
            self.log(f"round {rid}: slashed {s.oracle} ({s.reason.value})")
        self.journal.record(rid, slashes_pending=pending[1:])
        return Step(Action.SLASHED, rid, s.oracle)
