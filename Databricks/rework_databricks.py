"""Repair a Dolly trace file made by an older prompt version: rebuild each row's `prompt` from its source row.

An older version of the recipe stored the student prompt without the row's context (the passage of closed_qa,
information_extraction and summarization). This rebuilds `prompt` with the current recipe
(generate_databricks.py beside this file). Rows are joined to the source by id (`dolly/<split>/<row index>`),
never by position in the file; a row whose stored reference differs from the source row's response does not
join either (the source is another copy of the dataset). Everything else in a row, the teacher messages
included, is kept as it was. The repaired rows go to a NEW file; rows that do not join go, unchanged, to
<out>.unjoined.jsonl. The input is never touched.

    python Databricks/rework_databricks.py data/dolly.jsonl --out data/dolly.fixed.jsonl
    python Databricks/rework_databricks.py old.jsonl --source databricks-dolly-15k.jsonl --out new.jsonl --force
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from generate_databricks import Dolly, clean  # this folder's recipe: the prompt the student should see

from tunixhack.errors import UserError
from tunixhack.generate.source import load_rows
from tunixhack.generate.store import sibling
from tunixhack.dataset.traces import read_traces, write_jsonl

SHOW_IDS = 5


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("trace", type=Path, help="the trace file to repair (JSONL); it is only read")
    p.add_argument("--out", type=Path, help="the repaired file (default: <trace stem>.reworked.jsonl beside it)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists (never the input)")
    p.add_argument("--source", help="HF dataset id or local file the trace was made from "
                                    "(default: the rows' own `dataset` field)")
    p.add_argument("--config", help="dataset config (default: the rows' own)")
    p.add_argument("--split", help="split (default: the rows' own `split` field)")
    return p.parse_args(argv)


def recorded(rows: list[dict], name: str, fallback):
    """The value every row records for `name` (dataset, config, split), if they agree."""
    values = {row.get(name) for row in rows}
    if len(values) > 1:
        raise UserError(f"the trace's rows come from several {name}s ({', '.join(map(str, sorted(values, key=str)))}); "
                        f"give --{'source' if name == 'dataset' else name}")
    value = values.pop() if values else None
    return fallback if value is None else value


def output_paths(args) -> tuple[Path, Path]:
    out = args.out or args.trace.with_name(f"{args.trace.name.removesuffix('.jsonl')}.reworked.jsonl")
    unjoined = sibling(out, "unjoined")
    if out.resolve() == args.trace.resolve() or unjoined.resolve() == args.trace.resolve():
        raise UserError(f"--out must differ from the input {args.trace}: the input is never overwritten")
    for path in (out, unjoined):
        if path.exists() and not args.force:
            raise UserError(f"{path} exists; give another --out, or --force to replace it")
    return out, unjoined


def same_text(a: str | None, b: str | None) -> bool:
    return " ".join(clean(a).split()) == " ".join(clean(b).split())


def rework(trace_rows: list[dict], source_rows: list[dict], split: str, recipe: Dolly):
    """Return (repaired rows, unjoined rows with why, prompts changed, repaired rows whose messages lack the context)."""
    by_id = {recipe.row_id(split, row, i): row for i, row in enumerate(source_rows)}
    repaired, unjoined, changed, unseen_context = [], [], 0, 0
    for row in trace_rows:
        source = by_id.get(row["id"])
        if source is None:
            unjoined.append((row, "no source row has this id"))
            continue
        if row.get("reference") is not None and not same_text(row["reference"], source["response"]):
            unjoined.append((row, "the source row's response differs from the stored reference"))
            continue
        try:
            prompt = recipe.prompt(source)
        except (KeyError, ValueError) as e:
            unjoined.append((row, f"the source row is malformed: {e}"))
            continue
        changed += prompt != row["prompt"]
        context = " ".join(clean(source["context"]).split())
        sent = " ".join(" ".join(str(m.get("content", "")) for m in row.get("messages") or []).split())
        unseen_context += bool(context) and row.get("messages") is not None and context not in sent
        repaired.append({**row, "prompt": prompt})
    return repaired, unjoined, changed, unseen_context


def main(argv=None) -> int:
    args = parse_args(argv)
    recipe = Dolly()
    try:
        if not args.trace.is_file():
            raise UserError(f"trace file not found: {args.trace}")
        out, unjoined_path = output_paths(args)
        trace_rows = read_traces(args.trace)
        if not trace_rows:
            raise UserError(f"{args.trace} has no rows")
        source = args.source or recorded(trace_rows, "dataset", recipe.dataset)
        config = args.config or (None if args.source else recorded(trace_rows, "config", recipe.config))
        split = args.split or recorded(trace_rows, "split", recipe.split)
        source_rows = load_rows(source, config, split, recipe.columns, recipe.splits if source == recipe.dataset else ())
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    repaired, unjoined, changed, unseen_context = rework(trace_rows, source_rows, split, recipe)
    write_jsonl(out, repaired)
    print(f"{len(trace_rows)} rows read from {args.trace}; {len(repaired)} joined {source} ({split}) by id, "
          f"{changed} prompts changed; wrote {out}")
    if unjoined:
        write_jsonl(unjoined_path, [row for row, _ in unjoined])
        first = ", ".join(f"{row['id']} ({why})" for row, why in unjoined[:SHOW_IDS])
        print(f"warning: {len(unjoined)} rows did not join (first: {first}); kept unchanged in {unjoined_path}",
              file=sys.stderr)
    elif unjoined_path.exists():  # left by an earlier run (only possible with --force): it no longer applies
        unjoined_path.unlink()
    if unseen_context:
        print(f"warning: in {unseen_context} repaired rows the teacher messages do not hold the context: those "
              "answers were written without the passage the prompt now shows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
