"""The validator daemon: for each proposed round, recompute it from public inputs (`dgpt audit`)
and attest on chain to the hash of the result it recomputed; finalize rounds whose challenge window
is over; settle its attestations once their proposals are decided (paid, or penalised).

A quorum of agreeing attestations makes a proposal final; a quorum of disagreeing ones voids it and
slashes the aggregator's bond. `tick()` does at most one step; the journal records each
attestation before the next step, and each chain write is preceded by a look at the chain, so a
restarted validator never attests twice and settles every attestation it made.
"""

from __future__ import annotations

from pathlib import Path

from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from dgpt.audit import audit_round, recomputed_result
from dgpt.chain.protocol import Outcome, Protocol
from dgpt.errors import DGPTError
from dgpt.chain.client import ContractRevert
from dgpt.node import Action, Node, Step, at, decided_elsewhere
from dgpt.store import Store


class ValidatorNode(Node):
    role = "validator"

    def __init__(self, protocol: Protocol, store: Store, account: LocalAccount, home: Path, log=print, rounds: int | None = None):
        super().__init__(protocol, store, account, home, log)
        self.work = Path(home) / "work"
        self.rounds = rounds  # the run loop stops once this many rounds are final and settled (None: never)

    def tick(self) -> Step:
        p = self.protocol
        settled = self.settle()
        if settled:
            return settled
        rid = p.current_round()
        if rid == 0:
            return Step(Action.WAITING, 0, "for a round")
        info = p.round(rid)
        if not info.proposed:
            return Step(Action.DONE if info.final else Action.WAITING, rid, info.state)
        me = self.account.address
        now = p.chain.now()
        key = f"{info.proposals}"
        attested = self.journal.round(rid).get("attested", {})
        if now <= info.challenge_deadline and key not in attested:
            if p.attestation(rid, info.proposals, me) == bytes(32):  # look first: an attestation sent before a crash may have landed
                h, agrees, detail = self.recompute(rid, info)
                try:
                    p.attest(self.account, rid, h)
                    self.log(f"round {rid}: attested {'to' if agrees else 'against'} proposal {info.proposals} ({detail})")
                except ContractRevert as exc:
                    if not decided_elsewhere(exc):
                        raise
                    self.log(f"round {rid}: proposal {info.proposals} was decided before this attestation ({exc.error})")
            self.journal.record(rid, attested={**attested, key: True})
            return Step(Action.ATTESTED, rid, f"proposal {info.proposals}")
        m = p.contract.functions.validatorQuorum().call()
        if now > info.challenge_deadline or (m and info.disagree >= m):
            try:
                p.finalize(self.account, rid)
            except ContractRevert as exc:
                if not decided_elsewhere(exc):
                    raise
            return Step(Action.FINALIZED, rid, p.round(rid).state)
        return Step(Action.WAITING, rid, f"for the challenge window to close at {at(info.challenge_deadline)}", info.challenge_deadline)

    def recompute(self, rid: int, info) -> tuple[bytes, bool, str]:
        """The hash of the result recomputed for the live proposal, whether it is the proposed one, and why."""
        self.work.mkdir(parents=True, exist_ok=True)
        why = ""
        try:
            audit = audit_round(self.protocol, self.store, rid, self.work)
        except DGPTError as exc:  # unfetchable or unreadable inputs: the proposal cannot be borne out
            audit, why = None, f"cannot recompute: {exc}"
        result = recomputed_result(audit, info.report_cid) if audit else None
        if result is None:
            # Nothing recomputable agrees with the proposal: attest to a hash that says so.
            return keccak(b"dgpt: not recomputable" + info.result_hash), False, why or "; ".join(audit.problems)
        h = result.hash(rid)
        if h == info.result_hash:
            return h, True, "recomputed bit for bit"
        first = audit.problems[:1] or [f"{w}: published {p!r}, recomputed {r!r}" for w, p, r in audit.differences[:1]]
        return h, False, "; ".join(first) or "the on-chain result differs from the report"

    def settle(self) -> Step | None:
        """Settle each attestation whose proposal is decided."""
        me = self.account.address
        for key, j in sorted(self.journal.data.get("rounds", {}).items(), key=lambda kv: int(kv[0])):
            rid = int(key)
            for proposal in sorted(int(k) for k in j.get("attested", {})):
                if str(proposal) in j.get("settled", {}):
                    continue
                _, outcome, _ = self.protocol.settlement(rid, proposal)
                if outcome is Outcome.PENDING:
                    continue
                if self.protocol.attestation(rid, proposal, me) != bytes(32):
                    before = self.protocol.balance_of(me)
                    self.protocol.settle_attestation(self.account, rid, proposal, me)
                    paid = self.protocol.balance_of(me) - before
                    self.log(f"round {rid}: proposal {proposal} {outcome.name.lower()}; attestation settled, paid {paid / 10**18:g} DGPT")
                self.journal.record(rid, settled={**j.get("settled", {}), str(proposal): outcome.name.lower()})
                return Step(Action.SETTLED, rid, outcome.name.lower())
        return None

    def finished(self, step: Step) -> bool:
        if self.rounds is None or step.action is not Action.DONE:
            return False
        final = [int(k) for k, j in self.journal.data.get("rounds", {}).items() if j.get("settled")]
        return len(final) >= self.rounds
