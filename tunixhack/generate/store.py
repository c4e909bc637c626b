"""Append-only, crash-safe output: the main file, the rejects, the errors, and the run summary.

Each finished row is written and flushed at once, and fsynced at least once a second, so a crash loses
at most the row being written. A `kill -9` can leave a torn last line: the next run cuts it off before
appending. A complete line that is not a JSON object (a disk error, a hand edit) is moved to
<stem>.corrupt.jsonl with its line number, so that every tool can read the file again and the row is generated
again; that is the only rewrite, and it is atomic. Nothing else already written is ever rewritten.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

FSYNC_EVERY = 1.0  # seconds
KEYS_BLOCK = 16 << 20  # bytes Arrow reads at once: more than the longest row, or it cannot parse it
SHARD_TAG = re.compile(r"\.shard(\d+)of(\d+)$")  # data/gsm8k.shard1of2.jsonl: shard 1 of 2 of data/gsm8k.jsonl


def shard_path(out: Path, shard: tuple[int, int] | None) -> Path:
    """data/gsm8k.jsonl -> data/gsm8k.shard1of2.jsonl for shard (1, 2); the same path without a shard."""
    if shard is None:
        return out
    return out.with_name(f"{out.name.removesuffix('.jsonl')}.shard{shard[0]}of{shard[1]}.jsonl")


def sibling(out: Path, kind: str) -> Path:
    """data/gsm8k.jsonl -> data/gsm8k.rejects.jsonl (kind 'rejects'), data/gsm8k.summary.json (kind 'summary'),
    data/gsm8k.corrupt.jsonl (kind 'corrupt')."""
    suffix = ".json" if kind == "summary" else ".jsonl"
    return out.with_name(f"{out.name.removesuffix('.jsonl')}.{kind}{suffix}")


def read_jsonl(path: Path) -> list[dict]:
    """Every complete row of a JSONL file (a torn last line is skipped, not repaired)."""
    rows = []
    if not path.exists():
        return rows
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n"):
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return rows


def read_keys(path: Path) -> list[dict] | None:
    """Each row's id and fingerprint, all that resuming needs. Arrow's JSON reader parses only those two fields
    (finished rows with long reasoning are hundreds of MB: a rerun must not decode all of it). None when Arrow
    cannot read the file (a line that is not JSON, an id that is not text): read it row by row then."""
    if not path.exists() or path.stat().st_size == 0:
        return []
    import pyarrow as pa
    import pyarrow.json as pj

    schema = pa.schema([("id", pa.string()), ("fingerprint", pa.string())])
    keys = []
    try:  # streamed a block at a time: memory does not grow with the file
        with pj.open_json(path, read_options=pj.ReadOptions(block_size=KEYS_BLOCK, use_threads=False),
                          parse_options=pj.ParseOptions(explicit_schema=schema,
                                                        unexpected_field_behavior="ignore")) as reader:
            for batch in reader:
                keys += batch.to_pylist()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    return keys


def move_corrupt(path: Path, corrupt: Path) -> list[int]:
    """Move every complete line of `path` that is not a JSON object to `corrupt` (the file's name, the line number
    counted from 1, the text) and rewrite `path` without them; return the line numbers. The moved lines are on
    disk before `path` is replaced, atomically: a crash leaves a line in both places or in `path`, never in
    neither. Blank lines stay (every reader skips them)."""
    tmp = path.with_name(path.name + ".tmp")
    moved: list[dict] = []
    with path.open("rb") as f, tmp.open("wb") as kept:
        for number, line in enumerate(f, 1):
            try:
                ok = not line.strip() or isinstance(json.loads(line), dict)
            except ValueError:  # not JSON, or not UTF-8
                ok = False
            if ok:
                kept.write(line)
            else:
                text = line.decode("utf-8", "replace").rstrip("\n")
                moved.append({"file": path.name, "line": number, "text": text})
        kept.flush()
        os.fsync(kept.fileno())
    if not moved:
        tmp.unlink()
        return []
    with corrupt.open("a", encoding="utf-8") as f:
        f.writelines(json.dumps(m, ensure_ascii=False) + "\n" for m in moved)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return [m["line"] for m in moved]


def cut_torn_tail(path: Path) -> bool:
    """Drop a last line that a crash left without its newline. Returns True if something was cut."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    with path.open("rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":
            return False
        # Walk back to the last newline; everything after it is the torn line.
        pos, chunk = size, 1 << 16
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            block = f.read(pos - start)
            nl = block.rfind(b"\n")
            if nl >= 0:
                f.truncate(start + nl + 1)
                return True
            pos = start
        f.truncate(0)
        return True


@dataclass
class Existing:
    """What earlier runs left: which ids are finished, under which fingerprints, and which failed."""

    done: set[str] = field(default_factory=set)
    accepted: int = 0
    rejected: int = 0
    fingerprints: Counter = field(default_factory=Counter)
    failed: set[str] = field(default_factory=set)   # ids in the errors file not finished since
    torn: list[str] = field(default_factory=list)   # files whose torn last line was cut


class TraceStore:
    def __init__(self, out: Path):
        self.paths = {"main": out, "rejects": sibling(out, "rejects"), "errors": sibling(out, "errors")}
        self.summary_path = sibling(out, "summary")
        self.corrupt_path = sibling(out, "corrupt")
        self._files: dict = {}
        self._last_sync = time.monotonic()
        self._dirty = False

    def load(self) -> Existing:
        existing = Existing()
        for kind, path in self.paths.items():
            if cut_torn_tail(path):
                existing.torn.append(str(path))
            keys = read_keys(path)
            if keys is None:
                self.set_aside_corrupt(path)
                keys = read_jsonl(path)  # Arrow may still refuse it (an id that is not text): row by row
            for row in keys:
                if kind == "errors":
                    existing.failed.add(row.get("id"))
                    continue
                existing.done.add(row.get("id"))
                existing.fingerprints[row.get("fingerprint")] += 1
                if kind == "main":
                    existing.accepted += 1
                else:
                    existing.rejected += 1
        existing.failed -= existing.done
        return existing

    def set_aside_corrupt(self, path: Path) -> None:
        lines = move_corrupt(path, self.corrupt_path)
        if lines:
            shown = ", ".join(map(str, lines[:5])) + (f" and {len(lines) - 5} more" if len(lines) > 5 else "")
            print(f"note: {path}: line{'s' if len(lines) > 1 else ''} {shown} not a JSON object, moved to "
                  f"{self.corrupt_path}; their rows are generated again", file=sys.stderr)

    def write(self, kind: str, row: dict) -> None:
        f = self._files.get(kind)
        if f is None:
            path = self.paths[kind]
            path.parent.mkdir(parents=True, exist_ok=True)
            f = self._files[kind] = path.open("a", encoding="utf-8")
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()  # in the OS now: a killed process loses nothing; fsync guards against power loss
        self._dirty = True
        if time.monotonic() - self._last_sync >= FSYNC_EVERY:
            self.sync()

    def sync(self) -> None:
        if self._dirty:
            for f in self._files.values():
                f.flush()
                os.fsync(f.fileno())
            self._dirty = False
        self._last_sync = time.monotonic()

    def close(self) -> None:
        self.sync()
        for f in self._files.values():
            f.close()
        self._files.clear()

    def write_summary(self, summary: dict) -> None:
        path = self.summary_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)  # atomic: a crash leaves the old summary or the new one, never half
