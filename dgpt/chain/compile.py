"""Compile contracts/*.sol into the committed artifacts (ABI, bytecode) in dgpt/chain/artifacts.

Run `python -m dgpt.chain.compile` after changing a contract. It needs the npm packages (solcjs and
OpenZeppelin, `npm ci`); running the protocol needs only the committed artifacts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import solcx

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SOLC_SHIM = ROOT / "scripts" / "solc.js"
SOLC_VERSION = "0.8.28"
# The contracts the Python layer deploys; libraries and abstract bases are compiled into them.
DEPLOYED = ("DGPTToken", "DGPTProtocol")

SETTINGS = {
    "evmVersion": "cancun",
    "optimizer": {"enabled": True, "runs": 200},
    "viaIR": True,  # the protocol fits the 24,576-byte code limit only through the IR pipeline
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "metadata"]}},
}


def standard_input() -> dict:
    """The solc standard-JSON input: every contract source under its project-relative name, as Hardhat names it."""
    sources = {
        f"contracts/{p.name}": {"content": p.read_text()} for p in sorted(CONTRACTS.glob("*.sol"))
    }
    return {"language": "Solidity", "sources": sources, "settings": SETTINGS}


def compile_contracts() -> dict[str, dict]:
    """Compile with solcjs through py-solc-x and return {contract name: artifact}."""
    if not SOLC_SHIM.exists() or not (ROOT / "node_modules" / "solc").exists():
        raise RuntimeError("solcjs is not installed: run `npm ci` in the project root first")
    try:
        out = solcx.compile_standard(standard_input(), solc_binary=SOLC_SHIM, allow_paths=[str(ROOT)])
    except solcx.exceptions.SolcError as exc:
        # py-solc-x puts the whole JSON output in the message; keep only the compiler's diagnostics.
        raise RuntimeError(exc.message) from None
    artifacts = {}
    for source, contracts in out["contracts"].items():
        for name, c in contracts.items():
            if name in DEPLOYED:
                artifacts[name] = {
                    "contractName": name,
                    "sourceName": source,
                    "compiler": SOLC_VERSION,
                    "settings": {k: v for k, v in SETTINGS.items() if k != "outputSelection"},
                    "abi": c["abi"],
                    "bytecode": "0x" + c["evm"]["bytecode"]["object"],
                    "deployedBytecode": "0x" + c["evm"]["deployedBytecode"]["object"],
                }
    return artifacts


def artifact_text(artifact: dict) -> str:
    return json.dumps(artifact, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed artifacts differ from the sources")
    args = parser.parse_args(argv)
    try:
        artifacts = compile_contracts()
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    stale = []
    for name, artifact in artifacts.items():
        path = ARTIFACTS / f"{name}.json"
        text = artifact_text(artifact)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"error: artifacts out of date for {', '.join(stale)}: run `python -m dgpt.chain.compile`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
