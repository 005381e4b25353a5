"""`dgpt status`: rounds (open, proposed, challenged, final, voided, aborted, with the validators'
attestations for and against), oracles, stakes, submissions and rewards, read from the chain; with
a store, the bytes each proposed round's revealed deltas took (from its report)."""

from __future__ import annotations

import json

from dgpt.chain.protocol import TOKEN, Protocol
from dgpt.errors import DGPTError


def _tokens(wei: int) -> str:
    return f"{wei / TOKEN:,.2f}"


def delta_bytes(store, report_cid: str | None) -> int | None:
    """Total size of the revealed deltas the round's report lists (None: no report, or not fetchable)."""
    from dgpt.report import Report

    if store is None or not report_cid:
        return None
    try:
        report = Report.from_bytes(store.get_bytes(report_cid, max_bytes=64 << 20))
    except DGPTError:
        return None
    sizes = [e.delta_bytes for e in report.submissions if e.delta_bytes is not None]
    return sum(sizes) if sizes else None


def status(protocol: Protocol, store=None, as_json: bool = False) -> str:
    oracles = sorted({e["args"]["oracle"] for e in protocol.events("OracleRegistered")})
    rounds = []
    for rid in range(1, protocol.current_round() + 1):
        r = protocol.round(rid)
        subs = {o: protocol.submission(rid, o) for o in oracles}
        rounds.append({
            "round": rid, "state": r.state, "proposals": r.proposals, "attestations": {"agree": r.agree, "disagree": r.disagree},
            "challenge_deadline": r.challenge_deadline, "commit_deadline": r.commit_deadline, "reveal_deadline": r.reveal_deadline,
            "base_model": r.base_model_cid, "new_model": r.new_model_cid, "report": r.report_cid,
            "rewards_total": str(r.rewards_total), "rewards_claimed": str(r.rewards_claimed),
            "submissions": {o: (s.status.name.lower() if s.committed else None) for o, s in subs.items()},
            "delta_bytes": delta_bytes(store, r.report_cid),
        })
    infos = [protocol.oracle(o) for o in oracles]
    data = {
        "protocol": protocol.deployment.protocol, "latest_model": protocol.latest_model(), "rounds": rounds,
        "oracles": [{"address": i.address, "stake": str(i.stake), "unbonding": str(i.unbonding), "examples": i.num_examples,
                     "dataset": i.manifest_cid, "balance": str(protocol.balance_of(i.address))} for i in infos],
    }
    if as_json:
        return json.dumps(data)
    lines = [f"protocol {data['protocol']}   latest model {data['latest_model']}", "", "oracle                                       stake    unbonding  examples    balance"]
    for o in data["oracles"]:
        lines.append(f"{o['address']}  {_tokens(int(o['stake'])):>9}  {_tokens(int(o['unbonding'])):>9}  {o['examples']:>8}  {_tokens(int(o['balance'])):>9}")
    lines += ["", "round  state       attest  rewards  deltas MB   model / submissions"]
    for r in rounds:
        att = f"{r['attestations']['agree']}/{r['attestations']['disagree']}"
        mb = f"{r['delta_bytes'] / 1e6:,.2f}" if r["delta_bytes"] is not None else "-"
        lines.append(f"{r['round']:>5}  {r['state']:<10}  {att:>6}  {_tokens(int(r['rewards_total'])):>7}  {mb:>9}   {r['new_model'] or '-'}")
        for o, s in r["submissions"].items():
            if s:
                lines.append(f"{'':>28}{o} {s}")
    return "\n".join(lines)
