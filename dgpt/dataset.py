"""Dataset commitments: a deterministic Merkle root over canonical examples, the example count and
a label histogram, written as a manifest whose CID an oracle registers on chain.

Canonical example: UTF-8 JSON `{"label":...,"text":...}` with sorted keys and no spaces (label
omitted for unlabelled text). Leaf = sha256(0x00 || example), node = sha256(0x01 || left || right)
(domain-separated, as in RFC 6962, so a leaf can never pass for a node); an odd node out moves up
unchanged. Examples keep their file order: the root commits to the data set exactly as held.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter

from dgpt.data import Example


def canonical(example: Example) -> bytes:
    d = {"text": example.text} if example.label is None else {"label": example.label, "text": example.text}
    return json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def merkle_root(examples: list[Example]) -> bytes:
    return _node_root([hashlib.sha256(b"\x00" + canonical(e)).digest() for e in examples])


def manifest(examples: list[Example], labels: tuple[str, ...] = ()) -> bytes:
    """The manifest's canonical bytes: same examples, same bytes, same CID on any machine."""
    histogram = Counter(e.label for e in examples if e.label is not None)
    doc = {
        "format": "dgpt-dataset/1",
        "num_examples": len(examples),
        "labels": list(labels),
        "label_histogram": {k: histogram[k] for k in sorted(histogram)},
        "merkle_root": "0x" + merkle_root(examples).hex(),
        "leaf": "sha256(0x00 || canonical example JSON); node: sha256(0x01 || left || right)",
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _node_root(level: list[bytes]) -> bytes:
    if not level:
        return bytes(32)
    while len(level) > 1:
        level = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
    return level[0]


def examples_bytes(examples: list[Example]) -> bytes:
    """Canonical JSONL (one canonical example per line): how a round's validation slice is published."""
    return b"".join(canonical(e) + b"\n" for e in examples)


def examples_from_bytes(data: bytes) -> list[Example]:
    out = []
    for line in data.decode("utf-8").splitlines():
        d = json.loads(line)
        out.append(Example(d["text"], d.get("label")))
    return out


# A fine-tuning round's validation slice is this many times a pre-training round's. A pre-training
# round's paired test reads L1, the mean over a snippet's ~30-50 tokens; a fine-tuning round's
# reads L2, one label a snippet, and needs the snippets: with equal slices a near-chance network's
# label flips and random labels passed its fine-tuning rounds on 250 snippets and were caught in
# every round on 955 (scripts/bench_first_round.py, BENCHMARKS.md).
FINETUNE_SLICE_SHARE = 4


def validation_slices(examples: list[Example], phases: list[str]) -> list[list[Example]]:
    """The aggregator's validation set cut into one fresh slice per round, in order: a slice is
    published with its round's report, so it is never scored again. A round's slice is one unit
    when pre-training and FINETUNE_SLICE_SHARE units when fine-tuning, rounded down; the remainder is left unused."""
    shares = [FINETUNE_SLICE_SHARE if phase == "finetune" else 1 for phase in phases]
    out, start = [], 0
    for share in shares:
        size = len(examples) * share // max(1, sum(shares))
        out.append(examples[start : start + size])
        start += size
    return out


def slices_root(slices: list[list[Example]]) -> bytes:
    """Merkle root over the slices' roots: committed in every round's task spec, it fixes all the
    rounds' validation data before the first round opens."""
    return _node_root([merkle_root(s) for s in slices])
