"""A catalogue of malformed input across the command line: each case must end in one line on stderr
that says what is wrong, a non-zero exit, no traceback, and (for the chain cases) no transaction."""

from __future__ import annotations

import json
import struct

import pytest

from cli.main import main as dgpt_main
from dgpt.data import RT_LABELS

LABELS = ",".join(RT_LABELS)
GOOD_ROW = json.dumps({"text": "A fine film.", "label": RT_LABELS[0]})


def safetensors_bytes(header: bytes, data: bytes = b"", length: int | None = None) -> bytes:
    return struct.pack("<Q", len(header) if length is None else length) + header + data


@pytest.fixture
def files(tmp_path):
    """Every malformed input the catalogue uses, written once per test."""
    t = tmp_path
    good_task = {"format": "dgpt-task/1", "phase": "finetune", "labels": list(RT_LABELS), "epochs": 1, "batch_size": 2, "max_len": 16}
    deployment = {"token": "0x" + "11" * 20, "protocol": "0x" + "22" * 20, "start_block": 0}
    spec = {
        "good.jsonl": GOOD_ROW + "\n",
        "bad_json.jsonl": GOOD_ROW + "\n{not json\n",
        "no_label.jsonl": json.dumps({"text": "no label here"}) + "\n",
        "unknown_label.jsonl": json.dumps({"text": "x", "label": "meh"}) + "\n",
        "empty_text.jsonl": json.dumps({"text": "  ", "label": RT_LABELS[0]}) + "\n",
        "empty.jsonl": "",
        "no_columns.csv": "sentence,score\nhello,1\n",
        "data.txt": "plain text\n",
        "task_not_json.json": "phase: finetune",
        "task_bad_phase.json": json.dumps({**good_task, "phase": "bogus"}),
        "task_negative_lr.json": json.dumps({**good_task, "lr": -1}),
        "task_warmup_past_one.json": json.dumps({**good_task, "warmup": 1.5}),
        "task_unknown_field.json": json.dumps({**good_task, "learning_rate": 0.1}),
        "task.json": json.dumps(good_task),
        "task_other_format.json": json.dumps({**good_task, "format": "dgpt-task/9"}),
        "task_bad_encoding.json": json.dumps({**good_task, "delta_encoding": "zip"}),
        "not_a_model.safetensors": "hello, I am text",
        "config_syntax.toml": "rpc_url = \n",
        "config_unknown.toml": "rpc_urll = 'http://x'\n",
        "config_type.toml": "rpc_url = 5\n",
        "deployment_garbage.json": "{\"token\": 1",
        "deployment.json": json.dumps(deployment),
        "keystore_garbage.json": "{}",
        "password": "wrong password\n",
        "plan_not_list.json": json.dumps({"phase": "finetune"}),
        "not_gguf.gguf": "GGUX" + "0" * 64,
    }
    for name, text in spec.items():
        (t / name).write_text(text)
    (t / "latin1.jsonl").write_bytes(b'{"text": "caf\xe9", "label": "fresh"}\n')
    (t / "huge_header.safetensors").write_bytes(safetensors_bytes(b"{}", length=1 << 60))
    (t / "header_not_json.safetensors").write_bytes(safetensors_bytes(b"{this is not json}    "))
    header = json.dumps({"w": {"dtype": "F32", "shape": [1024], "data_offsets": [0, 4096]}}).encode()
    (t / "truncated.safetensors").write_bytes(safetensors_bytes(header + b" " * (-len(header) % 8), b"\0" * 100))
    (t / "a_directory").mkdir()
    return t


# (case id, argv with {t} for the folder, what the one line must say)
CASES = [
    ("cid: missing file", ["cid", "{t}/absent.bin"], "cannot read"),
    ("cid: a directory", ["cid", "{t}/a_directory"], "cannot read"),
    ("demo: no oracles", ["demo", "--oracles", "0", "--home", "{t}"], "oracles must be at least 1, got 0"),
    ("demo: negative rounds", ["demo", "--finetune-rounds", "-1", "--home", "{t}"], "finetune rounds must be at least 0, got -1"),
    ("demo: no rounds", ["demo", "--pretrain-rounds", "0", "--finetune-rounds", "0", "--home", "{t}"], "no rounds to run"),
    ("demo: no test snippets", ["demo", "--test-examples", "0", "--home", "{t}"], "test examples must be at least 1, got 0"),
    ("demo: --dashboard with --rpc-url", ["demo", "--rpc-url", "http://127.0.0.1:9", "--home", "{t}", "--dashboard"], "run `dgpt dashboard` beside it"),
    ("config: missing file", ["status", "--config", "{t}/absent.toml"], "does not exist"),
    ("config: TOML syntax", ["status", "--config", "{t}/config_syntax.toml"], "config_syntax.toml"),
    ("config: unknown key", ["status", "--config", "{t}/config_unknown.toml"], "unknown key"),
    ("config: wrong type", ["status", "--config", "{t}/config_type.toml"], "rpc_url"),
    ("rpc: unreachable", ["status", "--rpc-url", "http://127.0.0.1:9", "--home", "{t}"], "no JSON-RPC chain answers"),
    ("rpc: not a URL", ["status", "--rpc-url", "not a url", "--home", "{t}"], "not a url"),
    ("rpc: embedded chain for an operator command", ["status", "--home", "{t}"], "needs a persistent chain"),
    ("deployment: missing", ["status", "--rpc-url", "http://127.0.0.1:9", "--home", "{t}/none"], "no deployment"),
    ("deployment: not JSON", ["status", "--rpc-url", "http://127.0.0.1:9", "--deployment", "{t}/deployment_garbage.json"], "not a deployment file"),
    ("data: missing file", ["dataset", "commitment", "{t}/absent.jsonl", "--labels", LABELS, "--home", "{t}"], "no such file"),
    ("data: bad JSON line", ["dataset", "commitment", "{t}/bad_json.jsonl", "--labels", LABELS, "--home", "{t}"], "bad_json.jsonl:2"),
    ("data: missing label", ["dataset", "commitment", "{t}/no_label.jsonl", "--labels", LABELS, "--home", "{t}"], "no_label.jsonl:1: missing 'label'"),
    ("data: unknown label", ["dataset", "commitment", "{t}/unknown_label.jsonl", "--labels", LABELS, "--home", "{t}"], "is not one of"),
    ("data: empty text", ["dataset", "commitment", "{t}/empty_text.jsonl", "--labels", LABELS, "--home", "{t}"], "missing or empty 'text'"),
    ("data: empty file", ["dataset", "commitment", "{t}/empty.jsonl", "--labels", LABELS, "--home", "{t}"], "no examples"),
    ("data: CSV without text/label", ["dataset", "commitment", "{t}/no_columns.csv", "--labels", LABELS, "--home", "{t}"], "no_columns.csv"),
    ("data: unknown format", ["dataset", "commitment", "{t}/data.txt", "--labels", LABELS, "--home", "{t}"], "unknown format"),
    ("data: not UTF-8", ["dataset", "commitment", "{t}/latin1.jsonl", "--labels", LABELS, "--home", "{t}"], "not UTF-8"),
    ("task: not JSON", ["worker", "eval", "--model", "{t}/m.safetensors", "--task", "{t}/task_not_json.json", "--data", "{t}/good.jsonl"], "task spec"),
    ("task: bad phase", ["worker", "eval", "--model", "{t}/m.safetensors", "--task", "{t}/task_bad_phase.json", "--data", "{t}/good.jsonl"], "phase must be one of"),
    ("task: negative lr", ["worker", "eval", "--model", "{t}/m.safetensors", "--task", "{t}/task_negative_lr.json", "--data", "{t}/good.jsonl"], "lr must be positive"),
    ("task: warmup past 1", ["worker", "eval", "--model", "{t}/m.safetensors", "--task", "{t}/task_warmup_past_one.json", "--data", "{t}/good.jsonl"],
     "warmup is the share of the steps"),
    ("task: unknown field", ["worker", "eval", "--model", "{t}/m.safetensors", "--task", "{t}/task_unknown_field.json", "--data", "{t}/good.jsonl"], "learning_rate"),
    ("task: another format", ["worker", "eval", "--model", "{t}/m.safetensors", "--task", "{t}/task_other_format.json", "--data", "{t}/good.jsonl"], "this version reads"),
    ("task: unknown delta encoding", ["worker", "eval", "--model", "{t}/m.safetensors", "--task", "{t}/task_bad_encoding.json", "--data", "{t}/good.jsonl"], "delta_encoding 'zip' is not one of"),
    ("task: missing file", ["worker", "eval", "--model", "{t}/m.safetensors", "--task", "{t}/absent.json", "--data", "{t}/good.jsonl"], "cannot read"),
    ("model: missing file", ["worker", "eval", "--model", "{t}/absent.safetensors", "--task", "{t}/task.json", "--data", "{t}/good.jsonl"], "absent.safetensors"),
    ("model: not safetensors", ["worker", "eval", "--model", "{t}/not_a_model.safetensors", "--task", "{t}/task.json", "--data", "{t}/good.jsonl"], "not_a_model.safetensors"),
    ("model: header claims a huge size", ["worker", "eval", "--model", "{t}/huge_header.safetensors", "--task", "{t}/task.json", "--data", "{t}/good.jsonl"], "huge_header.safetensors"),
    ("model: header not JSON", ["worker", "eval", "--model", "{t}/header_not_json.safetensors", "--task", "{t}/task.json", "--data", "{t}/good.jsonl"], "header_not_json.safetensors"),
    ("model: truncated data", ["worker", "eval", "--model", "{t}/truncated.safetensors", "--task", "{t}/task.json", "--data", "{t}/good.jsonl"], "truncated.safetensors"),
    ("model init: not a GGUF", ["model", "init", "--out", "{t}/o.safetensors", "--gguf", "{t}/not_gguf.gguf"], "not_gguf.gguf"),
    ("model init: missing HF dir", ["model", "init", "--out", "{t}/o.safetensors", "--hf-dir", "{t}/absent_dir"], "absent_dir"),
    ("cid arg: not a CID", ["get", "notacid", "--home", "{t}"], "not a CID"),
    ("cid arg: absent from the store", ["get", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "--home", "{t}"], "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
    ("ipfs: unreachable daemon", ["get", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "--ipfs-api", "http://127.0.0.1:9"], "127.0.0.1:9"),
    ("keystore: missing file", ["transfer", "0x0000000000000000000000000000000000000001", "1", "--home", "{t}", "--rpc-url", "http://127.0.0.1:9", "--keystore", "{t}/absent.json", "--password-file", "{t}/password"], "absent.json"),
    ("keystore: not a keystore", ["transfer", "0x0000000000000000000000000000000000000001", "1", "--home", "{t}", "--rpc-url", "http://127.0.0.1:9", "--keystore", "{t}/keystore_garbage.json", "--password-file", "{t}/password"], "keystore"),
    ("keystore: wrong password", ["transfer", "0x0000000000000000000000000000000000000001", "1", "--home", "{t}", "--rpc-url", "http://127.0.0.1:9", "--keystore", "{t}/k.json", "--password-file", "{t}/password"], "wrong password"),
    ("keys: dev key without --dev", ["transfer", "0x0000000000000000000000000000000000000001", "1", "--home", "{t}", "--rpc-url", "http://127.0.0.1:9", "--dev-key", "0"], "--dev"),
    ("keys: no key at all", ["transfer", "0x0000000000000000000000000000000000000001", "1", "--home", "{t}", "--rpc-url", "http://127.0.0.1:9"], "keystore"),
    ("tokens: exponent", ["oracle", "register", "--data", "{t}/good.jsonl", "--labels", LABELS, "--stake", "1e9", "--home", "{t}", "--rpc-url", "http://127.0.0.1:9", "--dev", "--dev-key", "2"], "no exponent"),
    ("tokens: 19 decimals", ["transfer", "0x0000000000000000000000000000000000000001", "0.0000000000000000001", "--home", "{t}", "--rpc-url", "http://127.0.0.1:9", "--dev", "--dev-key", "0"], "more than 18 decimals"),
    ("tokens: negative", ["oracle", "add-stake", "-5", "--home", "{t}", "--rpc-url", "http://127.0.0.1:9", "--dev", "--dev-key", "2"], "negative"),
    ("tokens: not a number", ["deploy", "--min-stake", "lots", "--home", "{t}", "--rpc-url", "http://127.0.0.1:9", "--dev", "--dev-key", "0"], "not a decimal number"),
    ("transfer: not an address", ["transfer", "0xbad", "1", "--home", "{t}", "--rpc-url", "http://127.0.0.1:9", "--dev", "--dev-key", "0"], "'0xbad' is not an Ethereum address"),
    ("fund: not an address", ["fund", "0x12345", "1", "--home", "{t}", "--rpc-url", "http://127.0.0.1:9", "--dev", "--dev-key", "0"], "'0x12345' is not an Ethereum address"),
    ("fund: not an amount", ["fund", "0x0000000000000000000000000000000000000001", "lots", "--home", "{t}", "--rpc-url", "http://127.0.0.1:9", "--dev", "--dev-key", "0"], "not a decimal number"),
    ("deploy: no unbonding period", ["deploy", "--unbonding-period", "0", "--home", "{t}", "--rpc-url", "http://127.0.0.1:9", "--dev", "--dev-key", "0"], "at least 1 second"),
    ("dataset rotten-tomatoes: no shards", ["dataset", "rotten-tomatoes", "--out", "{t}/rt", "--shards", "0"], "need at least one"),
    ("aggregator: plan not a list", ["aggregator", "run", "--genesis", "{t}/not_a_model.safetensors", "--plan", "{t}/plan_not_list.json", "--validation", "{t}/good.jsonl", "--dev", "--dev-key", "1", "--home", "{t}", "--rpc-url", "http://127.0.0.1:9"], "plan"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_line(case, files, capsys, monkeypatch):
    from dgpt.keys import new_keystore

    monkeypatch.delenv("DGPT_PASSWORD", raising=False)
    monkeypatch.setattr("getpass.getpass", lambda *a, **k: (_ for _ in ()).throw(AssertionError("prompted for a password")))
    if "k.json" in " ".join(case[1]):
        new_keystore(files / "k.json", "the right one")
    _, argv, says = case
    code = dgpt_main([a.replace("{t}", str(files)) for a in argv])  # an uncaught exception fails the test
    err = capsys.readouterr().err
    assert code not in (0, None)
    assert err.startswith("dgpt: error: ") and err.count("\n") == 1, err
    assert says.replace("{t}", str(files)) in err, err
    assert "Traceback" not in err


def test_catalogue_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.anvil
def test_chain_writes_that_would_revert_send_nothing(tmp_path, anvil_url, capsys):
    """Reverting calls are estimated first: the error names the contract error and no nonce moves."""
    from dgpt.chain.client import Chain, dev_accounts

    home = str(tmp_path)
    common = ["--rpc-url", anvil_url, "--home", home, "--dev"]
    assert dgpt_main(["deploy", *common, "--dev-key", "0"]) == 0
    (tmp_path / "data.jsonl").write_text(GOOD_ROW + "\n")
    (tmp_path / "plan.json").write_text('[{"labels": ["rotten", "fresh"]}]')
    capsys.readouterr()
    chain = Chain.connect(anvil_url)
    oracle, stranger = dev_accounts(4)[2], dev_accounts(4)[3]
    before = {a.address: chain.w3.eth.get_transaction_count(a.address) for a in (oracle, stranger)}
    cases = [
        (["oracle", "register", *common, "--dev-key", "2", "--data", f"{home}/data.jsonl", "--labels", LABELS, "--stake", "1"], "StakeBelowMinimum(oracle=0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC, stake=1 DGPT, minimum=100 DGPT)"),
        (["transfer", *common, "--dev-key", "3", stranger.address, "100000000"], "ERC20InsufficientBalance"),
        (["aggregator", "run", *common, "--dev-key", "1", "--genesis", f"{home}/data.jsonl", "--plan", f"{home}/plan.json",
          "--validation", f"{home}/data.jsonl", "--reward-budget", "1000000000"], "over this deployment's ceiling"),
        (["oracle", "withdraw", *common, "--dev-key", "2"], "NotRegistered"),
        (["oracle", "add-stake", "5", *common, "--dev-key", "2"], "NotRegistered"),
        (["oracle", "register", *common, "--dev-key", "2", "--data", f"{home}/data.jsonl", "--labels", LABELS, "--stake", "1000000"], "ERC20InsufficientBalance"),
        (["oracle", "unbond", "5", *common, "--dev-key", "2"], "NotRegistered"),
        (["challenge", "1", *common, "--dev-key", "3"], "UnknownRound"),
        (["validator", "run", *common, "--dev-key", "3"], "holds no validator seat"),
        (["validator", "seat", stranger.address, *common, "--dev-key", "3"], "AccessControlUnauthorizedAccount"),
        (["bond", "deposit", "5", *common, "--dev-key", "3"], "ERC20InsufficientBalance"),
        (["bond", "withdraw", "5", *common, "--dev-key", "3"], "free=0 DGPT, required=5 DGPT)"),  # amounts in DGPT, not wei
        (["deploy", *common, "--dev-key", "3", "--validator-quorum", "1"], "must be 0 or a majority of the 3 seats"),
        (["fund", stranger.address, "1000000", *common, "--dev-key", "3"], f"{stranger.address} has "),  # more ETH than it holds
        (["model", "export", "--model", "latest", "--out", f"{home}/hf", "--rpc-url", anvil_url, "--home", home], "no round is final yet"),
    ]
    for argv, says in cases:
        assert dgpt_main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("dgpt: error: ") and err.count("\n") == 1 and says in err, err
    assert {a.address: chain.w3.eth.get_transaction_count(a.address) for a in (oracle, stranger)} == before
