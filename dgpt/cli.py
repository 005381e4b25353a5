"""`dgpt`: the one command line for oracle operators, aggregator operators and developers."""

from __future__ import annotations

import argparse
import json
import sys

from dgpt import __version__
from dgpt.errors import DGPTError


def cmd_demo(args: argparse.Namespace) -> int:
    from dgpt.demo import run_demo

    log = (lambda *a, **k: print(*a, file=sys.stderr, **k)) if args.json else print
    result = run_demo(rpc_url=args.rpc_url, num_oracles=args.oracles, log=log)
    if args.json:
        print(json.dumps(result.to_json()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dgpt", description="Decentralized fine-tuning of GPT models, coordinated on-chain.")
    parser.add_argument("--version", action="version", version=f"dgpt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="deploy the protocol and run a training round on embedded defaults")
    demo.add_argument("--rpc-url", help="a JSON-RPC chain (Anvil, Hardhat) instead of the embedded one")
    demo.add_argument("--oracles", type=int, default=4, help="number of oracles (default 4)")
    demo.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DGPTError as exc:
        print(f"dgpt: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dgpt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
