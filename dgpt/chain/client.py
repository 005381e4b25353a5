"""A connection to one EVM chain: local signing, nonces, gas, receipts, reverts, events, time.

Backends: the embedded in-process chain (web3's EthereumTesterProvider over py-evm, the default)
and any JSON-RPC URL (Anvil, a Hardhat node, a real network). Transactions are signed locally with
eth-account and estimated first, so a call that would revert raises `ContractRevert` naming the
custom error and its arguments, and nothing is sent.
"""

from __future__ import annotations

import ast
import json
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
import eth_utils.abi
from eth_utils import function_signature_to_4byte_selector
from web3 import EthereumTesterProvider, Web3
from web3.contract.contract import Contract, ContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError

from dgpt.crash import crashpoint
from dgpt.errors import DGPTError

# web3 finds the ABI entry of each call it encodes by recomputing the 4-byte selector (a keccak) of
# every function in the contract's ABI, on every call: about 80 keccaks per call for DGPTProtocol.
# The selector is a pure function of the signature, so it is memoised here (bench_round: the
# 64-oracle round's many reads).
eth_utils.abi.function_signature_to_4byte_selector = cache(eth_utils.abi.function_signature_to_4byte_selector)

try:  # the embedded chain's revert type; eth-tester is only installed with web3[tester]
    from eth_tester.exceptions import TransactionFailed

    _REVERTS: tuple[type[Exception], ...] = (ContractLogicError, Web3RPCError, TransactionFailed)
except ImportError:
    _REVERTS = (ContractLogicError, Web3RPCError)

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# The well-known development mnemonic of Anvil and Hardhat: the embedded chain funds the same ten
# accounts, so a dev key means the same address on every local backend. Never use it for real funds.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
PAGE_BLOCKS = 2_000  # block range per eth_getLogs request; public nodes cap ranges about there


class _Payment:
    """A plain value transfer, shaped like a contract call for `Chain._send` (estimate, then send)."""

    fn_name = "send_eth"

    def __init__(self, w3: Web3, to: str, value: int):
        self.w3, self.to, self.value = w3, to, value

    def build_transaction(self, tx: dict) -> dict:
        return {**tx, "to": self.to, "value": self.value, "gasPrice": self.w3.eth.gas_price}


class ChainError(DGPTError):
    """The chain could not be reached, or a transaction failed."""


class ContractRevert(ChainError):
    """A call reverted; `error` is the Solidity custom error's name and `args` its decoded arguments."""

    def __init__(self, error: str, args: dict[str, Any]):
        self.error = error
        self.args_ = args
        amounts = TOKEN_AMOUNTS.get(error, ())
        shown = ", ".join(f"{k}={_tokens(v) if k in amounts else _show(v)}" for k, v in args.items())
        super().__init__(f"reverted with {error}({shown})")


# The arguments of the contracts' errors that are DGPT amounts: shown in DGPT, not base units (wei).
TOKEN_AMOUNTS = {
    "StakeBelowMinimum": ("stake", "minimum"),
    "InsufficientStake": ("requested", "available"),
    "BudgetOverRoundCeiling": ("rewardBudget", "maxRewardPerRound"),
    "BudgetOverPeriodCeiling": ("reserved", "maxRewardPerPeriod"),
    "RewardsExceedBudget": ("rewardsTotal", "available"),
    "InvalidProof": ("amount",),
    "RewardsExhausted": ("requested", "remaining"),
    "BondTooSmall": ("free", "required"),
    "ERC20InsufficientBalance": ("balance", "needed"),
    "ERC20InsufficientAllowance": ("allowance", "needed"),
}


def _tokens(wei: int) -> str:
    from dgpt.units import format_tokens

    return f"{format_tokens(wei)} DGPT"


def _tester_revert_data(exc: Exception) -> bytes | None:
    """eth-tester reports reverts as "execution reverted: b'...'" with the data as a bytes literal."""
    text = str(exc.args[0]) if exc.args else ""
    prefix = "execution reverted: "
    if text.startswith(prefix):
        try:
            data = ast.literal_eval(text[len(prefix) :])
        except (ValueError, SyntaxError):
            return None
        return data if isinstance(data, bytes) else None
    return None


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


@cache
def artifact(name: str) -> dict:
    """A committed compiler artifact (ABI and bytecode) of a deployed contract."""
    return json.loads((ARTIFACTS / f"{name}.json").read_text())


@cache
def _error_abis() -> dict[bytes, dict]:
    """Every custom error the protocol can raise (its own and OpenZeppelin's), by 4-byte selector."""
    errors = {
        function_signature_to_4byte_selector("Error(string)"): {"name": "Error", "inputs": [{"name": "message", "type": "string"}]},
        function_signature_to_4byte_selector("Panic(uint256)"): {"name": "Panic", "inputs": [{"name": "code", "type": "uint256"}]},
    }
    for name in ("DGPTProtocol", "DGPTToken"):
        for item in artifact(name)["abi"]:
            if item["type"] == "error":
                types = ",".join(_abi_type(i) for i in item["inputs"])
                errors[function_signature_to_4byte_selector(f"{item['name']}({types})")] = item
    return errors


def _abi_type(item: dict) -> str:
    if item["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in item["components"]) + ")" + item["type"][5:]
    return item["type"]


def decode_revert(data: str | bytes | None) -> ContractRevert | None:
    """Turn revert data into ContractRevert, or None when it is not an error the protocol knows."""
    if isinstance(data, str):
        data = bytes.fromhex(data.removeprefix("0x")) if data.startswith("0x") else None
    if not data or len(data) < 4:
        return None
    abi = _error_abis().get(data[:4])
    if abi is None:
        return None
    values = abi_decode([_abi_type(i) for i in abi["inputs"]], data[4:])
    return ContractRevert(abi["name"], {i["name"]: v for i, v in zip(abi["inputs"], values)})


def dev_accounts(n: int = 10) -> list[LocalAccount]:
    """The first `n` accounts of the development mnemonic (Anvil's and Hardhat's funded accounts)."""
    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(n)]


def _no_funds(exc: Exception) -> bool:
    return "insufficient funds" in str(exc).lower()


@dataclass
class Chain:
    """One chain connection. Create it with `Chain.embedded()` or `Chain.connect(url)`."""

    w3: Web3
    name: str
    receipt_timeout: float = 120.0

    def __post_init__(self) -> None:
        self._nonces: dict[str, int] = {}
        self._lock = threading.Lock()
        self.chain_id = self.w3.eth.chain_id

    @classmethod
    def embedded(cls) -> Chain:
        """A fresh in-process chain (py-evm, cancun) whose dev accounts hold 1,000,000 ether each."""
        from eth_tester import EthereumTester, PyEVMBackend

        backend = PyEVMBackend.from_mnemonic(
            DEV_MNEMONIC, num_accounts=10, genesis_state_overrides={"balance": 10**24}, hd_path="m/44'/60'/0'/0"
        )
        return cls(Web3(EthereumTesterProvider(EthereumTester(backend))), name="embedded")

    @classmethod
    def connect(cls, url: str, receipt_timeout: float = 120.0) -> Chain:
        """A JSON-RPC chain at `url` (http(s)://...); fails with ChainError if nothing answers there."""
        from requests.exceptions import ConnectionError as RequestsConnectionError
        from web3.providers.rpc.utils import ExceptionRetryConfiguration

        from dgpt.config import retry_policy

        attempts, backoff = retry_policy()
        # A node that restarts refuses connections for a while: retry with backoff (reads, and the
        # same signed transaction, which a node accepts at most once).
        retry = ExceptionRetryConfiguration(errors=(RequestsConnectionError,), retries=attempts, backoff_factor=backoff)
        # web3's validation asks the node for its chain id before every call: a connection's chain
        # id does not change, so it is asked once (half the requests of a polling daemon).
        provider = Web3.HTTPProvider(url, request_kwargs={"timeout": 30}, exception_retry_configuration=retry,
                                     cache_allowed_requests=True, cacheable_requests={"eth_chainId"})
        w3 = Web3(provider)
        try:
            w3.eth.chain_id
        except Exception as exc:
            raise ChainError(f"no JSON-RPC chain answers at {url}: {exc}") from None
        return cls(w3, name=url, receipt_timeout=receipt_timeout)

    @property
    def is_embedded(self) -> bool:
        return isinstance(self.w3.provider, EthereumTesterProvider)

    # --- contracts and transactions -------------------------------------------------------------

    def contract(self, name: str, address: str) -> Contract:
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact(name)["abi"])

    def deploy(self, account: LocalAccount, name: str, *args: Any) -> Contract:
        """Deploy the committed artifact `name` with constructor `args`; return the contract at its address."""
        a = artifact(name)
        factory = self.w3.eth.contract(abi=a["abi"], bytecode=a["bytecode"])
        receipt = self._send(account, factory.constructor(*args))
        return self.contract(name, receipt["contractAddress"])

    def transact(self, account: LocalAccount, call: ContractFunction) -> dict:
        """Estimate, sign locally, send and wait for the receipt of one contract call."""
        return self._send(account, call)

    def send_eth(self, account: LocalAccount, to: str, wei: int) -> dict:
        """Send `wei` of the chain's own coin (gas money) from `account` to `to`."""
        return self._send(account, _Payment(self.w3, Web3.to_checksum_address(to), wei))

    def eth_balance(self, address: str) -> int:
        return self.w3.eth.get_balance(Web3.to_checksum_address(address))

    def _send(self, account: LocalAccount, call: Any) -> dict:
        with self._lock:
            nonce = self._next_nonce(account.address)
            try:
                # Estimated first: a call that would revert raises here, before sending. On a node the
                # estimate runs on the pending block, stamped with the wall clock: on a plain Anvil
                # (automine, no block time) the latest block's time stands still until the next
                # transaction, so a deadline that has passed in time would still look open to it.
                tx = call.build_transaction({"from": account.address, "nonce": nonce, "chainId": self.chain_id, "gas": 0})
                # Without the fee fields, as web3 itself estimates: with them a node caps the gas at
                # what the balance pays for, and an empty key would read as out of gas, not of funds.
                fees = ("gas", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas")
                tx["gas"] = self.w3.eth.estimate_gas({k: v for k, v in tx.items() if k not in fees},
                                                     None if self.is_embedded else "pending")
            except (*_REVERTS, UnicodeDecodeError) as exc:
                if _no_funds(exc):
                    raise self._funds_error(account.address, None, exc) from None
                if self.is_embedded:
                    # web3 8.0.0's tester provider decodes all revert data as Error(string), which garbles
                    # or fails on custom errors with dynamic arguments: ask eth-tester for the raw data.
                    raise self._embedded_revert(account, call) from None
                raise self._revert_error(exc) from None
            tx["gas"] = int(tx["gas"] * 1.2) + 10_000  # margin: state may move between estimate and inclusion
            signed = account.sign_transaction(tx)
            try:
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except Exception as exc:
                self._nonces.pop(account.address, None)  # re-read the nonce from the chain next time
                if _no_funds(exc):
                    raise self._funds_error(account.address, tx, exc) from None
                raise ChainError(f"sending the transaction failed: {exc}") from None
            self._nonces[account.address] = nonce + 1
        crashpoint(f"sent:{getattr(call, 'fn_name', 'deploy')}")  # sent, receipt not yet seen
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.receipt_timeout)
        except TimeExhausted:
            raise ChainError(
                f"no receipt for transaction 0x{bytes(tx_hash).hex()} after {self.receipt_timeout:.0f} s"
            ) from None
        if receipt["status"] != 1:
            raise self._replay_failure(tx, receipt)
        return receipt

    def _funds_error(self, address: str, tx: dict | None, exc: Exception) -> ChainError:
        """Which address lacks how much gas money, and how to give it some on a local chain."""
        balance = self.w3.eth.get_balance(address)
        need = ""
        if tx:
            price = tx.get("maxFeePerGas") or tx.get("gasPrice") or self.w3.eth.gas_price
            need = f" and this transaction may cost up to {(tx['gas'] * price + tx.get('value', 0)) / 10**18:.6f}"
        return ChainError(
            f"{address} has {balance / 10**18:.6f} ETH for gas{need}: send it some ETH first "
            f"(on a local Anvil or Hardhat node, from a funded dev account: "
            f"dgpt fund {address} 1 --dev --dev-key 0 --rpc-url {self.name})"
        )

    def _next_nonce(self, address: str) -> int:
        if address not in self._nonces:
            self._nonces[address] = self.w3.eth.get_transaction_count(address, "pending")
        return self._nonces[address]

    def _revert_error(self, exc: Exception) -> ChainError:
        decoded = decode_revert(getattr(exc, "data", None))
        if decoded is None and type(exc).__name__ == "TransactionFailed":
            decoded = decode_revert(_tester_revert_data(exc))
        if decoded is None and isinstance(exc, Web3RPCError) and isinstance(exc.rpc_response, dict):
            decoded = decode_revert((exc.rpc_response.get("error") or {}).get("data"))
        return decoded or ChainError(f"transaction would fail: {exc}")

    def _embedded_revert(self, account: LocalAccount, call: Any) -> ChainError:
        # A constructor (a deployment that would revert) encodes its data under another name.
        encode = getattr(call, "_encode_transaction_data", None) or call._encode_data_in_transaction
        tx = {"from": account.address, "data": encode()}
        if getattr(call, "address", None):
            tx["to"] = call.address
        try:
            self.w3.provider.ethereum_tester.estimate_gas(tx)
        except TransactionFailed as exc:
            raw = exc.args[0].args[0] if exc.args and isinstance(exc.args[0], Exception) else exc.args[0]
            return decode_revert(raw if isinstance(raw, bytes) else None) or ChainError(f"transaction would fail: {raw!r}")
        return ChainError("transaction would fail")

    def _replay_failure(self, tx: dict, receipt: dict) -> ChainError:
        """Re-run a transaction that reverted on chain (state moved after the estimate) to learn why."""
        call = {k: tx[k] for k in ("from", "to", "data", "value") if k in tx}
        try:
            self.w3.eth.call(call, block_identifier=receipt["blockNumber"] - 1)
        except _REVERTS as exc:
            return self._revert_error(exc)
        try:  # the block's context differed from a plain call's: ask the node for the trace's revert data
            trace = self.w3.provider.make_request("debug_traceTransaction", [receipt["transactionHash"].to_0x_hex(), {"tracer": "callTracer"}])
            decoded = decode_revert((trace.get("result") or {}).get("output"))
            if decoded is not None:
                return decoded
        except Exception:
            pass
        return ChainError(
            f"transaction 0x{bytes(receipt['transactionHash']).hex()} reverted in block {receipt['blockNumber']} "
            f"(gas used {receipt['gasUsed']} of {tx.get('gas')})"
        )

    def call(self, call: ContractFunction) -> Any:
        """Run a view function; a revert raises ContractRevert."""
        try:
            return call.call()
        except _REVERTS as exc:
            raise self._revert_error(exc) from None

    # --- events ---------------------------------------------------------------------------------

    def events(self, event: Any, from_block: int = 0, to_block: int | None = None, **filters: Any) -> list:
        """Decoded logs of one contract event, fetched in pages of PAGE_BLOCKS blocks."""
        last = self.w3.eth.block_number if to_block is None else to_block
        logs = []
        for start in range(from_block, last + 1, PAGE_BLOCKS):
            end = min(start + PAGE_BLOCKS - 1, last)
            logs.extend(event.get_logs(from_block=start, to_block=end, argument_filters=filters or None))
        return logs

    # --- time -----------------------------------------------------------------------------------

    def now(self) -> int:
        """The time the next transaction will be mined at: the clock the contracts' deadlines use.

        On a node, the pending block's timestamp. The latest block's is not enough: a plain
        `anvil` (automine, no block time) mines no block between transactions, so its latest
        timestamp stands still and a daemon waiting for a deadline would wait forever. The
        embedded chain's clock moves only when the harness moves it: its latest block."""
        if self.is_embedded:
            return self.w3.eth.get_block("latest")["timestamp"]
        latest = self.w3.eth.get_block("latest")["timestamp"]
        try:
            pending = self.w3.eth.get_block("pending")["timestamp"]
        except Exception:  # a node without a pending block: the latest is the best clock it has
            return latest
        return max(latest, pending)

    def time_travel(self, seconds: int) -> None:
        """Move the chain's clock forward by `seconds` and mine a block (local backends only)."""
        if self.is_embedded:
            tester = self.w3.provider.ethereum_tester
            tester.time_travel(self.now() + seconds)
            tester.mine_blocks(1)  # so the latest block, which `now()` reads, carries the new time
            return
        try:
            self.w3.provider.make_request("evm_increaseTime", [seconds])
            self.w3.provider.make_request("evm_mine", [])
        except Exception as exc:
            raise ChainError(f"{self.name} does not support time travel: {exc}") from None
