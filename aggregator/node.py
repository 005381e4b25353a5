"""The aggregator bot: opens the rounds of its plan, and after each reveal deadline aggregates,
publishes the new model and the report with the rewards root, and slashes what the evidence shows.

`tick()` does at most one step and returns what it did; `run()` repeats it. Every step is recorded
in a journal before the next starts, and each chain write is preceded by a look at the chain, so a
bot killed anywhere (after downloading, after uploading, after sending the publish transaction and
before its receipt) and restarted publishes each round exactly once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from eth_account.signers.local import LocalAccount

from aggregator.round import RoundPolicy, aggregate_round, report_bytes
from dgpt.chain.protocol import Protocol, SlashReason, Status
from dgpt.crash import crashpoint
from dgpt.data import Example
from dgpt.journal import Journal
from dgpt.store import Store
from dgpt.task import TaskSpec


@dataclass
class AggregatorConfig:
    home: Path
    genesis_model: Path  # model file of the first round's base model
    plan: list[TaskSpec]  # the rounds to run, in order
    validation: list[Example]  # the aggregator's own labelled validation set
    policy: RoundPolicy = field(default_factory=RoundPolicy)
    reward_budget: int = 100 * 10**18
    commit_duration: int = 600
    reveal_duration: int = 600


class AggregatorNode:
    def __init__(self, protocol: Protocol, store: Store, account: LocalAccount, cfg: AggregatorConfig, log=print):
        self.protocol, self.store, self.account, self.cfg, self.log = protocol, store, account, cfg, log
        # One journal per aggregator and deployment: a journal never describes rounds of another protocol.
        self.journal = Journal(cfg.home / f"aggregator-{account.address}-{protocol.deployment.protocol}.json")
        self.cache = cfg.home / "cache"
        self.cache.mkdir(parents=True, exist_ok=True)

    def tick(self) -> str:
        p = self.protocol
        rid = p.current_round()
        if rid and not p.round(rid).published:
            info = p.round(rid)
            if p.chain.now() <= info.reveal_deadline:
                return f"round {rid}: waiting for the reveal deadline"
            return self.finish_round(rid)
        if rid and self.journal.round(rid).get("slashes_pending"):
            return self.slash(rid)
        if rid >= len(self.cfg.plan):
            return "plan complete"
        return self.open_round(rid + 1)

    def open_round(self, rid: int) -> str:
        task = self.cfg.plan[rid - 1]
        base_cid = self.protocol.latest_model() or self.store.put_file(self.cfg.genesis_model)
        spec_cid = self.store.put_bytes(task.to_bytes())
        opened = self.protocol.open_round(
            self.account, base_cid, spec_cid, self.cfg.commit_duration, self.cfg.reveal_duration, self.cfg.reward_budget
        )
        self.log(f"round {opened} opened: {task.phase}, base model {base_cid}, task spec {spec_cid}")
        return f"round {opened}: opened"

    def finish_round(self, rid: int) -> str:
        p, j = self.protocol, self.journal.round(rid)
        info = p.round(rid)
        if "new_model_cid" not in j:
            task = TaskSpec.from_bytes(self.store.get_bytes(info.task_spec_cid, max_bytes=1 << 20))
            base_path = self.store.cached(info.base_model_cid, self.cache)
            outcome = aggregate_round(
                p, self.store, rid, base_path, task, self.cfg.validation, self.cfg.policy, info.reward_budget,
                self.cfg.home / "work" / f"round-{rid}", self.log,
            )
            model_cid = self.store.put_file(outcome.new_model_path)
            report_cid = self.store.put_bytes(report_bytes(outcome.report))
            self.store.pin(model_cid)
            self.store.pin(report_cid)
            slashes = outcome.slashes + [{"oracle": o, "reason": "no_reveal", "code": 0, "amount": None} for o in outcome.non_revealers]
            self.journal.record(
                rid, new_model_cid=model_cid, report_cid=report_cid, rewards_root=outcome.tree.root.hex(),
                rewards_total=str(outcome.tree.total), slashes_pending=slashes,
            )
            crashpoint("aggregator:uploaded")
            j = self.journal.round(rid)
        if not p.round(rid).published:  # look first: a publish sent before a crash may have landed
            p.publish(self.account, rid, j["new_model_cid"], j["report_cid"], bytes.fromhex(j["rewards_root"]), int(j["rewards_total"]))
        self.journal.record(rid, published=True)
        self.log(f"round {rid} published: model {j['new_model_cid']}, report {j['report_cid']}")
        return f"round {rid}: published"

    def slash(self, rid: int) -> str:
        pending = self.journal.round(rid)["slashes_pending"]
        s = pending[0]
        sub = self.protocol.submission(rid, s["oracle"])
        if sub.status != Status.SLASHED:  # look first: the slash may have landed before a crash
            if s["reason"] == "no_reveal":
                self.protocol.slash_non_revealer(self.account, rid, s["oracle"])
            else:
                self.protocol.slash(self.account, rid, s["oracle"], SlashReason(s["code"]), int(s["amount"]))
            self.log(f"round {rid}: slashed {s['oracle']} ({s['reason']})")
        self.journal.record(rid, slashes_pending=pending[1:])
        return f"round {rid}: slashed {s['oracle']}"

    def run(self, poll: float = 2.0, until_complete: bool = True) -> None:
        while True:
            state = self.tick()
            if state == "plan complete" and until_complete:
                return
            if "waiting" in state or state == "plan complete":
                time.sleep(poll)
