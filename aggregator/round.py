"""One round's aggregation: collect the revealed deltas, check each, score the survivors on the
aggregator's own validation set, merge, and write the new model and the report.

Deterministic: submissions are taken in oracle-address order, training-free evaluation runs on
the CPU in fp32, and the merge is the core's `build_model`, so the same inputs give the same model
bytes and CID, which `dgpt audit` recomputes from the report.
"""

from __future__ import annotations

import json
import platform
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

import dgpt
from dgpt.aggregate import Strategy, build_model, cosine_to_median
from dgpt.chain.protocol import Protocol
from dgpt.cid import cid_from_bytes
from dgpt.commitments import RewardsTree
from dgpt.crash import crashpoint
from dgpt.data import Example
from dgpt.delta import apply_delta
from dgpt.errors import DGPTError
from dgpt.model import bundle_from_state, hidden_size, read_state
from dgpt.store import ContentTooLarge, Store
from dgpt.task import TaskSpec
from dgpt.train import evaluate
from dgpt.verify import MALFORMED, check_delta, data_digest

SLASHED_REASONS = {"malformed": 1, "non_finite": 2, "norm_out_of_bound": 3}  # SlashReason codes


@dataclass
class RoundPolicy:
    """The aggregator operator's rules for a round."""

    strategy: Strategy = field(default_factory=Strategy)
    max_delta_bytes: int | None = None  # None: twice the base model's file size, plus 1 MiB
    # A delta is merged only if, applied alone, it lowers the validation loss by more than this:
    # a harmful or a free-riding (zero) update is rejected and unpaid, but not slashed.
    min_gain: float = 0.0
    # With at least 3 valid deltas, one whose cosine similarity to their coordinate-wise median is
    # below this fraction of the round's median cosine (and any negative one) does not point where
    # the majority points: a sign flip (negative), noise (near zero). Rejected, unpaid, not slashed.
    # Relative, because how well honest deltas agree depends on the model, the data and the steps.
    min_cosine_ratio: float = 0.5
    slash_amount: int = 50 * 10**18
    device: str = "cpu"


@dataclass
class RoundOutcome:
    new_model_path: Path
    report: dict
    tree: RewardsTree
    slashes: list[dict]  # {"oracle", "reason", "code", "amount"}
    non_revealers: list[str]


def _loss(metrics: dict, task: TaskSpec) -> float:
    """The score a delta must improve: L2 when fine-tuning (L1 is only the auxiliary objective, and
    scoring on L3 let a label-flipping oracle buy acceptance with language-modelling gains: seen in
    the Byzantine harness), L1 when pre-training."""
    return metrics["l2"] if task.phase == "finetune" else metrics["l1"]


def _metrics(base_path: Path, state: dict, labels: tuple, task: TaskSpec, validation: list[Example], device: str) -> dict:
    bundle = bundle_from_state(base_path, state, labels)
    return evaluate(bundle, validation, task, device)


def aggregate_round(
    protocol: Protocol,
    store: Store,
    round_id: int,
    base_path: Path,
    task: TaskSpec,
    validation: list[Example],
    policy: RoundPolicy,
    reward_budget: int,
    work: Path,
    log=print,
) -> RoundOutcome:
    work.mkdir(parents=True, exist_ok=True)
    info = protocol.round(round_id)
    revealed = {e["args"]["oracle"]: e["args"] for e in protocol.events("Revealed", roundId=round_id)}
    committed = sorted({e["args"]["oracle"] for e in protocol.events("Committed", roundId=round_id)})
    non_revealers = [o for o in committed if o not in revealed]

    base, meta = read_state(base_path)
    labels = task.labels if task.phase == "finetune" else ()
    expected = {k: tuple(v.shape) for k, v in base.items()}
    if labels and "head.weight" not in base:
        expected["head.weight"] = (len(labels), hidden_size(meta))
        # A head-less base scores as a zero head: uniform class probabilities.
        base_for_eval = {**base, "head.weight": torch.zeros(expected["head.weight"])}
    else:
        base_for_eval = base
    before = _metrics(base_path, base_for_eval, labels, task, validation, policy.device)
    log(f"round {round_id}: {len(revealed)} revealed, {len(non_revealers)} did not; base validation loss {_loss(before, task):.4f}")

    max_bytes = policy.max_delta_bytes or 2 * base_path.stat().st_size + (1 << 20)
    earlier = _earlier_digests(protocol, store, round_id, info.base_model_cid)
    entries, accepted, slashes, digests, valid = [], [], [], {}, []
    for oracle in sorted(revealed):
        ev = revealed[oracle]
        cid = cid_from_bytes(ev["deltaCid"])
        entry = {"oracle": oracle, "delta_cid": cid, "num_examples": ev["numExamples"], "status": "rejected"}
        entries.append(entry)
        registered = protocol.oracle(oracle)
        if not registered.registered or registered.num_examples < ev["numExamples"]:
            entry["reason"] = f"dataset commitment covers {registered.num_examples} examples, {ev['numExamples']} declared"
            continue
        path = work / f"{cid}.safetensors"
        try:
            if not path.exists():
                store.get_file(cid, path, max_bytes=max_bytes)
        except ContentTooLarge as exc:
            entry.update(reason=MALFORMED, detail=str(exc))
            slashes.append({"oracle": oracle, "reason": MALFORMED, "code": SLASHED_REASONS[MALFORMED], "amount": policy.slash_amount})
            continue
        except DGPTError as exc:  # unavailable or not matching its CID: nothing provable, no slash
            entry.update(reason="unavailable", detail=str(exc))
            continue
        verdict = check_delta(path, expected, max_bytes, task.max_update_norm, info.base_model_cid)
        entry["norm"] = verdict.norm
        if not verdict.ok:
            entry.update(reason=verdict.reason, detail=verdict.detail)
            if verdict.reason in SLASHED_REASONS:
                slashes.append({"oracle": oracle, "reason": verdict.reason, "code": SLASHED_REASONS[verdict.reason], "amount": policy.slash_amount})
            log(f"  {oracle}: rejected, {verdict.reason}: {verdict.detail}")
            continue
        digest = entry["data_sha256"] = data_digest(path)
        seen = earlier.get(digest) or digests.get(digest)
        if seen:  # a replay of a delta made for an earlier base, or the same tensors twice: never new work
            entry.update(reason="duplicate", detail=f"the same tensors as {seen}")
            log(f"  {oracle}: rejected, duplicate of {seen}")
            continue
        digests[digest] = f"round {round_id}, {oracle}"
        valid.append((oracle, entry, path, verdict.norm))

    cosines = cosine_to_median([v[2] for v in valid], expected) if len(valid) >= 3 else [1.0] * len(valid)
    typical = statistics.median(cosines) if cosines else 1.0
    floor = max(0.0, policy.min_cosine_ratio * typical)
    for (oracle, entry, path, norm), cos in zip(valid, cosines):
        ev = revealed[oracle]
        entry["cosine_to_median"] = cos
        if norm > 0 and cos < floor:  # a zero delta has no direction: the gain check rejects it
            entry.update(reason="divergent", detail=f"cosine {cos:.3f} to the median of the round's deltas, below {floor:.3f} "
                                                    f"({policy.min_cosine_ratio:g} x the round's median cosine, {typical:.3f})")
            log(f"  {oracle}: rejected, divergent (cosine {cos:.3f}, floor {floor:.3f})")
            continue
        alone = _metrics(base_path, apply_delta(base_for_eval, load_file(str(path))), labels, task, validation, policy.device)
        gain = _loss(before, task) - _loss(alone, task)
        entry["alone"] = alone
        entry["loss_gain"] = gain
        if gain <= policy.min_gain:
            reason = "harmful" if gain < 0 else "no_gain"
            entry.update(reason=reason, detail=f"validation loss changes by {-gain:+.4f} when applied alone (must fall by more than {policy.min_gain:g})")
            log(f"  {oracle}: rejected, {reason} (validation loss {-gain:+.4f})")
            continue
        entry["status"] = "accepted"
        accepted.append((oracle, path, ev["numExamples"], norm, gain))
        log(f"  {oracle}: accepted, {ev['numExamples']} examples, norm {norm:.3f}, validation loss -{gain:.4f} alone")

    crashpoint("aggregator:downloaded")
    new_path = work / f"model-round-{round_id}.safetensors"
    decided = build_model(
        base_path,
        [a[1] for a in accepted],
        [float(a[2]) for a in accepted],
        policy.strategy,
        [a[3] for a in accepted],
        labels,
        new_path,
    )
    new_state, _ = read_state(new_path)
    if labels and "head.weight" not in new_state:  # nothing merged into a head-less base
        new_state["head.weight"] = base_for_eval["head.weight"]
    after = _metrics(base_path, new_state, labels, task, validation, policy.device)

    merged = [a for i, a in enumerate(accepted) if i in decided.get("krum_selected", range(len(accepted)))]
    rewards = _rewards([(a[0], a[2], a[4]) for a in merged], reward_budget)
    tree = RewardsTree.build(rewards)
    for e in entries:
        e["weight"] = next((a[2] for a in accepted if a[0] == e["oracle"]), 0)
        e["reward"] = str(rewards.get(e["oracle"], 0))
    report = {
        "format": "dgpt-report/1",
        "round": round_id,
        "phase": task.phase,
        "base_model_cid": info.base_model_cid,
        "task_spec_cid": info.task_spec_cid,
        "strategy": policy.strategy.to_json(),
        "strategy_decisions": decided,
        "checks": {"max_delta_bytes": max_bytes, "max_update_norm": task.max_update_norm, "min_gain": policy.min_gain,
                   "min_cosine_ratio": policy.min_cosine_ratio, "cosine_floor": floor},
        "labels": list(labels),
        "submissions": entries,
        "merged": [a[0] for a in merged],
        "non_revealers": non_revealers,
        "slashes": slashes,
        "validation": {"n": len(validation), "before": before, "after": after},
        "rewards": tree.to_json(),
        "rewards_root": "0x" + tree.root.hex(),
        "rewards_total": str(tree.total),
        "software": {"dgpt": dgpt.__version__, "torch": torch.__version__, "python": platform.python_version()},
    }
    log(f"round {round_id}: merged {len(merged)} with {policy.strategy.name}; validation loss {_loss(before, task):.4f} -> {_loss(after, task):.4f}")
    return RoundOutcome(new_path, report, tree, slashes, non_revealers)


def _earlier_digests(protocol: Protocol, store: Store, round_id: int, base_model_cid: str) -> dict[str, str]:
    """Tensor digests of the deltas submitted in earlier published rounds on another base model,
    from their reports. Resubmitting a delta made for another base is a replay; the same base
    (nothing was merged in between) may well give an honest oracle the same delta again."""
    seen = {}
    for rid in range(1, round_id):
        info = protocol.round(rid)
        if not info.published or info.base_model_cid == base_model_cid:
            continue
        report = json.loads(store.get_bytes(info.report_cid, max_bytes=64 << 20))
        for e in report.get("submissions", []):
            if e.get("data_sha256"):
                seen.setdefault(e["data_sha256"], f"round {rid}, {e['oracle']}")
    return seen


def _rewards(contributions: list[tuple[str, int, float]], budget: int) -> dict[str, int]:
    """Budget shares in proportion to each merged delta's validation-loss gain (by example count
    when no delta improved the loss alone); integer division, the remainder is not minted."""
    if not contributions or budget <= 0:
        return {}
    scores = [max(0.0, gain) for _, _, gain in contributions]
    if sum(scores) <= 0:
        scores = [float(n) for _, n, _ in contributions]
    total = sum(scores)
    # Integer arithmetic on scaled scores keeps the amounts exact and machine-independent.
    scaled = [round(s / total * 10**9) for s in scores]
    denom = sum(scaled) or 1
    return {o: budget * s // denom for (o, _, _), s in zip(contributions, scaled) if s > 0}


def report_bytes(report: dict) -> bytes:
    return json.dumps(report, sort_keys=True, separators=(",", ":")).encode()
