"""`dgpt status`: rounds (open, proposed, challenged, final, voided, aborted, with their deadlines
and the validators' attestations for and against), oracles, stakes and balances, read from the
chain; with a store, each proposed round's verdicts, rewards, delta bytes and what each delta
adds to the merge (from its report).
The same facts as JSON (`--json`, amounts in token base units) or as tables (amounts in DGPT)."""

from __future__ import annotations

import io
import json
import time

from dgpt.chain.protocol import TOKEN, Protocol
from dgpt.errors import DGPTError


def _tokens(wei: int) -> str:
    return f"{wei / TOKEN:,.2f}"


def _report(store, report_cid: str | None, cache: dict | None):
    """The report under `report_cid`; `cache` (CID -> report) spares a poller refetching it: a
    CID's content never changes."""
    from dgpt.report import Report

    if store is None or not report_cid:
        return None
    if cache is not None and report_cid in cache:
        return cache[report_cid]
    try:
        report = Report.from_bytes(store.get_bytes(report_cid, max_bytes=64 << 20))
    except DGPTError:
        return None
    if cache is not None:
        cache[report_cid] = report
    return report


def delta_bytes(report) -> int | None:
    """Total size of the revealed deltas the round's report lists (None: no report, or no sizes)."""
    sizes = [e.delta_bytes for e in report.submissions if e.delta_bytes is not None] if report else []
    return sum(sizes) if sizes else None


def _merge_gain(v: dict | None) -> str:
    """What a delta adds to the merge's validation L2 (its leave-one-out marginal when merged, or
    where a delta harmful alone was judged again in the merge, that), with the paired se. The
    report is the aggregator's word: a value that is not a number shows as "-", never a crash."""
    if v is None:
        return "-"
    judged = v["in_merge"] if isinstance(v["in_merge"], dict) else {}
    g, se = (v["marginal_gain"], v["marginal_gain_se"]) if v["marginal_gain"] is not None else (judged.get("loss_gain"), judged.get("gain_se"))
    if not all(isinstance(x, (int, float)) for x in (g, se)):
        return "-"
    return f"{g:+.4f} +- {se:.4f}"  # "+-" as in the roles' logs (round.describe)


def status_data(protocol: Protocol, store=None, reports: dict | None = None) -> dict:
    oracles = sorted({e["args"]["oracle"] for e in protocol.events("OracleRegistered")})
    rounds = []
    for rid in range(1, protocol.current_round() + 1):
        r = protocol.round(rid)
        subs = {o: protocol.submission(rid, o) for o in oracles}
        report = _report(store, r.report_cid, reports)
        rounds.append({
            "round": rid, "state": r.state, "proposals": r.proposals, "attestations": {"agree": r.agree, "disagree": r.disagree},
            "challenge_deadline": r.challenge_deadline, "commit_deadline": r.commit_deadline, "reveal_deadline": r.reveal_deadline,
            "base_model": r.base_model_cid, "new_model": r.new_model_cid, "report": r.report_cid,
            "rewards_total": str(r.rewards_total), "rewards_claimed": str(r.rewards_claimed),
            "submissions": {o: (s.status.name.lower() if s.committed else None) for o, s in subs.items()},
            "delta_bytes": delta_bytes(report),
            "validation": {k: report.validation.get(k) for k in ("n", "before", "after")} if report else None,
            "verdicts": {e.oracle: {"accepted": e.accepted, "reason": e.reason.value if e.reason else None, "weight": e.weight,
                                    "reward": str(e.reward), "loss_gain": e.loss_gain, "accuracy_gain": e.accuracy_gain,
                                    "contribution": e.contribution, "duplicate_of": e.duplicate_of,
                                    "marginal_gain": e.marginal_gain, "marginal_gain_se": e.marginal_gain_se, "in_merge": e.in_merge}
                         for e in report.submissions} if report else None,
        })
    infos = [protocol.oracle(o) for o in oracles]
    return {
        "protocol": protocol.deployment.protocol, "latest_model": protocol.latest_model(), "rounds": rounds,
        "oracles": [{"address": i.address, "stake": str(i.stake), "unbonding": str(i.unbonding), "examples": i.num_examples,
                     "dataset": i.manifest_cid, "balance": str(protocol.balance_of(i.address))} for i in infos],
    }


def _when(ts: int) -> str:
    return time.strftime("%m-%d %H:%M:%S", time.gmtime(ts)) if ts else "-"


def render(data: dict, width: int = 200) -> str:
    """The status as terminal tables (rich), amounts in DGPT, times in UTC."""
    from functools import partial

    from rich import box
    from rich.console import Console
    from rich.table import Table as RichTable

    Table = partial(RichTable, box=box.SIMPLE_HEAD, title_justify="left")

    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, color_system=None)
    console.print(f"protocol {data['protocol']}   latest model {data['latest_model'] or '-'}")
    oracles = Table(title="oracles (DGPT)")
    for col in ("oracle", "stake", "unbonding", "examples", "balance", "earned"):
        oracles.add_column(col, justify="left" if col == "oracle" else "right")
    earned = {o["address"]: 0 for o in data["oracles"]}
    for r in data["rounds"]:
        for o, v in (r["verdicts"] or {}).items():
            if r["state"] == "final":
                earned[o] = earned.get(o, 0) + int(v["reward"])
    for o in data["oracles"]:
        oracles.add_row(o["address"], _tokens(int(o["stake"])), _tokens(int(o["unbonding"])), str(o["examples"]),
                        _tokens(int(o["balance"])), _tokens(earned.get(o["address"], 0)))
    console.print(oracles)
    rounds = Table(title="rounds (UTC deadlines, DGPT)")
    for col in ("round", "state", "commit by", "reveal by", "challenge by", "for/against", "rewards", "deltas MB", "model"):
        # a CID is shown whole (folded, never cut): anyone fetches it and checks it
        rounds.add_column(col, justify="right" if col in ("round", "rewards", "deltas MB") else "left", overflow="fold" if col == "model" else "ellipsis")
    for r in data["rounds"]:
        mb = f"{r['delta_bytes'] / 1e6:,.2f}" if r["delta_bytes"] is not None else "-"
        rounds.add_row(str(r["round"]), r["state"], _when(r["commit_deadline"]), _when(r["reveal_deadline"]), _when(r["challenge_deadline"]),
                       f"{r['attestations']['agree']}/{r['attestations']['disagree']}", _tokens(int(r["rewards_total"])), mb, r["new_model"] or "-")
    console.print(rounds)
    subs = Table(title="submissions (DGPT)")
    for col in ("round", "oracle", "on chain", "verdict", "weight", "merge L2 gain", "reward"):
        subs.add_column(col, justify="right" if col in ("round", "weight", "merge L2 gain", "reward") else "left")
    for r in data["rounds"]:
        for o, s in r["submissions"].items():
            if not s:
                continue
            v = (r["verdicts"] or {}).get(o)
            verdict = "-" if v is None else ("merged" if v["accepted"] and int(v["reward"]) else (v["reason"] or "accepted"))
            subs.add_row(str(r["round"]), o, s, verdict, str(v["weight"]) if v else "-", _merge_gain(v), _tokens(int(v["reward"])) if v else "-")
    console.print(subs)
    return out.getvalue().rstrip()


def status(protocol: Protocol, store=None, as_json: bool = False) -> str:
    data = status_data(protocol, store)
    return json.dumps(data) if as_json else render(data)
