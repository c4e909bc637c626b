"""Read and write whole trace files (the trace row: "What you get" in README.md), for crap.py's tools.

The generation engine appends rows with tunixhack.generate.store; these helpers read a finished file back with
checks (a file that is not a trace file is an error, not an empty dataset) and write new files atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path

from ..errors import UserError
from ..generate.store import SHARD_TAG, sibling

# The fields every tool here relies on; the other schema fields are optional (converted rows lack most).
REQUIRED_FIELDS = ("id", "category", "prompt", "reasoning", "answer", "verified")
SIDE_SUFFIXES = (".rejects.jsonl", ".errors.jsonl", ".corrupt.jsonl", ".summary.json")  # beside a main file


def main_of(path: Path) -> Path:
    """The trace file that a run's file belongs to: data/gsm8k.rejects.jsonl, data/gsm8k.summary.json and
    data/gsm8k.shard1of2.jsonl (with their own side files) all belong to data/gsm8k.jsonl."""
    name = path.name
    for suffix in SIDE_SUFFIXES:
        if name.endswith(suffix):
            name = name.removesuffix(suffix) + ".jsonl"
            break
    stem = SHARD_TAG.sub("", name.removesuffix(".jsonl"))
    return path.with_name(stem + ".jsonl") if name.endswith(".jsonl") else path


def shard_parts(path: Path) -> list[Path]:
    """The files a trace file's rows are in: the file itself, and the shards that machines wrote of it
    (generate.py --shard K/N writes <stem>.shardKofN.jsonl), read together as one."""
    pattern = re.compile(re.escape(path.name.removesuffix(".jsonl")) + r"\.shard\d+of\d+\.jsonl")
    shards = sorted(p for p in path.parent.glob("*.shard*of*.jsonl") if pattern.fullmatch(p.name))
    return [path, *shards]


def has_rows(path: Path) -> bool:
    """Whether a trace file (or any shard of it) has rows or rejects to read."""
    return any(p.is_file() or sibling(p, "rejects").is_file() for p in shard_parts(path))


# Folders that README commands write inside data/: what they are, by the file that marks them.
OUTPUT_FOLDERS = {"mix.json": "a training mix (crap.py mix)", "compare.json": "a teacher bake-off (crap.py compare)"}


def trace_files(args: list[str], default_dir: str = "data") -> list[Path]:
    """Expand the command line's FILES into trace files: a folder gives its trace files; a run's side files
    (rejects, errors, summary, corrupt lines) and shards, as a glob such as data/* brings them in, stand for
    their main file. A main file whose run kept nothing (only rejects) still counts; one with only failed
    requests has no rows.

    Whatever else `data/*` brings in after the README's commands (reports, charts, a mix, a bake-off, a Hub
    staging folder) is skipped with one line on stderr, so the glob works at any point; a path that does not
    exist is still an error (a typo), and so is a list that leaves no trace file."""
    if not args:
        folder = Path(default_dir)
        if not folder.is_dir():
            raise UserError(f"no trace files given and no {default_dir}/ folder here; give FILES or a folder")
        args = [default_dir]
    files: list[Path] = []
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            reason = not_traces(path)
            if reason:
                print(f"skipped {arg}: {reason}", file=sys.stderr)
            else:
                files.extend(sorted(p for p in {main_of(p) for p in path.glob("*.jsonl")} if has_rows(p)))
        elif not path.name.endswith((".jsonl", *SIDE_SUFFIXES)):
            if not path.exists():
                raise UserError(f"trace file not found: {arg}")
            print(f"skipped {arg}: not a trace file (*.jsonl)", file=sys.stderr)
        elif has_rows(main_of(path)):
            files.append(main_of(path))
        elif not path.exists():
            raise UserError(f"trace file not found: {arg}")
        # else: the errors or summary of a run that kept nothing: no rows to read, and nothing wrong
    if not files:
        raise UserError(f"no trace files (*.jsonl with rows) in {' '.join(args)}")
    return list(dict.fromkeys(files))  # the same file named twice (or through its side files) counts once


def not_traces(folder: Path) -> str | None:
    """Why a folder holds no trace files to read (a mix, a bake-off, nothing), or None if it has some."""
    for marker, what in OUTPUT_FOLDERS.items():
        if (folder / marker).is_file():
            return what
    if not any(has_rows(main_of(p)) for p in folder.glob("*.jsonl")):
        return "no trace files (*.jsonl) in it"
    return None


def read_jsonl_strict(path: Path) -> list[dict]:
    """Every row of a JSONL file; a malformed line is an error naming the line, except a torn last line
    (a crash mid-write, no newline), which is skipped with a warning as tunixhack.generate.store does."""
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
                raise UserError(f"{path}:{number}: not JSON ({e.msg}); a trace file has one JSON object a line (rerun "
                                "the command that wrote it: it moves such lines to <stem>.corrupt.jsonl)")
            if not isinstance(row, dict):
                raise UserError(f"{path}:{number}: not a JSON object; a trace file has one JSON object a line")
            rows.append(row)
    return rows


def read_traces(path: Path) -> list[dict]:
    """The rows of one trace file and its shards, checked for the fields the tools need (none if only its
    rejects exist)."""
    return [row for part in shard_parts(path) for row in checked_rows(part)]


def checked_rows(path: Path) -> list[dict]:
    rows = read_jsonl_strict(path) if path.exists() else []
    for number, row in enumerate(rows, 1):
        missing = [f for f in REQUIRED_FIELDS if f not in row]
        if missing:
            raise UserError(
                f"{path}: row {number} is not a trace row: it lacks {', '.join(missing)} "
                f"(a trace row has {', '.join(REQUIRED_FIELDS)}, ...; see \"What you get\" in README.md)"
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
    """The sibling <stem>.rejects.jsonl of a trace file and of its shards; none is an empty list."""
    sides = [sibling(part, "rejects") for part in shard_parts(path)]
    return [row for side in sides if side.exists() for row in read_jsonl_strict(side)]


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
