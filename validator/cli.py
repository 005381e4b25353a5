"""`dgpt validator ...`: the validator operator's commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from dgpt.context import account, protocol_of, settings, store_of


def cmd_run(args) -> int:
    from dgpt.node import timestamped
    from validator.node import ValidatorNode

    cfg = settings(args)
    me = account(args)
    protocol = protocol_of(cfg)
    if not protocol.is_validator(me.address):
        from dgpt.errors import DGPTError

        raise DGPTError(f"{me.address} holds no validator seat: the admin gives one with `dgpt validator seat {me.address}`")
    node = ValidatorNode(protocol, store_of(cfg), me, Path(cfg.home) / "validator" / me.address,
                         log=timestamped("validator", me.address), rounds=args.rounds)
    node.run(poll=args.poll)
    return 0


def cmd_seat(args) -> int:
    cfg = settings(args)
    protocol = protocol_of(cfg)
    protocol.set_validator(account(args), args.address, not args.remove)
    print(f"{args.address} {'no longer holds' if args.remove else 'holds'} a validator seat")
    return 0


def add_commands(sub, common: argparse.ArgumentParser, keyed: argparse.ArgumentParser) -> None:
    val = sub.add_parser("validator", help="the validator: recompute every proposed round and attest to its result")
    cmds = val.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = cmds.add_parser("run", parents=[common, keyed], help="the daemon: audit each proposal, attest, finalize, settle")
    p.add_argument("--rounds", type=int, help="stop once this many rounds are final and settled (default: never)")
    p.add_argument("--poll", type=float, default=2.0)
    p.set_defaults(func=cmd_run)
    s = cmds.add_parser("seat", parents=[common, keyed], help="give ADDRESS a validator seat (admin only; at most the deployment's seats)")
    s.add_argument("address")
    s.add_argument("--remove", action="store_true", help="take the seat back instead")
    s.set_defaults(func=cmd_seat)
