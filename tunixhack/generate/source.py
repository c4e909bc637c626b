"""Read a recipe's input rows: a Hugging Face dataset id, or a local .jsonl/.json/.parquet/.csv file."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from .offline import HubUnreachable, hub_offline

LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def is_local(source: str) -> bool:
    return Path(source).suffix.lower() in LOCAL_FORMATS or Path(source).exists()


def load_rows(source: str, config: str | None, split: str, columns: tuple[str, ...] = (),
              splits: tuple[str, ...] = (), local_flag: str = "--source PATH") -> list[dict]:
    """All rows of the split, as dicts (for tools over small splits; generation reads open_split lazily)."""
    return open_split(source, config, split, columns, splits, local_flag).to_list()


def open_split(source: str, config: str | None, split: str, columns: tuple[str, ...] = (),
               splits: tuple[str, ...] = (), local_flag: str = "--source PATH"):
    """The split as a `datasets.Dataset`: Arrow on disk, memory-mapped, so rows are read only when asked for.
    A local file is read whole as the split (converted to Arrow once, in the datasets cache). A Hub dataset
    that cannot be reached fails at once with HubUnreachable, naming `local_flag` (the caller's way to give a
    local copy)."""
    import datasets

    datasets.disable_progress_bars()
    if is_local(source):
        path = Path(source)
        if not path.is_file():
            raise UserError(f"source file not found: {source}")
        builder = LOCAL_FORMATS.get(path.suffix.lower())
        if builder is None:
            raise UserError(f"source file must be {'|'.join(LOCAL_FORMATS)}, got {path.suffix or path.name!r}")
        try:
            data = datasets.load_dataset(builder, data_files=str(path), split="train")
        except Exception as e:  # pyarrow and datasets raise many types for a malformed file
            raise UserError(bad_json_line(path) or f"cannot read {source}: {first_line(e)}") from None
    else:
        if splits and split not in splits:
            raise UserError(f"split must be {'|'.join(splits)}, got {split!r}")
        offline = hub_offline()
        try:
            data = datasets.load_dataset(source, config, split=split)
        except ConnectionError as e:
            what = f"{source}" + (f" (config {config}, split {split})" if config else f" (split {split})")
            raise HubUnreachable(what, offline or f"the Hub cannot be reached ({first_line(e)})", local_flag) from None
        except ValueError as e:
            raise UserError(f"cannot load split {split!r} of {source}: {first_line(e)}") from None
        except Exception as e:
            raise UserError(f"cannot load dataset {source!r} (config {config!r}): {first_line(e)}") from None
    missing = [c for c in columns if c not in data.column_names]
    if missing:
        raise UserError(
            f"{source} lacks column {', '.join(repr(c) for c in missing)}; it has {', '.join(data.column_names)}; "
            f"this recipe needs {', '.join(columns)}"
        )
    return data


def bad_json_line(path: Path) -> str | None:
    """`FILE:LINE: reason` (lines counted from 1) for the first line of a .jsonl that is not a JSON object, or
    where a .json stops parsing; None when the JSON is sound (the trouble is elsewhere) or not JSON at all."""
    if path.suffix.lower() == ".json":
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            return f"{path}:{e.lineno}: not valid JSON ({e.msg}, column {e.colno})"
        except (UnicodeDecodeError, OSError) as e:
            return f"{path}: {first_line(e)}"
        return None
    if path.suffix.lower() != ".jsonl":
        return None
    with path.open(encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line.rstrip("\r\n"))  # so that the column counts within the line
            except json.JSONDecodeError as e:
                return f"{path}:{number}: not JSON ({e.msg}, column {e.colno}); a .jsonl has one JSON object a line"
            if not isinstance(row, dict):
                return f"{path}:{number}: a JSON {type(row).__name__}, not an object; a .jsonl has one object a line"
    return None


def first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
