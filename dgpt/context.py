"""What every role command needs: settings, a signing key, the chain, the deployed protocol, the store.

The chain, key and store libraries (web3, eth-account, httpx) are imported when a command needs
them, not when the command line is parsed: `dgpt --help` or `dgpt cid` should not wait for them.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from dgpt.config import Settings, load_settings
from dgpt.errors import DGPTError

if TYPE_CHECKING:
    from dgpt.chain.client import Chain
    from dgpt.chain.protocol import Protocol
    from dgpt.store import Store


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML config file (default: $DGPT_CONFIG, else ./dgpt.toml if present)")
    parser.add_argument("--rpc-url", help="JSON-RPC chain (Anvil, Hardhat, a network); default: the embedded chain")
    parser.add_argument("--ipfs-api", help="IPFS daemon's RPC API, e.g. http://127.0.0.1:5001; default: the embedded store")
    parser.add_argument("--home", help="folder for the embedded store, journals and caches (default .dgpt)")
    parser.add_argument("--deployment", help="deployment JSON written by `dgpt deploy` (default HOME/deployment.json)")


def add_key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keystore", help="eth-account encrypted keystore file")
    parser.add_argument("--password-file", help="file holding the keystore password (else $DGPT_PASSWORD, else a prompt)")
    parser.add_argument("--dev", action="store_true", help="allow the public development keys (local chains only)")
    parser.add_argument("--dev-key", type=int, help="use development account N (with --dev)")


def address_arg(text: str, what: str) -> str:
    """An address from the command line, checksummed; one line saying what is wrong otherwise."""
    from eth_utils import is_address, to_checksum_address

    if not is_address(text):
        raise DGPTError(f"{what}: {text!r} is not an Ethereum address (0x and 40 hex digits, or a valid checksum)")
    return to_checksum_address(text)


def settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        args.config, rpc_url=args.rpc_url, ipfs_api=args.ipfs_api, home=args.home, deployment=getattr(args, "deployment", None)
    )


def account(args: argparse.Namespace):
    from dgpt.keys import load_account

    return load_account(args.keystore, args.password_file, args.dev_key, args.dev)


def chain_of(cfg: Settings) -> Chain:
    from dgpt.chain.client import Chain

    if not cfg.rpc_url:
        raise DGPTError("this command needs a persistent chain: give --rpc-url (the embedded chain lives only inside `dgpt demo`)")
    return Chain.connect(cfg.rpc_url)


def protocol_of(cfg: Settings) -> Protocol:
    from dgpt.chain.protocol import Deployment, Protocol

    path = cfg.deployment_file
    try:
        deployment = Deployment.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        raise DGPTError(f"no deployment at {path}: run `dgpt deploy` or give --deployment") from None
    except (ValueError, KeyError) as exc:
        raise DGPTError(f"{path} is not a deployment file: {exc}") from None
    return Protocol(chain_of(cfg), deployment)


def store_of(cfg: Settings) -> Store:
    from dgpt.store import open_store

    return open_store(cfg.ipfs_api, cfg.store_dir)


def add_alias(cmds, old: str, new_parser: argparse.ArgumentParser, new: str) -> None:
    """Keep an old command spelling working for now: the same arguments, plus a one-line note."""
    alias = cmds.add_parser(old, parents=[new_parser], add_help=False, conflict_handler="resolve", help=f"deprecated: use `{new}`")
    func = new_parser.get_default("func")

    def run(args):
        import sys

        print(f"dgpt: note: `{old}` is deprecated; use `{new}`", file=sys.stderr)
        return func(args)

    alias.set_defaults(func=run)
