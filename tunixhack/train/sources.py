"""Where `--data` points, and the rows of one split read from there.

    data/mix/sft.jsonl     a trace file: its rows, whatever the split
    data/mix               a mix folder (crap.py mix): <split>.jsonl
    staging/               a dataset folder as crap.py push stages and uploads it: README.md + data/<split>.jsonl
                           (the default) or data/<split>-*.parquet (push --format parquet)
    USER/NAME              a Hub dataset (that same folder, fetched with huggingface_hub; HF_TOKEN for a private one)

Each script picks its split (sft.py: sft, grpo.py: rl, eval.py: eval) and `--split` overrides it. A JSONL split
reads back exactly as pushed. From parquet, the columns that push stored as JSON text (their values differ in type
between rows, and `check`) are decoded back, so every field a row carries reads back; but parquet has one schema
per file: a field only some rows have comes back as null in the others (and a nested object gains the other rows'
keys, as null). What was read is recorded in run.json (`Provenance`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path

from tunixhack.errors import UserError
from tunixhack.dataset.hub import JSON_COLUMNS_KEY
from tunixhack.dataset.traces import file_fingerprint, read_traces

FORMS = "a trace .jsonl file, a mix folder, a dataset folder as crap.py push stages it, or a Hub dataset USER/NAME"
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
# Datasets pushed before the metadata existed name their JSON columns in the card only.
CARD_JSON_LINE = re.compile(r"Columns stored as JSON strings[^:]*:(.*?);")


@dataclasses.dataclass
class Provenance:
    data: str            # what --data said
    form: str            # file | mix | dataset folder | hub
    split: str | None
    files: list[str]
    sha256: str          # of the files read, in order
    rows: int
    revision: str | None = None   # the Hub commit read

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def read_split(data: str, split: str) -> tuple[list[dict], Provenance]:
    """The rows of `split` from `data` (any of FORMS); a clear error when there are none."""
    path = Path(data)
    revision = None
    if path.is_file():
        rows, files, form = read_traces(path), [path], "file"
    elif path.is_dir() and _pushed_files(path):
        rows, files, form = *_read_pushed_split(path, split), "dataset folder"
    elif path.is_dir():
        file = path / f"{split}.jsonl"
        if not file.is_file():
            present = sorted(p.stem for p in path.glob("*.jsonl") if p.name != "removed.jsonl")
            raise UserError(f"--data {data} has no split {split!r} ({split}.jsonl); splits here: "
                            f"{', '.join(present) or 'none'} (--split picks one)")
        rows, files, form = read_traces(file), [file], "mix"
    elif HUB_ID.fullmatch(data) and not path.exists():
        folder, revision = _download(data)
        rows, files, form = *_read_pushed_split(folder, split), "hub"
    else:
        raise UserError(f"--data {data}: no such file or folder; --data takes {FORMS}")
    if not rows:
        raise UserError(f"--data {data} has no rows in split {split!r}")
    digest = hashlib.sha256("".join(file_fingerprint(f) for f in files).encode()).hexdigest()
    where = data if form == "hub" else str(path.resolve())  # a resumed run may spell the path differently
    return rows, Provenance(where, form, None if form == "file" else split, [str(f) for f in files], digest,
                            len(rows), revision)


# --- a pushed dataset folder ----------------------------------------------------------------------------
def _pushed_files(folder: Path) -> list[Path]:
    """The split files of a dataset folder as crap.py push stages it (data/*.jsonl or data/*.parquet)."""
    return sorted(p for p in (folder / "data").glob("*") if p.name.endswith((".jsonl", ".parquet")))


def _split_of(file: Path) -> str:
    """data/sft.jsonl and data/sft-00000-of-00001.parquet both hold the split sft."""
    return file.name.removesuffix(".jsonl") if file.name.endswith(".jsonl") else file.name.split("-")[0]


def _read_pushed_split(folder: Path, split: str) -> tuple[list[dict], list[Path]]:
    """(rows, files) of one split of a pushed dataset, whichever form push wrote it in."""
    files = [p for p in _pushed_files(folder) if _split_of(p) == split]
    if not files:
        present = sorted({_split_of(p) for p in _pushed_files(folder)})
        raise UserError(f"{folder} has no split {split!r} (data/{split}.jsonl or data/{split}-*.parquet); splits "
                        f"here: {', '.join(present) or 'none'} (--split picks one)")
    jsonl = [p for p in files if p.name.endswith(".jsonl")]
    if jsonl:  # one trace row a line, as written: no decoding to undo
        return [row for p in jsonl for row in read_traces(p)], jsonl
    return _read_parquet(folder, files), files


def _read_parquet(folder: Path, files: list[Path]) -> list[dict]:
    import pyarrow.parquet as pq

    rows: list[dict] = []
    for file in files:
        table = pq.read_table(file)
        json_columns = _json_columns(table.schema, folder)
        for row in table.to_pylist():
            for name in json_columns & row.keys():
                if isinstance(row[name], str):
                    row[name] = json.loads(row[name])
            rows.append(row)
    return rows


def _json_columns(schema, folder: Path) -> set[str]:
    meta = schema.metadata or {}
    if JSON_COLUMNS_KEY in meta:
        return set(json.loads(meta[JSON_COLUMNS_KEY]))
    card = folder / "README.md"
    found = CARD_JSON_LINE.search(card.read_text(encoding="utf-8")) if card.is_file() else None
    return set(re.findall(r"`([^`]+)`", found.group(1))) if found else set()


# --- the Hub --------------------------------------------------------------------------------------------
def _download(repo_id: str) -> tuple[Path, str]:
    """The dataset's card and split files from the Hub (or the local cache when offline): (folder, commit)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    from tunixhack.generate.offline import hub_offline

    why = hub_offline()  # asked once, no retries: unreachable, the cache is read in offline mode
    try:
        folder = snapshot_download(repo_id, repo_type="dataset", allow_patterns=["README.md", "data/*"])
    except RepositoryNotFoundError:
        hint = "" if os.environ.get("HF_TOKEN") else " (set HF_TOKEN if it is private)"
        raise UserError(f"--data {repo_id}: no such file or folder here, and no such dataset on the Hub{hint}") \
            from None
    except LocalEntryNotFoundError:
        raise UserError(f"--data {repo_id}: no such file or folder here; as a Hub dataset id: "
                        f"{why or 'the Hub cannot be reached'}, and it is not in the local cache") from None
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        raise UserError(f"--data {repo_id}: the Hub answered HTTP {status}") from None
    if not _pushed_files(Path(folder)):
        raise UserError(f"--data {repo_id} has no data/*.jsonl or data/*.parquet files: not a dataset that crap.py "
                        "push uploaded")
    return Path(folder), Path(folder).name  # snapshots/<commit>/
