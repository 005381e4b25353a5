"""`dgpt`: the one command line for oracle operators, aggregator operators and developers."""

from __future__ import annotations

import argparse
import json
import sys

from dgpt import __version__
from dgpt.config import Settings, load_settings
from dgpt.errors import DGPTError


def cmd_demo(args: argparse.Namespace) -> int:
    from dgpt.demo import run_demo

    log = (lambda *a, **k: print(*a, file=sys.stderr, **k)) if args.json else print
    result = run_demo(settings(args), num_oracles=args.oracles, log=log)
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


def settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, rpc_url=args.rpc_url, ipfs_api=args.ipfs_api, home=args.home)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dgpt", description="Decentralized fine-tuning of GPT models, coordinated on-chain.")
    parser.add_argument("--version", action="version", version=f"dgpt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Connection settings every command shares; they override $DGPT_* and the config file.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML config file (default: $DGPT_CONFIG, else ./dgpt.toml if present)")
    common.add_argument("--rpc-url", help="JSON-RPC chain (Anvil, Hardhat, a network); default: the embedded chain")
    common.add_argument("--ipfs-api", help="IPFS daemon's RPC API, e.g. http://127.0.0.1:5001; default: the embedded store")
    common.add_argument("--home", help="folder for the embedded store and local state (default .dgpt)")

    demo = sub.add_parser("demo", parents=[common], help="deploy the protocol and run a training round on embedded defaults")
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
