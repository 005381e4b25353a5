"""Signing keys: eth-account encrypted keystore files, the password from a file, $DGPT_PASSWORD or
a prompt. Anvil's and Hardhat's well-known dev keys only behind an explicit --dev flag."""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from dgpt.errors import DGPTError


def read_password(password_file: str | None, confirm: bool = False) -> str:
    if password_file:
        try:
            return Path(password_file).read_text().rstrip("\n")
        except OSError as exc:
            raise DGPTError(f"cannot read the password file {password_file}: {exc.strerror}") from None
    if os.environ.get("DGPT_PASSWORD"):
        return os.environ["DGPT_PASSWORD"]
    if not sys.stdin.isatty():
        raise DGPTError("no password: give --password-file, set DGPT_PASSWORD, or run in a terminal to be asked")
    password = getpass.getpass("keystore password: ")
    if confirm and getpass.getpass("again: ") != password:
        raise DGPTError("the passwords differ")
    return password


def new_keystore(path: str | Path, password: str) -> str:
    path = Path(path)
    if path.exists():
        raise DGPTError(f"{path} exists; refusing to overwrite a key")
    account = Account.create()
    path.write_text(json.dumps(Account.encrypt(account.key, password)))
    path.chmod(0o600)
    return account.address


def load_account(keystore: str | None = None, password_file: str | None = None, dev_key: int | None = None, dev: bool = False) -> LocalAccount:
    if dev_key is not None:
        if not dev:
            raise DGPTError("--dev-key uses a publicly known development key: add --dev to confirm (local chains only)")
        from dgpt.chain.client import dev_accounts

        return dev_accounts(dev_key + 1)[dev_key]
    if not keystore:
        raise DGPTError("no key: give --keystore FILE (create one with `dgpt keys new`), or --dev --dev-key N on a local chain")
    try:
        encrypted = json.loads(Path(keystore).read_text())
    except (OSError, ValueError) as exc:
        raise DGPTError(f"cannot read keystore {keystore}: {exc}") from None
    if not isinstance(encrypted, dict) or "crypto" not in {k.lower() for k in encrypted}:
        raise DGPTError(f"{keystore} is not an encrypted keystore file (no 'crypto' section); create one with `dgpt keys new`")
    password = read_password(password_file)
    try:
        return Account.from_key(Account.decrypt(encrypted, password))
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise DGPTError(f"wrong password for keystore {keystore}") from None
        raise DGPTError(f"keystore {keystore} is unreadable: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise DGPTError(f"keystore {keystore} is unreadable: missing or bad field {exc}") from None
