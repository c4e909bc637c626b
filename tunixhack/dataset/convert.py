"""Import the original project's CSV outputs into the trace schema, so existing data can be mixed and published.

The original scripts wrote, for example:
    generation_prompt,prompt,response                     (brainstorming, SciQA, code, CreativeWriting)
    Generation Prompt,Prompt,Model_Response,Categories    (Databricks; later copies: prompt,model-response,categories)
    question,answer                                       (gsm8k-thinking.csv)
with `<reasoning>...</reasoning><answer>...</answer>` in the response. Converted rows have verified null
(nothing was checked), teacher unknown, and a stable id `<file stem>/csv/<row number>`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sys
from pathlib import Path

from ..errors import UserError
from ..student import split_tagged
from ..verify import with_check

VERSION = "1"
COLUMNS = {  # our field -> the headers it has had, normalised (lowercase, _ for spaces and dashes)
    "prompt": ("prompt", "question"),
    "response": ("response", "model_response", "answer"),
    "generation_prompt": ("generation_prompt",),
    "category": ("categories", "category"),
}
# File name hint -> (source dataset, category); the first hint found in the lowercased stem wins.
FILE_HINTS = (
    ("gsm8k", "openai/gsm8k", "math"),
    ("sciq", "allenai/sciq", "science"),
    ("databricks", "databricks/databricks-dolly-15k", None),
    ("dolly", "databricks/databricks-dolly-15k", None),
    ("brainstorm", "Wanfq/Explore_Instruct_Brainstorming_10k", "brainstorming"),
    ("rewrit", "Wanfq/Explore_Instruct_Rewriting_10k", "rewriting"),
    ("writing", "sam-paech/essays-creative-writing-prompts", "creative_writing"),
    ("code", "Muennighoff/mbpp", "code"),
    ("mbpp", "Muennighoff/mbpp", "code"),
)
CATEGORY_NAMES = {"science_qa": "science"}  # the original's names -> ours (DESIGN.md)
TEACHER_UNKNOWN = {"backend": "unknown", "model": "unknown"}


def normalise(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")


def find_columns(headers: list[str], path: Path) -> dict[str, str | None]:
    by_norm = {normalise(h): h for h in headers}
    found = {field: next((by_norm[a] for a in aliases if a in by_norm), None) for field, aliases in COLUMNS.items()}
    for field in ("prompt", "response"):
        if found[field] is None:
            raise UserError(
                f"{path}: no {field} column; it has {', '.join(headers) or 'no header'}; expected one of "
                f"{', '.join(COLUMNS[field])} (any case, spaces or dashes)"
            )
    return found


def guess_source(path: Path) -> tuple[str, str | None]:
    stem = path.stem.lower()
    return next(((d, c) for hint, d, c in FILE_HINTS if hint in stem), ("unknown", None))


def convert_file(path: Path, dataset: str | None = None, category: str | None = None) -> tuple[list[dict], list[dict]]:
    """Return (trace rows, rejects) for one CSV file."""
    if not path.is_file():
        raise UserError(f"CSV file not found: {path}")
    guessed_dataset, guessed_category = guess_source(path)
    dataset = dataset or guessed_dataset
    csv.field_size_limit(sys.maxsize)  # responses with long reasoning exceed the 128 KiB default
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = find_columns(reader.fieldnames or [], path)
        if columns["category"] is None and not (category or guessed_category):
            raise UserError(f"{path}: no category column and none known for this file name; give --category")
        fingerprint = hashlib.sha256(
            json.dumps({"converted_from": path.name, "version": VERSION}).encode()
        ).hexdigest()[:16]
        rows, rejects = [], []
        for number, line in enumerate(reader, 1):
            row_category = category or (line.get(columns["category"]) if columns["category"] else None)
            row_category = (row_category or guessed_category or "unknown").strip().lower()
            generation = line.get(columns["generation_prompt"]) if columns["generation_prompt"] else None
            row = {
                "id": f"{path.stem}/csv/{number}",
                "dataset": dataset, "config": None, "split": None,
                "category": CATEGORY_NAMES.get(row_category, row_category),
                "prompt": (line.get(columns["prompt"]) or "").strip(),
                "messages": [{"role": "user", "content": generation}] if generation else None,
                "reasoning": None, "answer": None, "reference": None, "verified": None,
                "finish": None, "thinking_closed": None,
                "teacher": dict(TEACHER_UNKNOWN), "usage": None, "attempt": None,
                "fingerprint": fingerprint,
                "converted_from": {"file": path.name, "row": number, "version": VERSION},
            }
            with_check(row)
            response = line.get(columns["response"]) or ""
            tagged = split_tagged(response)
            reason = ("empty_prompt" if not row["prompt"] else "empty_response" if not response.strip()
                      else "no_tags" if tagged is None else "empty_answer" if not tagged[1] else None)
            if reason:
                rejects.append({**row, "reason": reason, "raw": response})
            else:
                row["reasoning"], row["answer"] = tagged
                rows.append(row)
    return rows, rejects
