"""`dgpt audit ROUND`: recompute a published round from its report and the chain.

It fetches the report by the CID published on chain, checks that the report describes this round
(base model, task spec, rewards root and total as published), fetches the base model and every
merged delta by CID (verified), merges them again with the strategy and weights the report gives,
and compares the CID of the result with the published model CID.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dgpt.aggregate import Strategy, build_model
from dgpt.chain.protocol import Protocol
from dgpt.cid import cid_from_bytes
from dgpt.errors import DGPTError
from dgpt.report import Report
from dgpt.rules import merge_weights
from dgpt.store import Store
from dgpt.store.unixfs import file_cid


@dataclass
class AuditResult:
    round_id: int
    published_model_cid: str
    recomputed_model_cid: str | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.published_model_cid == self.recomputed_model_cid


def audit_round(protocol: Protocol, store: Store, round_id: int, work: Path | None = None) -> AuditResult:
    info = protocol.round(round_id)
    if not info.published:
        raise DGPTError(f"round {round_id} is not published yet")
    report = Report.from_bytes(store.get_bytes(info.report_cid, max_bytes=64 << 20))
    result = AuditResult(round_id, info.new_model_cid, None)
    if report.round != round_id or report.base_model_cid != info.base_model_cid:
        result.problems.append("the report describes another round or base model")
    if report.task_spec_cid != info.task_spec_cid:
        result.problems.append("the report's task spec differs from the round's")
    if report.rewards_root != info.rewards_root or report.rewards_total != info.rewards_total:
        result.problems.append("the report's rewards do not give the published rewards root and total")
    revealed = {e["args"]["oracle"]: e["args"] for e in protocol.events("Revealed", roundId=round_id)}
    subs = {s.oracle: s for s in report.submissions}
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        tmp = Path(tmp)
        base = tmp / "base.safetensors"
        store.get_file(info.base_model_cid, base)
        paths, weights, norms = [], [], []
        accepted = [o for o in sorted(subs) if subs[o].accepted]
        # The weights follow from the revealed counts on chain (capped relative to the round's median).
        counts = [revealed[o]["numExamples"] if o in revealed else 0 for o in accepted]
        expected_weight = dict(zip(accepted, merge_weights(counts)))
        for oracle in accepted:
            s = subs[oracle]
            if oracle not in revealed or cid_from_bytes(revealed[oracle]["deltaCid"]) != s.delta_cid:
                result.problems.append(f"{oracle}: the report's delta is not what the oracle revealed")
                continue
            if s.weight != expected_weight[oracle]:
                result.problems.append(f"{oracle}: merge weight {s.weight}, but its revealed count {revealed[oracle]['numExamples']} "
                                       f"gives {expected_weight[oracle]}")
            path = tmp / f"{s.delta_cid}.safetensors"
            store.get_file(s.delta_cid, path)
            paths.append(path)
            weights.append(float(s.weight))
            norms.append(float(s.norm))
        params = {k: v for k, v in report.strategy.items() if k != "name"}
        out = tmp / "model.safetensors"
        build_model(base, paths, weights, Strategy(report.strategy["name"], params), norms, tuple(report.labels), out)
        with open(out, "rb") as f:
            result.recomputed_model_cid = file_cid(f).encode()
    if result.recomputed_model_cid != info.new_model_cid:
        result.problems.append(f"recomputed model {result.recomputed_model_cid} differs from the published {info.new_model_cid}")
    return result
