"""Read and write whole trace files (DESIGN.md's trace row schema), for the cross-dataset tools in crap.py.

The generation engine appends rows with tunixhack.store; these helpers read a finished file back with
checks (a file that is not a trace file is an error, not an empty dataset) and write new files atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from .errors import UserError
from .store import sibling

# The fields every tool here relies on; the other schema fields are optional (converted rows lack most).
REQUIRED_FIELDS = ("id", "category", "prompt", "reasoning", "answer", "verified")
SIDE_FILES = (".rejects.jsonl", ".errors.jsonl")



def is_side_file(path: Path) -> bool:
    return path.name.endswith(SIDE_FILES)


def trace_files(args: list[str], default_dir: str = "data") -> list[Path]:
    """Expand the command line's FILES: folders give their *.jsonl trace files (not rejects/errors)."""
    if not args:
        folder = Path(default_dir)
        if not folder.is_dir():
            raise UserError(f"no trace files given and no {default_dir}/ folder here; give FILES or a folder")
        args = [default_dir]
    files: list[Path] = []
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            # A run where every row was rejected leaves only <stem>.rejects.jsonl: it still counts.
            found = {p for p in path.glob("*.jsonl") if not is_side_file(p)}
            found |= {p.with_name(p.name.removesuffix(".rejects.jsonl") + ".jsonl")
                      for p in path.glob("*.rejects.jsonl")}
            if not found:
                raise UserError(f"no trace files (*.jsonl) in {arg}")
            files.extend(sorted(found))
        elif is_side_file(path):
            raise UserError(f"{arg} is a side file; give the main trace file, its rejects are read next to it")
        elif path.is_file() or sibling(path, "rejects").is_file():
            files.append(path)
        else:
            raise UserError(f"trace file not found: {arg}")
    return list(dict.fromkeys(files))  # the same file named twice counts once


def read_jsonl_strict(path: Path) -> list[dict]:
    """Every row of a JSONL file; a malformed line is an error naming the line, except a torn last line
    (a crash mid-write, no newline), which is skipped with a warning as tunixhack.store does."""
    rows = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                if not line.endswith("\n"):
                    print(f"warning: {path}:{number}: torn last line skipped", file=sys.stderr)
                    continue
                raise UserError(f"{path}:{number}: not JSON ({e.msg}); a trace file has one JSON object a line")
            if not isinstance(row, dict):
                raise UserError(f"{path}:{number}: not a JSON object; a trace file has one JSON object a line")
            rows.append(row)
    return rows


def read_traces(path: Path) -> list[dict]:
    """The rows of one trace file, checked for the fields the tools need (none if only its rejects exist)."""
    rows = read_jsonl_strict(path) if path.exists() else []
    for number, row in enumerate(rows, 1):
        missing = [f for f in REQUIRED_FIELDS if f not in row]
        if missing:
            raise UserError(
                f"{path}: row {number} is not a trace row: it lacks {', '.join(missing)} "
                f"(a trace row has {', '.join(REQUIRED_FIELDS)}, ...; see DESIGN.md)"
            )
        wrong = [f for f in ("id", "category", "prompt") if not isinstance(row[f], str) or not row[f]]
        wrong += [f for f in ("reasoning", "answer") if not isinstance(row[f], (str, type(None)))]
        if row["verified"] not in (True, False, None):
            wrong.append("verified")
        if wrong:
            raise UserError(f"{path}: row {number} ({row.get('id')!r}) has a bad {', '.join(wrong)}: id, category and "
                            "prompt are non-empty text, reasoning and answer text, verified true/false/null")
    return rows


def read_rejects(path: Path) -> list[dict]:
    """The sibling <stem>.rejects.jsonl of a trace file; none is an empty list."""
    rejects = sibling(path, "rejects")
    return read_jsonl_strict(rejects) if rejects.exists() else []


def reason_name(reject: dict) -> str:
    """A reject's reason without its detail: 'parse_error: KeyError: x' counts as parse_error."""
    return (reject.get("reason") or "unknown").split(":")[0].strip()


def file_fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Write a whole file atomically: a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
