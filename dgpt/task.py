"""The task spec a round fixes (by CID): phase, labels, λ and the training hyper-parameters.

Defaults are GPT-1's fine-tuning settings for a pre-trained 117M model: lr 6.25e-5, batch 32,
3 epochs, warmup 0.2% of the steps then linear decay, dropout 0.1 on the classifier, λ = 0.5.
The tiny model trained from scratch wants lr 1e-3 and 1 epoch a round (the demo's plan; see
docs/formats.md). Every field is listed in docs/formats.md.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from dgpt.encoding import Encoding
from dgpt.errors import DGPTError

PHASES = ("pretrain", "finetune")


@dataclass(frozen=True)
class TaskSpec:
    phase: str = "finetune"  # "pretrain": L1 on unlabelled text; "finetune": L3 = L2 + λ·L1 on labelled data
    labels: tuple[str, ...] = ()  # class names; label i is output i of the head W_y
    lam: float = 0.5  # λ, weight of the auxiliary language-modelling loss
    lr: float = 6.25e-5
    batch_size: int = 32
    epochs: int = 3
    warmup: float = 0.002  # fraction of the steps with linearly rising lr, then linear decay to 0
    weight_decay: float = 0.01
    clf_dropout: float = 0.1
    # Label smoothing of the trained L2 (the target puts 1 - ε on the label and spreads ε over all
    # the labels). Training only: every evaluation and the aggregator's tests read the plain L2.
    # Meant to keep several-epoch local models from the overconfidence the aggregator's L2 test reads
    # as harm; measured not enough for that (BENCHMARKS.md, bench_federated, label smoothing).
    label_smoothing: float = 0.0
    grad_clip: float = 1.0
    max_len: int = 128  # tokens per example, start and extract tokens included
    seed: int = 0  # shuffling, dropout and the new head's initialisation
    max_update_norm: float = 1e3  # the aggregator rejects deltas with a larger L2 norm
    # The aggregator's commitment to this round's validation data, fixed before the round opens:
    # the Merkle root of the round's slice (dgpt/dataset.py) and the root over every round's slice.
    validation_root: str = ""
    validation_plan_root: str = ""
    # How every oracle packs its delta this round (dgpt/encoding.py): fp32, bf16, int8, int4 or
    # topk; the block size of int8/int4 and the share of values topk sends.
    delta_encoding: str = "fp32"
    encoding_block: int = 64
    topk_fraction: float = 0.01

    def __post_init__(self):
        if self.phase not in PHASES:
            raise DGPTError(f"task spec: phase must be one of {', '.join(PHASES)}, got {self.phase!r}")
        if self.phase == "finetune" and len(self.labels) < 2:
            raise DGPTError("task spec: a finetune task needs at least two labels")
        if len(set(self.labels)) != len(self.labels):
            raise DGPTError(f"task spec: labels repeat: {list(self.labels)}")
        for name in ("lr", "batch_size", "epochs", "max_len"):
            if getattr(self, name) <= 0:
                raise DGPTError(f"task spec: {name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.warmup <= 1:
            raise DGPTError(f"task spec: warmup is the share of the steps with a rising lr, in [0, 1], got {self.warmup}")
        if not 0 <= self.label_smoothing < 1:
            raise DGPTError(f"task spec: label_smoothing is the target's share spread over the labels, in [0, 1), got {self.label_smoothing}")
        try:
            Encoding.of(self)
        except DGPTError as exc:
            raise DGPTError(f"task spec: {exc}") from None
        if self.max_len < 3:
            raise DGPTError("task spec: max_len must leave room for the start and extract tokens")

    def to_bytes(self) -> bytes:
        """Canonical JSON: the same spec gives the same bytes, hence the same CID."""
        d = asdict(self)
        d["labels"] = list(self.labels)
        return json.dumps({"format": "dgpt-task/1", **d}, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> TaskSpec:
        try:
            d = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DGPTError(f"task spec is not JSON: {exc}") from None
        if not isinstance(d, dict):
            raise DGPTError("task spec: a JSON object of the fields in docs/formats.md is expected")
        # A plan's items leave the format out (the plan is a list of task specs): the same fields are a task spec.
        fmt = d.pop("format", "dgpt-task/1")
        if fmt != "dgpt-task/1":
            raise DGPTError(f"task spec: format {fmt!r}, this version reads \"dgpt-task/1\" (or no format field)")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DGPTError(f"task spec: unknown field(s) {', '.join(unknown)}")
        d["labels"] = tuple(d.get("labels", ()))
        try:
            return cls(**d)
        except TypeError as exc:
            raise DGPTError(f"task spec: {exc}") from None
