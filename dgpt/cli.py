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


def cmd_cid(args: argparse.Namespace) -> int:
    from dgpt.store.unixfs import file_cid

    try:
        with open(args.file, "rb") as f:
            cid = file_cid(f, args.cid_version)
    except OSError as exc:
        raise DGPTError(f"cannot read {args.file}: {exc.strerror}") from None
    print(cid.encode())
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

    cid = sub.add_parser(
        "cid",
        help="print the CID `ipfs add --only-hash` gives FILE (streams it: flat memory)",
        description="Print the CID that `ipfs add --only-hash -Q --cid-version 1 --raw-leaves FILE` (default) "
        "or `ipfs add --only-hash -Q FILE` (--cid-version 0) prints, and nothing else.",
    )
    cid.add_argument("file", metavar="FILE")
    cid.add_argument("--cid-version", type=int, choices=(0, 1), default=1, help="0 or 1 (default 1, raw leaves)")
    cid.set_defaults(func=cmd_cid)
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
