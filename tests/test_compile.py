"""The committed artifacts are what the sources compile to, through py-solc-x and through Hardhat."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from dgpt.chain import compile as solc
from harness.localnet import HARDHAT_CLI, ROOT


def strip_metadata(bytecode: str) -> str:
    """Drop the CBOR metadata trailer solc appends (its length is the last two bytes)."""
    code = bytes.fromhex(bytecode.removeprefix("0x"))
    n = int.from_bytes(code[-2:], "big")
    return code[: -(n + 2)].hex()


def test_committed_artifacts_match_the_sources():
    fresh = solc.compile_contracts()
    assert set(fresh) == set(solc.DEPLOYED)
    for name, artifact in fresh.items():
        committed = (solc.ARTIFACTS / f"{name}.json").read_text()
        assert committed == solc.artifact_text(artifact), f"{name}: run `python -m dgpt.chain.compile`"


def test_check_mode_flags_a_stale_artifact(tmp_path, monkeypatch):
    for name in solc.DEPLOYED:
        shutil.copy(solc.ARTIFACTS / f"{name}.json", tmp_path / f"{name}.json")
    stale = json.loads((tmp_path / "DGPTToken.json").read_text())
    stale["bytecode"] = stale["bytecode"][:-2] + "00"
    (tmp_path / "DGPTToken.json").write_text(solc.artifact_text(stale))
    monkeypatch.setattr(solc, "ARTIFACTS", tmp_path)
    assert solc.main(["--check"]) == 1


@pytest.mark.hardhat
def test_hardhat_compiles_the_same_bytecode(tmp_path):
    # Compile into a scratch folder so the test leaves the checkout untouched.
    out = subprocess.run(
        ["node", str(HARDHAT_CLI), "compile", "--force", "--quiet"],
        cwd=ROOT,
        env={**os.environ, "DGPT_HARDHAT_OUT": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    for name in solc.DEPLOYED:
        hardhat = json.loads((tmp_path / "artifacts" / "contracts" / f"{name}.sol" / f"{name}.json").read_text())
        ours = json.loads((solc.ARTIFACTS / f"{name}.json").read_text())
        assert strip_metadata(hardhat["deployedBytecode"]) == strip_metadata(ours["deployedBytecode"])
        assert re.fullmatch(r"0x[0-9a-f]+", hardhat["bytecode"])
