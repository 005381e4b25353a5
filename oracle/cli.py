"""`dgpt oracle ...`: the oracle operator's commands."""

from __future__ import annotations

import argparse
import json

from dgpt.context import account, add_alias, protocol_of, settings, store_of
from dgpt.units import format_tokens, parse_tokens


def _data(args):
    from dgpt.data import load_examples

    labels = tuple(args.labels.split(","))
    return load_examples(args.data, labels), labels


def _commitment(store, examples, labels):
    from dgpt.dataset import manifest, merkle_root

    return store.put_bytes(manifest(examples, labels)), merkle_root(examples), len(examples)


def cmd_register(args) -> int:
    stake = parse_tokens(args.stake, "--stake")
    cfg = settings(args)
    protocol, store = protocol_of(cfg), store_of(cfg)
    examples, labels = _data(args)
    cid, root, n = _commitment(store, examples, labels)
    protocol.register(account(args), stake, cid, root, n)
    print(f"registered with {format_tokens(stake)} DGPT; dataset {cid} ({n} examples, root 0x{root.hex()})")
    return 0


def cmd_update_commitment(args) -> int:
    cfg = settings(args)
    protocol, store = protocol_of(cfg), store_of(cfg)
    examples, labels = _data(args)
    cid, root, n = _commitment(store, examples, labels)
    protocol.update_commitment(account(args), cid, root, n)
    print(f"dataset commitment updated: {cid} ({n} examples)")
    return 0


def cmd_stake(args) -> int:
    amount = parse_tokens(args.amount, "amount")
    cfg = settings(args)
    protocol, me = protocol_of(cfg), account(args)
    if args.action == "add-stake":
        protocol.add_stake(me, amount)
        print(f"added {format_tokens(amount)} DGPT to the stake")
    else:
        from dgpt.node import at

        protocol.request_unbond(me, amount)
        info = protocol.oracle(me.address)
        print(f"unbonding {format_tokens(amount)} DGPT: `dgpt oracle withdraw` from {at(info.unbonding_ready_at)} "
              f"({format_tokens(info.stake)} DGPT still staked)")
    return 0


def cmd_withdraw(args) -> int:
    cfg = settings(args)
    protocol, me = protocol_of(cfg), account(args)
    before = protocol.balance_of(me.address)
    protocol.withdraw(me)
    print(f"withdrawn: {format_tokens(protocol.balance_of(me.address) - before)} DGPT back in {me.address}")
    return 0


def _node(args, examples=(), rounds=None, daemon=False):
    from pathlib import Path

    from dgpt.node import timestamped
    from oracle.node import OracleConfig, OracleNode

    cfg = settings(args)
    me = account(args)
    home = Path(cfg.home) / "oracle" / me.address
    return OracleNode(protocol_of(cfg), store_of(cfg), me, OracleConfig(home, list(examples), getattr(args, "device", None) or "cpu"),
                      log=timestamped("oracle", me.address) if daemon else (lambda *a: print(*a, flush=True)), rounds=rounds)


def cmd_claim(args) -> int:
    # From the chain, not the local journal: any machine holding the key can claim.
    node = _node(args)
    settled = node.claim_from_chain()
    for rid, _, note in settled:
        print(f"round {rid}: {note}")
    if not settled:
        print(f"nothing to claim: {node.account.address} revealed in no round of this deployment")
    return 0


def cmd_status(args) -> int:
    cfg = settings(args)
    protocol = protocol_of(cfg)
    me = account(args).address
    info = protocol.oracle(me)
    out = {"address": me, "registered": info.registered, "stake": str(info.stake), "unbonding": str(info.unbonding),
           "unbonding_ready_at": info.unbonding_ready_at, "dataset": info.manifest_cid, "examples": info.num_examples,
           "balance": str(protocol.balance_of(me)), "last_commit_round": info.last_commit_round}
    if args.json:  # amounts in token base units (wei), as strings: unchanged for scripts
        print(json.dumps(out))
        return 0
    shown = {k: f"{format_tokens(int(v))} DGPT" if k in ("stake", "unbonding", "balance") else v for k, v in out.items()}
    print("\n".join(f"{k:>20}: {v}" for k, v in shown.items()))
    return 0


def cmd_run(args) -> int:
    examples, _ = _data(args)
    node = _node(args, examples, args.rounds, daemon=True)
    node.run(poll=args.poll)
    return 0


def add_commands(sub, common: argparse.ArgumentParser, keyed: argparse.ArgumentParser) -> None:
    oracle = sub.add_parser("oracle", help="the oracle operator: stake, commit a data set, submit deltas, claim rewards")
    cmds = oracle.add_subparsers(dest="action", required=True, metavar="ACTION")
    parents = [common, keyed]

    def data_args(p):
        p.add_argument("--data", required=True, help="the oracle's labelled data: JSONL or CSV with text and label")
        p.add_argument("--labels", required=True, help="comma-separated label names, as the task spec gives them")

    p = cmds.add_parser("register", parents=parents, help="stake and register with the data set's commitment")
    data_args(p)
    p.add_argument("--stake", required=True, help="DGPT to stake (decimal, up to 18 decimals)")
    p.set_defaults(func=cmd_register)
    p = cmds.add_parser("update-commitment", parents=parents, help="replace the dataset commitment (between rounds)")
    data_args(p)
    p.set_defaults(func=cmd_update_commitment)
    add_alias(cmds, "commit-dataset", p, "dgpt oracle update-commitment")
    for name, text in (("add-stake", "add DGPT to the stake"), ("unbond", "start unbonding DGPT (withdraw after the unbonding period)")):
        p = cmds.add_parser(name, parents=parents, help=text)
        p.add_argument("amount", help="DGPT (decimal, up to 18 decimals)")
        p.set_defaults(func=cmd_stake)
    add_alias(cmds, "unstake", p, "dgpt oracle unbond")
    cmds.add_parser("withdraw", parents=parents, help="withdraw what has finished unbonding").set_defaults(func=cmd_withdraw)
    cmds.add_parser("claim", parents=parents, help="claim the rewards of published rounds").set_defaults(func=cmd_claim)
    p = cmds.add_parser("status", parents=parents, help="this oracle's stake, commitment and balance")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = cmds.add_parser("run", parents=parents, help="the daemon: follow rounds, train, commit, reveal, claim")
    data_args(p)
    p.add_argument("--device", help="cpu or cuda (default cpu)")
    p.add_argument("--poll", type=float, default=2.0, help="seconds between looks at the chain")
    p.add_argument("--rounds", type=int, help="stop after claiming this many rounds (default: run forever)")
    p.set_defaults(func=cmd_run)
