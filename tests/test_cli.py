"""The command line: the README's main job, settings precedence, one-line errors."""

from __future__ import annotations

import json

import pytest

from cli.main import main as dgpt_main
from conftest import ROOT
from dgpt.config import load_settings
from dgpt.errors import DGPTError
from dgpt.report import Report
from dgpt.store import LocalStore


def test_demo_command_runs_rounds_on_embedded_defaults(tmp_path, capsys):
    args = ["demo", "--home", str(tmp_path), "--json", "--examples-per-oracle", "16", "--pretrain-rounds", "1", "--finetune-rounds", "1",
            "--test-examples", "16"]
    assert dgpt_main(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["phase"] for r in out["rounds"]] == ["pretrain", "finetune"]
    assert out["chain"] == "embedded" and len(out["rewards"]) == 4
    assert set(out["rounds"][1]) >= {"round", "phase", "accuracy", "l1", "l2", "l3", "model_cid", "report_cid"}
    # the published models and reports are in the embedded store under their CIDs
    store = LocalStore(tmp_path / "store")
    report = Report.from_bytes(store.get_bytes(out["rounds"][1]["report_cid"]))
    assert report.round == 2 and len(report.submissions) == 4
    assert store.has(out["rounds"][1]["model_cid"])


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


def test_keystore_round_trip_and_dev_keys_need_the_flag(tmp_path, monkeypatch):
    from dgpt.keys import load_account, new_keystore

    pw = tmp_path / "pw"
    pw.write_text("correct horse\n")
    address = new_keystore(tmp_path / "k.json", "correct horse")
    assert load_account(str(tmp_path / "k.json"), str(pw)).address == address
    pw.write_text("wrong")
    with pytest.raises(DGPTError, match="wrong password"):
        load_account(str(tmp_path / "k.json"), str(pw))
    with pytest.raises(DGPTError, match="add --dev"):
        load_account(dev_key=0)
    with pytest.raises(DGPTError, match="refusing to overwrite"):
        new_keystore(tmp_path / "k.json", "x")


@pytest.mark.anvil
def test_operator_commands_on_anvil(tmp_path, anvil_url, capsys):
    from dgpt.data import as_examples, rotten_tomatoes, write_jsonl

    home = ["--rpc-url", anvil_url, "--home", str(tmp_path)]
    assert dgpt_main(["deploy", *home, "--dev", "--dev-key", "0", "--json"]) == 0
    deployment = json.loads(capsys.readouterr().out.strip())
    assert dgpt_main(["mint", *home, "--dev", "--dev-key", "0", "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "500"]) == 0
    write_jsonl(tmp_path / "d.jsonl", as_examples(rotten_tomatoes()[:20]))
    oracle = [*home, "--dev", "--dev-key", "2"]
    assert dgpt_main(["oracle", "register", *oracle, "--data", str(tmp_path / "d.jsonl"), "--labels", "rotten,fresh", "--stake", "150"]) == 0
    assert dgpt_main(["oracle", "unbond", *oracle, "25"]) == 0
    assert dgpt_main(["oracle", "unstake", *oracle, "25"]) == 0  # the old spelling still works, with a note
    assert "`unstake` is deprecated; use `dgpt oracle unbond`" in capsys.readouterr().err
    assert dgpt_main(["oracle", "status", *oracle, "--json"]) == 0
    me = json.loads(capsys.readouterr().out)
    assert (me["stake"], me["unbonding"], me["examples"]) == (str(100 * 10**18), str(50 * 10**18), 20)
    assert dgpt_main(["oracle", "status", *oracle]) == 0
    assert "               stake: 100 DGPT" in capsys.readouterr().out  # DGPT in the table, wei in --json
    assert dgpt_main(["oracle", "claim", *oracle]) == 0
    assert capsys.readouterr().out.strip() == "nothing to claim: 0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC revealed in no round of this deployment"
    assert dgpt_main(["status", *home, "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["protocol"] == deployment["protocol"] and len(table["oracles"]) == 1
    assert dgpt_main(["status", *home]) == 0
    assert "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC" in capsys.readouterr().out
    # a revert is one line naming the custom error, and nothing is sent
    assert dgpt_main(["oracle", "withdraw", *oracle]) == 1
    assert capsys.readouterr().err.startswith("dgpt: error: reverted with UnbondingNotReady(")


LIGHT = """
import sys
from cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(sorted(m for m in ("torch", "transformers", "web3", "eth_account", "requests") if m in sys.modules), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--help"], ["cid", "{file}"], ["oracle", "--help"], ["dataset", "commitment", "--help"]])
def test_commands_that_need_no_chain_or_model_start_without_loading_them(tmp_path, argv):
    """Every command imported web3, eth-account and torch first (issue 17 measured 3-4 s per start)."""
    import subprocess
    import sys

    (tmp_path / "f.txt").write_text("x")
    args = [a.replace("{file}", str(tmp_path / "f.txt")) for a in argv]
    out = subprocess.run([sys.executable, "-c", LIGHT, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stderr.strip().splitlines()[-1] == "[]", out.stderr[-2000:]


def test_deliberate_padding_prints_no_attention_mask_warning():
    """Every run printed transformers' `We strongly recommend passing in an attention_mask` at users."""
    import subprocess
    import sys

    code = ("from dgpt.model import tiny_gpt2\nfrom dgpt.train import evaluate\nfrom dgpt.task import TaskSpec\n"
            "from dgpt.data import RT_LABELS, Example\n"
            "b = tiny_gpt2(0); b.model.add_head(2, 0); b.labels = RT_LABELS\n"
            "print(evaluate(b, [Example('a fine film indeed', 'fresh'), Example('bad', 'rotten')], TaskSpec(labels=RT_LABELS, max_len=16))['n'])\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "2", out.stderr[-2000:]
    assert "attention_mask" not in out.stderr, out.stderr[-2000:]


@pytest.mark.anvil
@pytest.mark.ipfs
def test_localnet_starts_a_chain_and_an_ipfs_daemon_and_stops_both(tmp_path):
    """`dgpt localnet`: both services answer at the printed URLs; SIGTERM stops both, and a port
    already taken is a one-line error."""
    import signal
    import subprocess
    import sys

    import httpx

    from harness.localnet import free_port, port_is_free

    chain_port, ipfs_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "cli", "localnet", "--home", str(tmp_path), "--chain-port", str(chain_port), "--ipfs-port", str(ipfs_port)]
    proc = subprocess.Popen([*cmd, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        urls = json.loads(proc.stdout.readline())
        assert urls["rpc_url"] == f"http://127.0.0.1:{chain_port}" and urls["ipfs_api"] == f"http://127.0.0.1:{ipfs_port}"
        chain_id = httpx.post(urls["rpc_url"], json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).json()["result"]
        assert int(chain_id, 16) == 31337
        assert httpx.post(f"{urls['ipfs_api']}/api/v0/version").status_code == 200
        busy = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert busy.returncode == 1 and busy.stderr.strip() == (
            f"dgpt: error: --chain-port {chain_port}: something already listens on 127.0.0.1:{chain_port} (pick another port, or stop it)")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert port_is_free(chain_port) and port_is_free(ipfs_port)
    assert (tmp_path / "localnet" / "anvil-state.json").exists()  # a restart continues the same chain


def test_put_and_get_draw_a_byte_bar_on_a_terminal_only(tmp_path, capsys, monkeypatch):
    """`dgpt put` and `dgpt get -o` show progress by bytes on a terminal, and nothing otherwise
    (a script reading their output gets the CID or the path alone)."""
    import os

    src = tmp_path / "weights.bin"
    src.write_bytes(os.urandom(1_200_000))
    home = ["--home", str(tmp_path / "home")]
    assert dgpt_main(["put", str(src), *home]) == 0
    out = capsys.readouterr()
    cid = out.out.strip()
    assert out.err == "" and cid.startswith("bafy")
    monkeypatch.setattr("dgpt.progress.on_terminal", lambda quiet=False: True)
    assert dgpt_main(["put", str(src), *home]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == cid and "adding weights.bin" in out.err and "1.14M" in out.err, out.err
    assert dgpt_main(["get", cid, "-o", str(tmp_path / "back.bin"), *home]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == str(tmp_path / "back.bin") and f"fetching {cid[:16]}" in out.err and "1.14M" in out.err, out.err
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
