"""The architecture as rules: the core imports no role and no harness; the roles import no harness;
the report's slash reasons are the contract's."""

from __future__ import annotations

import ast
import json
import re

import pytest

from conftest import ROOT
from dgpt.chain.protocol import SlashReason
from dgpt.report import Reason


def imported_packages(package: str) -> dict[str, set[str]]:
    """module file -> top-level packages it imports (anywhere in the file, lazy imports included)."""
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tops = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                tops |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                tops.add(node.module.split(".")[0])
        out[str(path.relative_to(ROOT))] = tops
    return out


@pytest.mark.parametrize("package, forbidden", [
    ("dgpt", {"oracle", "aggregator", "validator", "harness", "cli", "dashboard"}),
    ("oracle", {"aggregator", "validator", "harness", "cli", "dashboard"}),
    ("aggregator", {"oracle", "validator", "harness", "cli", "dashboard"}),
    ("validator", {"oracle", "aggregator", "harness", "cli", "dashboard"}),
    ("dashboard", {"oracle", "aggregator", "validator", "harness", "cli"}),  # reads through the core only
])
def test_dependencies_point_one_way(package, forbidden):
    bad = {f: sorted(tops & forbidden) for f, tops in imported_packages(package).items() if tops & forbidden}
    assert not bad, f"{package} must not import {sorted(forbidden)}: {bad}"


@pytest.mark.parametrize("enum", ["Fault", "Outcome"])
def test_dispute_enums_are_the_contracts(enum):
    from dgpt.chain import protocol

    source = (ROOT / "contracts" / "DGPTProtocol.sol").read_text()
    body = re.search(rf"enum {enum} \{{(.*?)\}}", source, re.S).group(1)
    members = [re.sub(r"//.*", "", line).strip().rstrip(",") for line in body.splitlines()]
    members = [m for m in members if m]
    assert [re.sub(r"(?<!^)([A-Z])", r"_\1", m).upper() for m in members] == [m.name for m in getattr(protocol, enum)]


def test_slash_reasons_are_the_contracts():
    source = (ROOT / "contracts" / "OracleRegistry.sol").read_text()
    body = re.search(r"enum SlashReason \{(.*?)\}", source, re.S).group(1)
    members = [re.sub(r"//.*", "", line).strip().rstrip(",") for line in body.splitlines()]
    members = [m for m in members if m]
    assert [re.sub(r"(?<!^)([A-Z])", r"_\1", m).upper() for m in members] == [r.name for r in SlashReason]
    abi = json.loads((ROOT / "dgpt" / "chain" / "artifacts" / "DGPTProtocol.json").read_text())["abi"]
    slash = next(i for i in abi if i.get("name") == "slash")
    assert slash["inputs"][2]["internalType"] == "enum OracleRegistry.SlashReason"
    # every slashable verdict maps to its own code, and every code has a verdict
    codes = [r.slash_reason for r in Reason if r.slash_reason is not None]
    assert sorted(codes) == list(SlashReason)
