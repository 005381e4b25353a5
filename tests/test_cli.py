"""The command line: the README's main job, settings precedence, one-line errors."""

from __future__ import annotations

import json

import pytest

from dgpt.cli import main as dgpt_main
from dgpt.config import load_settings
from dgpt.errors import DGPTError
from dgpt.store import LocalStore


def test_demo_runs_a_round_on_embedded_defaults(tmp_path, capsys):
    assert dgpt_main(["demo", "--home", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (round_,) = out["rounds"]
    assert out["chain"] == "embedded" and len(out["rewards"]) == 4
    # the published model and report are in the embedded store under their CIDs
    store = LocalStore(tmp_path / "store")
    report = json.loads(store.get_bytes(round_["report_cid"]))
    assert report["round"] == 1 and len(report["accepted"]) == 4
    assert store.has(round_["model_cid"])


def test_flags_override_environment_override_config_file(tmp_path, monkeypatch):
    config = tmp_path / "dgpt.toml"
    config.write_text('rpc_url = "http://file:1"\nipfs_api = "http://file:2"\nhome = "from-file"\n')
    monkeypatch.setenv("DGPT_IPFS_API", "http://env:2")
    s = load_settings(str(config), rpc_url=None, ipfs_api=None, home="from-flag")
    assert (s.rpc_url, s.ipfs_api, s.home) == ("http://file:1", "http://env:2", "from-flag")


def test_bad_config_file_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("rpc_urll = 'x'\n")
    with pytest.raises(DGPTError, match="unknown key"):
        load_settings(str(bad))
    assert dgpt_main(["demo", "--config", str(tmp_path / "none.toml")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err


def test_demo_against_an_unreachable_chain_fails_in_one_line(capsys):
    assert dgpt_main(["demo", "--rpc-url", "http://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dgpt: error: no JSON-RPC chain answers") and err.count("\n") == 1
