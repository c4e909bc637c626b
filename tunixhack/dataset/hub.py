"""Publish trace files as a Hugging Face Hub dataset: JSONL (or parquet) splits, a dataset card, a collection.

`stage()` builds the exact folder that is uploaded: README.md + data/<split>.jsonl (the default: one trace row a
line, as the trace files hold them, which is what readers of reasoning-trace datasets fetch by name) or
data/<split>-00000-of-00001.parquet (`--format parquet`); the card's `configs:` names the files of each split, so
`load_dataset` and the Hub's viewer read either. `push()` uploads it with huggingface_hub (create repo, preupload,
commit) and adds it to a collection.
The token comes from HF_TOKEN or the cached login (huggingface_hub reads both) and is never printed.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .card import render_card
from ..errors import UserError
from .traces import main_of, read_rejects, read_traces, reason_name, trace_files, write_jsonl

MIX_SPLITS = ("sft", "rl", "eval")
FORMATS = ("jsonl", "parquet")
JSON_COLUMNS_KEY = b"tunixhack_json_columns"  # parquet schema metadata: the columns stored as JSON text
# Always JSON text: `check` is a tagged union (math, choice, code...) whose kinds have different keys; Arrow would
# merge them into one struct with every key, null where a kind lacks it, and a row would not read back as written.
JSON_ALWAYS = {"check"}
REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")


def split_sources(path: Path) -> tuple[dict[str, Path], dict | None]:
    """Split name -> trace file, and the mix.json when PATH is a mix folder.

    A mix folder gives its sft/rl/eval files; another folder, each trace file as a split named after it;
    one file, the split `train`."""
    if path.is_file():
        return {"train": main_of(path)}, None  # a run's rejects or summary, or one shard: its whole trace file
    if not path.is_dir():
        raise UserError(f"nothing to push at {path}: give a trace file, a folder of them or a mix folder")
    if (path / "mix.json").is_file():
        mix = json.loads((path / "mix.json").read_text())
        return {s: path / f"{s}.jsonl" for s in MIX_SPLITS if (path / f"{s}.jsonl").is_file()}, mix
    files = [p for p in trace_files([str(path)]) if p.name != "removed.jsonl"]
    if not files:
        raise UserError(f"no trace files (*.jsonl) in {path}")
    return {re.sub(r"\W", "_", p.stem): p for p in files}, None


def public_row(row: dict) -> dict:
    """The row as published: the teacher's endpoint is a private network address, not provenance."""
    teacher = row.get("teacher")
    if isinstance(teacher, dict) and "endpoint" in teacher:
        row = {**row, "teacher": {k: v for k, v in teacher.items() if k != "endpoint"}}
    return row


def has_empty_struct(t: pa.DataType) -> bool:
    if pa.types.is_struct(t):
        return t.num_fields == 0 or any(has_empty_struct(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return has_empty_struct(t.value_type)
    return False


def to_table(rows: list[dict], json_columns: set[str]) -> pa.Table:
    """Columns keep their nested types (messages, usage...) where Arrow can unify them across rows; a column
    whose values disagree in type (recipes' extra fields) is stored as JSON text, named in the card and added to
    json_columns."""
    names = list(dict.fromkeys(k for r in rows for k in r))
    columns = {}
    for name in names:
        values = [r.get(name) for r in rows]
        try:
            array = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            array = None
        if array is None or has_empty_struct(array.type) or name in JSON_ALWAYS:
            json_columns.add(name)
            array = pa.array([None if v is None else json.dumps(v, ensure_ascii=False) for v in values], pa.string())
        columns[name] = array
    return pa.table(columns)


def stage(path: Path, repo_id: str, folder: Path, fmt: str = "jsonl") -> dict:
    """Write the folder to upload; return a summary (splits and their rows)."""
    check_repo_id(repo_id)
    if fmt not in FORMATS:
        raise UserError(f"--format must be {' or '.join(FORMATS)}, got {fmt!r}")
    sources, mix = split_sources(path)
    splits = {name: [public_row(r) for r in read_traces(p)] for name, p in sources.items()}
    if not any(splits.values()):
        raise UserError(f"nothing to push: {path} has no rows")
    rejects = {p.name: Counter(reason_name(r) for r in read_rejects(p)) for p in sources.values()}
    if mix:  # the mix's inputs may still be where it read them: their rejects are part of the yield
        for item in mix.get("inputs", []):
            source = Path(item["path"])
            if source.is_file():
                rejects[source.name] = Counter(reason_name(r) for r in read_rejects(source))
    rejects = {k: v for k, v in rejects.items() if v}

    clear_staging(folder)
    (folder / "data").mkdir(parents=True)
    splits = {name: rows for name, rows in splits.items() if rows}
    # One table over every split, then sliced: all splits share one schema (a column that is all null in one split
    # still has the type the other splits give it), as the Hub's loader expects of parquet files, and as the card
    # declares it for JSONL files (whose readers would otherwise guess a type per file).
    json_columns: set[str] = set()
    table = to_table([r for rows in splits.values() for r in rows], json_columns)
    parts, offset = {}, 0
    for name, rows in splits.items():
        parts[name], offset = table.slice(offset, len(rows)), offset + len(rows)
    sizes = {name: part.nbytes for name, part in parts.items()}  # in memory, as dataset_info counts num_bytes
    if fmt == "parquet":
        # Named in the files too, so that train/ decodes them back (tunixhack/train/sources.py).
        metadata = {**(table.schema.metadata or {}), JSON_COLUMNS_KEY: json.dumps(sorted(json_columns))}
        for name, part in parts.items():
            pq.write_table(part.replace_schema_metadata(metadata), folder / "data" / f"{name}-00000-of-00001.parquet")
        features, json_text = None, sorted(json_columns)
    else:
        for name, rows in splits.items():
            write_jsonl(folder / "data" / f"{name}.jsonl", rows)
        features, json_text = features_of(table.schema, json_columns), []  # JSONL keeps every value as it is
    card = render_card(repo_id, splits, mix, rejects, json_text, sizes, data_files(fmt), features)
    (folder / "README.md").write_text(card, encoding="utf-8")
    return {"folder": str(folder), "splits": {n: len(rows) for n, rows in splits.items()}, "format": fmt}


def data_files(fmt: str) -> str:
    """The path pattern of a split's files in the dataset repository, as the card's `configs:` names them."""
    return "data/{split}.jsonl" if fmt == "jsonl" else "data/{split}-*.parquet"


def features_of(schema: pa.Schema, json_columns: set[str]) -> list[dict]:
    """The card's `features:` for JSONL splits: the types Arrow unified over every row, and `json` (datasets'
    Json feature: any JSON value, as written) for the columns whose values differ in type between rows."""
    from datasets import Features, Json

    features = Features.from_arrow_schema(pa.schema([f for f in schema if f.name not in json_columns]))
    features = Features({f.name: Json() if f.name in json_columns else features[f.name] for f in schema})
    return features._to_yaml_list()


def clear_staging(folder: Path) -> None:
    """Replace an earlier staging folder, but never a folder holding anything else."""
    if not folder.exists():
        return
    ours = {folder / "README.md", folder / "data"} | {p for p in (folder / "data").glob("*")
                                                      if p.name.endswith((".parquet", ".jsonl"))}
    foreign = [p for p in folder.rglob("*") if p not in ours]
    if foreign or not folder.is_dir():
        raise UserError(f"{folder} exists and holds other files ({foreign[0].name if foreign else 'a file'}); "
                        "give another --staging folder")
    shutil.rmtree(folder)


def check_repo_id(repo_id: str) -> None:
    if not REPO_ID.fullmatch(repo_id or ""):
        raise UserError(f"--repo must be USER/NAME (letters, digits, - _ .), got {repo_id!r}")


def push(folder: Path, repo_id: str, private: bool, collection: str | None) -> str:
    """Upload the staged folder; return the dataset's URL."""
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    if not get_token():
        raise UserError("no Hugging Face token: set HF_TOKEN or log in with `hf auth login`")
    api = HfApi()
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        # Split files of an earlier push go in the same commit (those not uploaded again): a split pushed as
        # parquet, then as JSONL, must not leave the stale parquet for a reader of data/ to find.
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset",
                          commit_message=f"Upload {repo_id} with crap.py push",
                          delete_patterns=["data/*.jsonl", "data/*.parquet"])
        if collection:
            api.add_collection_item(collection, item_id=repo_id, item_type="dataset", exists_ok=True)
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        hint = " (the token is missing, expired or lacks write access)" if status in (401, 403) else ""
        # The message is the Hub's; huggingface_hub never puts the token in it.
        raise UserError(f"the Hub refused the upload: HTTP {status}{hint}: {str(e).splitlines()[0]}") from None
    return str(url)
