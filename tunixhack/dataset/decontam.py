"""Decontamination: drop training rows that share an n-gram (13 words by default) with an evaluation set.

The evaluation sets are the ones the student is scored on: GSM8K test, MBPP test, SciQ validation and test.
They load from the Hub with `datasets.load_dataset`, or from local files (`--eval-set KEY=PATH`) in the
datasets' own schemas. An evaluation text shorter than n words is matched whole, if it has at least
SHORT_MIN words (SciQ questions are often 8-12 words long; shorter ones are too generic to mean a leak).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .dedup import removal, words
from ..errors import UserError
from ..generate.offline import HubUnreachable, all_unreachable
from ..generate.source import load_rows
from .traces import file_fingerprint

SHORT_MIN = 8
ROW_FIELDS = ("prompt", "answer")   # what the student reads and writes last; see mix.json's "decontamination"


@dataclass(frozen=True)
class EvalSet:
    dataset: str
    config: str | None
    split: str
    columns: tuple[tuple[str, ...], ...]   # each entry: alternatives, the first present is used


EVAL_SETS = {
    "gsm8k-test": EvalSet("openai/gsm8k", "main", "test", (("question",), ("answer",))),
    # full has `text`, sanitized has `prompt`; both have `code`
    "mbpp-test": EvalSet("google-research-datasets/mbpp", "full", "test", (("text", "prompt"), ("code",))),
    "sciq-validation": EvalSet("allenai/sciq", None, "validation", (("question",),)),
    "sciq-test": EvalSet("allenai/sciq", None, "test", (("question",),)),
}


def parse_eval_files(items: list[str]) -> dict[str, str]:
    """--eval-set KEY=PATH, repeatable."""
    files = {}
    for item in items or []:
        key, sep, path = item.partition("=")
        if not sep or key not in EVAL_SETS:
            raise UserError(f"--eval-set must be KEY=PATH with KEY in {'|'.join(EVAL_SETS)}, got {item!r}")
        if not Path(path).is_file():
            raise UserError(f"--eval-set {key}: file not found: {path}")
        files[key] = path
    return files


def load_eval_texts(key: str, local: str | None) -> tuple[list[str], dict]:
    """One text per (row, column) of the evaluation set, and where it came from (for mix.json)."""
    spec = EVAL_SETS[key]
    if local:
        rows = load_rows(local, None, "train")   # a local file is read whole as the split
        origin = {"file": local, "sha256": file_fingerprint(Path(local))}
    else:
        rows = load_rows(spec.dataset, spec.config, spec.split, local_flag=f"--eval-set {key}=PATH")
        origin = {"dataset": spec.dataset, "config": spec.config, "split": spec.split}
    present = set(rows[0]) if rows else set()
    chosen = []
    for alternatives in spec.columns:
        column = next((c for c in alternatives if c in present), None)
        if column is None:
            raise UserError(f"evaluation set {key} ({local or spec.dataset}) lacks column "
                            f"{' or '.join(alternatives)}; it has {', '.join(sorted(present)) or 'no rows'}")
        chosen.append(column)
    texts = [(index, row[c]) for index, row in enumerate(rows) for c in chosen if isinstance(row[c], str)]
    origin.update(rows=len(rows), columns=chosen)
    return texts, origin


class NgramIndex:
    """n-grams of every evaluation text -> (eval set, row index)."""

    def __init__(self, n: int):
        self.n = n
        self.grams: dict[str, tuple[str, int]] = {}
        self.short: dict[str, tuple[str, int]] = {}             # whole short texts
        self.short_starts: dict[str, set[int]] = defaultdict(set)  # first word -> lengths of short texts

    def add(self, key: str, index: int, text: str) -> None:
        tokens = words(text)
        if len(tokens) >= self.n:
            for i in range(len(tokens) - self.n + 1):
                self.grams.setdefault(" ".join(tokens[i : i + self.n]), (key, index))
        elif len(tokens) >= SHORT_MIN:
            self.short.setdefault(" ".join(tokens), (key, index))
            self.short_starts[tokens[0]].add(len(tokens))

    def find(self, text: str) -> tuple[str, tuple[str, int]] | None:
        """The first shared n-gram (or whole short evaluation text) and its source, or None."""
        tokens = words(text)
        for i in range(len(tokens) - self.n + 1):
            gram = " ".join(tokens[i : i + self.n])
            if gram in self.grams:
                return gram, self.grams[gram]
        for i, first in enumerate(tokens):
            # only where a short text could start: a dict lookup per word instead of a join per length
            for size in sorted(self.short_starts.get(first, ())):
                gram = " ".join(tokens[i : i + size])
                if gram in self.short:
                    return gram, self.short[gram]
        return None


def build_index(n: int, local_files: dict[str, str], keys=tuple(EVAL_SETS)) -> tuple[NgramIndex, dict]:
    index = NgramIndex(n)
    origins, unreachable = {}, []
    for key in keys:
        try:
            texts, origins[key] = load_eval_texts(key, local_files.get(key))
        except HubUnreachable as e:  # go on: one error names every set that needs a local copy
            unreachable.append(e)
            continue
        except UserError as e:
            raise UserError(f"{e} (evaluation set {key}: give a local copy with --eval-set {key}=PATH, "
                            "or skip decontamination with --no-decontam)") from None
        for row_index, text in texts:
            index.add(key, row_index, text)
    if unreachable:
        raise all_unreachable(unreachable, [e.flag for e in unreachable],
                              ", or skip decontamination with --no-decontam")
    return index, origins


def decontaminate(rows: list[dict], index: NgramIndex) -> tuple[list[dict], list[dict]]:
    """Return (clean rows, removals naming the evaluation set, its row and the shared text)."""
    clean, removed = [], []
    for row in rows:
        for field in ROW_FIELDS:
            hit = index.find(row.get(field) or "")
            if hit:
                gram, (key, eval_row) = hit
                removed.append(removal(row, "contaminated",
                                       {"eval_set": key, "eval_row": eval_row, "field": field, "ngram": gram}))
                break
        else:
            clean.append(row)
    return clean, removed
