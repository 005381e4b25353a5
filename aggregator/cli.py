"""`dgpt aggregator run`: the aggregator operator's daemon."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dgpt.context import account, protocol_of, settings, store_of
from dgpt.errors import DGPTError
from dgpt.units import format_tokens, parse_tokens


def load_plan(path: str):
    from dgpt.task import TaskSpec

    try:
        items = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DGPTError(f"cannot read the plan {path}: {exc}") from None
    if not isinstance(items, list) or not items:
        raise DGPTError(f"{path}: the plan is a JSON list of task specs, one per round")
    return [TaskSpec.from_bytes(json.dumps({"format": "dgpt-task/1", **item}).encode()) for item in items]


def cmd_run(args) -> int:
    from aggregator.node import AggregatorConfig, AggregatorNode
    from dgpt.node import timestamped
    from dgpt.round import RoundPolicy
    from dgpt.aggregate import Strategy
    from dgpt.data import load_examples

    cfg = settings(args)
    plan = load_plan(args.plan)
    labels = next((t.labels for t in plan if t.labels), ())
    validation = load_examples(args.validation, labels or None)
    params = {}
    for kv in args.strategy_param or []:
        k, _, v = kv.partition("=")
        try:
            params[k] = float(v)
        except ValueError:
            raise DGPTError(f"--strategy-param {kv!r}: want NAME=NUMBER, e.g. server_lr=2") from None
    try:
        strategy = Strategy(args.strategy, params)
    except ValueError as exc:
        raise DGPTError(f"--strategy-param: {exc}") from None
    policy = RoundPolicy(strategy, min_cosine_ratio=args.min_cosine_ratio)
    budget = parse_tokens(args.reward_budget, "--reward-budget")
    me = account(args)
    protocol = protocol_of(cfg)
    # The deployment's bounds, checked before any transaction: the contract would refuse the round.
    ceiling = protocol.max_reward_per_round()
    if budget > ceiling:
        raise DGPTError(f"--reward-budget {format_tokens(budget)} DGPT is over this deployment's ceiling of {format_tokens(ceiling)} DGPT per round")
    low, high = protocol.window_bounds()
    for flag, seconds in (("--commit-duration", args.commit_duration), ("--reveal-duration", args.reveal_duration)):
        if not low <= seconds <= high:
            raise DGPTError(f"{flag} {seconds} s is outside this deployment's window bounds [{low}, {high}] s")
    node = AggregatorNode(
        protocol, store_of(cfg), me,
        AggregatorConfig(Path(cfg.home) / "aggregator" / me.address, Path(args.genesis), plan, validation, policy,
                         budget, args.commit_duration, args.reveal_duration),
        log=timestamped("aggregator", me.address),
    )
    node.run(poll=args.poll)
    return 0


def add_commands(sub, common: argparse.ArgumentParser, keyed: argparse.ArgumentParser) -> None:
    agg = sub.add_parser("aggregator", help="the aggregator bot: open rounds, verify, merge, publish, slash")
    cmds = agg.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = cmds.add_parser("run", parents=[common, keyed], help="the daemon: run the plan's rounds to the end")
    p.add_argument("--genesis", required=True, help="model file of the first round's base model")
    p.add_argument("--plan", required=True, help="JSON list of task specs, one per round")
    p.add_argument("--validation", required=True, help="the aggregator's own labelled validation set (JSONL or CSV)")
    p.add_argument("--strategy", default="fedavg", choices=("fedavg", "median", "trimmed_mean", "clipped_mean", "krum"))
    p.add_argument("--strategy-param", action="append", metavar="K=V", help="e.g. server_lr=2 or momentum=0.9 (any strategy), trim=0.1, clip=5, f=1, m=2")
    p.add_argument("--min-cosine-ratio", type=float, default=0.5,
                   help="with 3 or more valid deltas, reject one whose cosine to their coordinate-wise median is below this fraction of the round's median cosine (default 0.5)")
    p.add_argument("--reward-budget", default="100", help="DGPT per round (decimal; at most the deployment's per-round ceiling)")
    p.add_argument("--commit-duration", type=int, default=600)
    p.add_argument("--reveal-duration", type=int, default=600)
    p.add_argument("--poll", type=float, default=2.0)
    p.set_defaults(func=cmd_run)
