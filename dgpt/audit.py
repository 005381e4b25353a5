"""`dgpt audit ROUND`: recompute a published (proposed or final) round from public inputs and compare,
field by field. The validators run it on every proposal and attest to the result it recomputes.

Inputs anyone can fetch: the chain's events and round record, the base model, every revealed delta
and the round's validation slice (published with the report, its Merkle root committed in the
task spec before the round opened). The audit runs the aggregator's own pipeline (`dgpt.round`)
on them, with the rules the report states, and compares the recomputed report with the published
one: every submission's checks, verdict, scores, weight and reward, the merged set, the slashes,
and the model CID. It also checks the report against the chain: the round it describes, the
entries and slashes roots and the rewards total published on chain. The pipeline is bit-exact on any
machine, so any difference is a finding.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path

from dgpt.aggregate import Strategy
from dgpt.chain.protocol import Protocol
from dgpt.commitments import Result
from dgpt.dataset import examples_from_bytes, merkle_root
from dgpt.errors import DGPTError
from dgpt.report import Entry, Report
from dgpt.round import RoundPolicy, aggregate_round, context
from dgpt.store import Store
from dgpt.store.unixfs import file_cid
from dgpt.task import TaskSpec

# Every field of a verdict but its prose ("detail" may quote a network error the auditor never saw).
ENTRY_FIELDS = tuple(f.name for f in fields(Entry) if f.name not in ("oracle", "detail"))


@dataclass
class AuditResult:
    round_id: int
    published_model_cid: str
    recomputed_model_cid: str | None
    recomputed_entries_root: str | None = None
    recomputed: Report | None = None  # the recomputed report
    differences: list[tuple[str, object, object]] = field(default_factory=list)  # (what, published, recomputed)
    problems: list[str] = field(default_factory=list)  # what could not be checked, or contradicts the chain

    @property
    def ok(self) -> bool:
        return not self.problems and not self.differences and self.published_model_cid == self.recomputed_model_cid

    def to_json(self) -> dict:
        return {"round": self.round_id, "ok": self.ok, "published": self.published_model_cid, "recomputed": self.recomputed_model_cid,
                "recomputed_entries_root": self.recomputed_entries_root, "problems": self.problems,
                "differences": [{"what": w, "published": plain(p), "recomputed": plain(r)} for w, p, r in self.differences]}


def plain(v):
    """A value as printed or put in JSON: an enum (a Reason) by its value."""
    return v.value if hasattr(v, "value") else v


def compare(published: Report, recomputed: Report) -> list[tuple[str, object, object]]:
    """Every field where the two reports differ."""
    diffs = []
    pub = {e.oracle: e for e in published.submissions}
    rec = {e.oracle: e for e in recomputed.submissions}
    for oracle in sorted(set(pub) | set(rec)):
        if oracle not in pub:
            diffs.append((f"submission {oracle}", "missing from the report", "revealed on chain"))
        elif oracle not in rec:
            diffs.append((f"submission {oracle}", "in the report", "never revealed on chain"))
        else:
            for name in ENTRY_FIELDS:
                a, b = getattr(pub[oracle], name), getattr(rec[oracle], name)
                if a != b:
                    diffs.append((f"{oracle} {name}", a, b))
    for name in ("phase", "base_model_cid", "task_spec_cid", "strategy", "strategy_decisions", "checks", "labels", "merged",
                 "non_revealers", "validation"):
        a, b = getattr(published, name), getattr(recomputed, name)
        if a != b:
            diffs.append((name, a, b))
    a = [e.to_json() for e in published.entries_tree.leaves]
    b = [e.to_json() for e in recomputed.entries_tree.leaves]
    if a != b:
        diffs.append(("entries", a, b))
    a = sorted((s.oracle, s.reason.value) for s in published.slashes)
    b = sorted((s.oracle, s.reason.value) for s in recomputed.slashes)
    if a != b:
        diffs.append(("slashes", a, b))
    return diffs


def audit_round(protocol: Protocol, store: Store, round_id: int, work: Path | None = None, report: Report | None = None) -> AuditResult:
    """Recompute round `round_id`; `report`: audit this report instead of the published one (tests)."""
    info = protocol.round(round_id)
    if not info.published:
        raise DGPTError(f"round {round_id} is not published (it is {info.state})")
    published = report or Report.from_bytes(store.get_bytes(info.report_cid, max_bytes=64 << 20))
    result = AuditResult(round_id, info.new_model_cid, None)
    # The report against the chain.
    if published.round != round_id or published.base_model_cid != info.base_model_cid or published.task_spec_cid != info.task_spec_cid:
        result.problems.append("the report describes another round, base model or task spec than the chain's")
    if published.entries_tree.root != info.entries_root or published.rewards_total != info.rewards_total:
        result.problems.append("the report's entries do not give the entries root and rewards total published on chain")
    if published.slashes_tree.root != info.slashes_root:
        result.problems.append("the report's slashes do not give the slashes root published on chain")
    task = TaskSpec.from_bytes(store.get_bytes(info.task_spec_cid, max_bytes=1 << 20))
    vcid = published.validation.get("cid")
    if not vcid:
        result.problems.append("the report publishes no validation data: the scores cannot be recomputed")
        return result
    validation = examples_from_bytes(store.get_bytes(vcid, max_bytes=256 << 20))
    if merkle_root(validation).hex() != task.validation_root:
        result.problems.append(f"the published validation data {vcid} is not what the task spec committed to before the round")
        return result
    checks = published.checks
    try:  # a strategy, parameter or server learning rate outside the code's bounds is no round
        strategy = Strategy(published.strategy.get("name", ""), {k: v for k, v in published.strategy.items() if k != "name"})
    except ValueError as exc:
        result.problems.append(f"the report's merge strategy is not one this software allows: {exc}")
        return result
    policy = RoundPolicy(
        strategy=strategy,
        max_delta_bytes=checks.get("max_delta_bytes"),
        min_cosine_ratio=checks.get("min_cosine_ratio", 0.5), fetch_seconds=None,
    )
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        tmp = Path(tmp)
        base = tmp / "base.safetensors"
        store.get_file(info.base_model_cid, base)
        ctx = context(protocol, round_id, base, task, validation, policy, tmp / "round", log=lambda *a: None, validation_cid=vcid)
        outcome = aggregate_round(protocol, store, ctx, protocol.oracle_budget(info))
        with open(outcome.new_model_path, "rb") as f:
            result.recomputed_model_cid = str(file_cid(f))
    result.recomputed = outcome.report
    result.recomputed_entries_root = "0x" + outcome.report.entries_tree.root.hex()
    result.differences = compare(published, outcome.report)
    if result.recomputed_model_cid != info.new_model_cid:
        result.differences.append(("model CID", info.new_model_cid, result.recomputed_model_cid))
    return result


def recomputed_result(audit: AuditResult, published_report_cid: str) -> Result | None:
    """The result a validator attests to: the recomputed one. When the audit finds nothing, the
    published report is the recomputed one in every field it compares (its prose and software
    versions aside), so the published report's CID stands for it; otherwise the CID of the
    recomputed report's own bytes. None when nothing could be recomputed."""
    if audit.recomputed is None or audit.recomputed_model_cid is None:
        return None
    report_cid = published_report_cid if audit.ok else str(file_cid(io.BytesIO(audit.recomputed.to_bytes())))
    return audit.recomputed.result(audit.recomputed_model_cid, report_cid)
