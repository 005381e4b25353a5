"""The README's "Operating a network" block, run exactly as written (scripts/operate_network.py):
local services on a plain Anvil that mines only when sent a transaction (automine, no block time)
and a js-ipfs daemon, five fresh keystores funded with `dgpt fund`, the roles as separate
processes, then status, audit, claim, unbond, withdraw and the export loaded by transformers.
Nothing here moves the chain's clock: the roles must see deadlines pass by the wall clock alone."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from operate_network import run  # noqa: E402


@pytest.mark.anvil
@pytest.mark.ipfs
def test_the_readme_network_block_runs_as_written(tmp_path):
    result = run(tmp_path / "net", timeout=900)
    out = result["stdout"]
    assert result["ok"], out[-4000:]
    assert len(re.findall(r"^sent 10 ETH to 0x[0-9a-fA-F]{40}; it now has 10 ETH for gas$", out, re.M)) == 5
    # the round became final with both honest oracles merged and paid, and anyone's audit agrees
    assert re.search(r"^\s+1\s+final\s", out, re.M), out
    # columns: round, oracle, on chain, verdict, weight, merge L2 gain (leave-one-out +- se), reward
    merged = re.findall(r"^\s+1\s+0x[0-9a-fA-F]{40}\s+revealed\s+merged\s+400\s+[+-]\d+\.\d{4} \+- \d+\.\d{4}\s+(\d+\.\d+)\s*$", out, re.M)
    assert len(merged) == 2 and all(float(r) > 0 for r in merged), out
    assert re.search(r"^round 1: OK: published model (\S+), recomputed \1$", out, re.M), out
    # the daemon claimed already; a claim from the chain says so instead of saying nothing
    assert re.search(r"^round 1: \d+(\.\d+)? DGPT already claimed$", out, re.M), out
    assert re.search(r"^withdrawn: 100 DGPT back in 0x", out, re.M), out
    # the exported model answers through transformers' pipeline with one of the task's labels
    assert re.search(r"^\[\{'label': '(rotten|fresh)', 'score': [0-9.]+\}\]$", out, re.M), out
    assert "Writing model shards" not in out
    # the block stopped its own services: the ports are free again
    from harness.localnet import port_is_free

    assert all(port_is_free(p) for p in result["ports"].values())
