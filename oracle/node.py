"""The oracle operator's daemon: follows the rounds and submits a delta trained on its own data.

For each open round: fetch the base model and the task spec by CID (verified), fine-tune on the
oracle's data with the worker, compute the delta's CID offline and commit to it; after the commit
deadline, put the delta in the store and reveal; once the round is final, claim the reward.
The delta reaches the store only once commits are closed: a copier watching the store cannot
commit to another oracle's delta (and the commitment binds the oracle's address, so a revealed CID
cannot be reused either). `tick()` does at most one step; `run()`
repeats it. The journal records the salt and delta CID before the commit is sent, and every chain
write is preceded by a look at the chain, so a restart never commits twice, reveals with the salt
it committed, and never misses a reveal it could still make.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from dgpt.chain.protocol import Protocol, Status
from dgpt.commitments import commit_hash
from dgpt.crash import crashpoint
from dgpt.data import Example
from dgpt import tensorfile
from dgpt.delta import compute_delta, save_with_feedback
from dgpt.encoding import Encoding
from dgpt.errors import DGPTError
from dgpt.model import load_model, state_dict
from dgpt.progress import rate
from dgpt.node import Action, Node, Step, at
from dgpt.report import Report
from dgpt.store import Store
from dgpt.store.unixfs import file_cid
from dgpt.task import TaskSpec
from dgpt.train import TrainOptions, attach_head, train


@dataclass
class OracleConfig:
    home: Path
    examples: list[Example]  # the oracle's own labelled data, as committed on chain
    device: str = "cpu"


class OracleNode(Node):
    role = "oracle"

    def __init__(self, protocol: Protocol, store: Store, account: LocalAccount, cfg: OracleConfig, log=print, rounds: int | None = None):
        super().__init__(protocol, store, account, cfg.home, log)
        self.cfg = cfg
        self.rounds = rounds  # the run loop stops once this many rounds are settled (None: never)

    def tick(self) -> Step:
        p = self.protocol
        rid = p.current_round()
        info = p.round(rid) if rid else None  # read once per tick: the claims and the round's step share it
        claimed = self.claim_rewards({rid: info} if rid else {})
        if claimed:
            return claimed
        if rid == 0:
            return Step(Action.WAITING, 0, "for a round")
        j = self.journal.round(rid)
        if info.final:
            return Step(Action.DONE, rid, "final and settled")
        now = p.chain.now()
        me = self.account.address
        if now <= info.commit_deadline:
            if "delta_cid" not in j:
                return self.prepare(rid, info)
            if not j.get("committed"):
                if not p.submission(rid, me).committed:  # look first: a commit sent before a crash may have landed
                    p.commit(self.account, rid, bytes.fromhex(j["commit_hash"]))
                self.journal.record(rid, committed=True)
                self.log(f"round {rid}: committed to {j['delta_cid']}")
                return Step(Action.COMMITTED, rid, j["delta_cid"])
            return Step(Action.WAITING, rid, f"for the reveal window, opening after {at(info.commit_deadline)}", info.commit_deadline + 1)
        if now <= info.reveal_deadline and j.get("committed") and not j.get("revealed"):
            if p.submission(rid, me).status == Status.COMMITTED:
                self.reveal(rid, j)
            self.journal.record(rid, revealed=True)
            self.log(f"round {rid}: revealed {j['delta_cid']}")
            return Step(Action.REVEALED, rid, j["delta_cid"])
        return Step(Action.WAITING, rid, f"for the aggregator (reveals close at {at(info.reveal_deadline)})", info.reveal_deadline)

    def settled(self) -> int:
        """Rounds whose reward is claimed (or that had nothing to claim)."""
        return sum(1 for j in self.journal.data.get("rounds", {}).values() if j.get("claimed"))

    def finished(self, step: Step) -> bool:
        return self.rounds is not None and self.settled() >= self.rounds

    def reveal(self, rid: int, j: dict) -> None:
        """Publish the delta in the store (idempotent), then reveal what was committed."""
        t0 = time.monotonic()
        if self.store.put_file(j["delta_path"]) != j["delta_cid"]:
            raise DGPTError(f"round {rid}: {j['delta_path']} no longer has the committed CID {j['delta_cid']}")
        self.log(f"round {rid}: delta uploaded, {rate(Path(j['delta_path']).stat().st_size, time.monotonic() - t0)}")
        self.store.pin(j["delta_cid"])
        crashpoint("oracle:stored")
        self.protocol.reveal(self.account, rid, j["delta_cid"], bytes.fromhex(j["salt"]), j["num_examples"])

    def prepare(self, rid: int, info) -> Step:
        """Train the round's delta, compute its CID offline and journal the commitment to send."""
        delta_path, num_examples = self.make_delta(rid, info)
        with open(delta_path, "rb") as f:
            delta_cid = str(file_cid(f))  # offline: nothing is published before the commit closes
        salt = secrets.token_bytes(32)
        h = commit_hash(rid, self.account.address, delta_cid, salt, num_examples)
        # Salt and CID are journaled before the commit is sent: a restart reveals with them.
        self.journal.record(rid, delta_cid=delta_cid, delta_path=str(delta_path), salt=salt.hex(), num_examples=num_examples, commit_hash=h.hex())
        return Step(Action.PREPARED, rid, delta_cid)

    def make_delta(self, rid: int, info) -> tuple[Path, int]:
        """Train on the round's base model and write the delta file; returns it and the example count."""
        task = TaskSpec.from_bytes(self.store.get_bytes(info.task_spec_cid, max_bytes=1 << 20))
        t0, fetched = time.monotonic(), []
        base_path = self.store.cached(info.base_model_cid, self.cache, progress=fetched.append)  # verified against the CID
        if fetched:  # not already in the cache
            self.log(f"round {rid}: base model fetched, {rate(sum(fetched), time.monotonic() - t0)}")
        bundle = load_model(base_path)
        fresh_head = attach_head(bundle, task)  # the delta's head is then what training changed
        base = {k: v.clone() for k, v in state_dict(bundle.model).items()}
        examples = self.cfg.examples if task.phase == "finetune" else [Example(e.text) for e in self.cfg.examples]
        self.log(f"round {rid}: training ({task.phase}) on {len(examples)} examples")
        self.fit(bundle, task, examples)
        crashpoint("oracle:trained")
        delta_path = self.cache / f"delta-round-{rid}.safetensors"
        tuned = state_dict(bundle.model)
        enc = Encoding.of(task)
        # error feedback: send what the last lossy round left out, keep what this one leaves out
        left_out = save_with_feedback(delta_path, compute_delta(base, tuned), self._last_residual(rid) if enc.lossy else {},
                                      {k: tuple(v.shape) for k, v in tuned.items()}, enc, num_examples=len(examples),
                                      base_model_cid=info.base_model_cid, task_spec_cid=info.task_spec_cid, labels=bundle.labels,
                                      head_seed=task.seed if fresh_head else None)
        if enc.lossy:
            tensorfile.save(self.cache / f"residual-round-{rid}.safetensors", left_out, {})
        return delta_path, len(examples)

    def _last_residual(self, rid: int) -> dict:
        """The residual of the latest earlier round this oracle prepared (per round, so that a
        restart preparing round `rid` again reads the same one)."""
        earlier = sorted((int(p.stem.rsplit("-", 1)[1]), p) for p in self.cache.glob("residual-round-*.safetensors"))
        earlier = [p for r, p in earlier if r < rid]
        return tensorfile.load(earlier[-1]) if earlier else {}

    def fit(self, bundle, task: TaskSpec, examples: list[Example]) -> None:
        """The worker's training, in place on `bundle`."""
        # Progress every 50 steps: training is the longest silence of a round.
        train(bundle, task, examples, TrainOptions(device=self.cfg.device, log_every=50), log=self.log)

    def settle(self, rid: int, info) -> tuple[int, str]:
        """Claim this key's reward of a final round from its report's entries tree, unless already
        claimed; returns (reward, what happened)."""
        me = self.account.address
        report = Report.from_bytes(self.store.get_bytes(info.report_cid, max_bytes=64 << 20))
        tree = report.entries_tree
        if tree.root != info.entries_root:
            return 0, "the report's entries do not give the final entries root; not claiming"
        entry = tree.of(me)
        amount = entry.reward if entry else 0
        if not amount:
            why = report.entry(me)
            return 0, "nothing to claim" + (f" ({why.reason.value}: {why.detail})" if why and why.reason else "")
        if self.protocol.is_claimed(rid, entry.index):
            return amount, f"{amount / 10**18:g} DGPT already claimed"
        self.protocol.claim(self.account, rid, entry, tree.proof(entry.index))
        return amount, f"claimed {amount / 10**18:g} DGPT"

    def claim_from_chain(self) -> list[tuple[int, int, str]]:
        """Every round this key revealed in, found on the chain (not in a journal, so any machine
        with the key can claim): claims what final rounds owe it. Returns (round, reward, note)."""
        out = []
        for rid in sorted({e["args"]["roundId"] for e in self.protocol.events("Revealed", oracle=self.account.address)}):
            info = self.protocol.round(rid)
            if not info.final:
                out.append((rid, 0, f"not final yet ({info.state})"))
                continue
            amount, note = self.settle(rid, info)
            self.journal.record(rid, claimed=True, reward=str(amount))
            out.append((rid, amount, note))
        return out

    def claim_rewards(self, known: dict | None = None) -> Step | None:
        """Settle every final round in the journal: claim the reward if this oracle revealed
        (checking the chain, since a reveal sent just before a crash may have landed after the
        window closed), else record that there is nothing to claim. `known`: round records already read."""
        me = self.account.address
        for key, j in sorted(self.journal.data.get("rounds", {}).items(), key=lambda kv: int(kv[0])):
            rid = int(key)
            if j.get("claimed"):
                continue
            info = (known or {}).get(rid) or self.protocol.round(rid)
            if not info.final:
                continue
            if j.get("committed") and not j.get("revealed") and self.protocol.submission(rid, me).status != Status.COMMITTED:
                self.journal.record(rid, revealed=True)
            if not j.get("revealed"):
                self.journal.record(rid, claimed=True, reward="0")
                return Step(Action.CLAIMED, rid, "nothing to claim")
            amount, note = self.settle(rid, info)
            self.journal.record(rid, claimed=True, reward=str(amount))
            self.log(f"round {rid}: {note}")
            return Step(Action.CLAIMED, rid, str(amount))
        return None
