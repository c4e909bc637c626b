"""crap.py view: one self-contained HTML page to look at trace files in a browser (no server, no network).

The page (view.html beside this module) gets the rows embedded as JSON and renders only the rows in sight, so
10,000 rows open in about a second (bench/view_load.py). Each row shows what a reader checks: prompt, reasoning
(folded), answer and reference side by side, and the check's verdict; the kept rows and the rejects of each file
are listed together, filtered by recipe, category, verdict, reject reason and teacher, and searched as text.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from ..errors import UserError
from .card import teacher_key
from .traces import read_rejects, read_traces, reason_name

TEMPLATE = Path(__file__).with_name("view.html")
# The page's first line: a file that starts otherwise is not ours to replace.
MARKER = "<!-- crap.py view: trace viewer -->"
ROWS_SLOT = "/*ROWS*/"
TITLE_SLOT = "<!--TITLE-->"


def text_of(value) -> str:
    """A field as the page shows it: text as is, nothing as empty, anything else (a list of options) as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def shown(row: dict, path: Path, reason: str | None) -> dict:
    """The fields of a row that the page shows and filters on (the rest, messages and usage, stay in the file)."""
    backend, model = teacher_key(row)
    row_id = str(row.get("id") or "")
    prompt = row.get("prompt")
    if prompt is None and "row" in row:  # a parse reject keeps the source row, not a prompt
        prompt = "(no prompt was made: the source row) " + text_of(row["row"])
    check = row.get("check")
    return {
        "id": row_id,
        "recipe": row_id.split("/")[0] if "/" in row_id else path.stem,
        "file": path.name,
        "category": str(row.get("category") or "unknown"),
        "verified": row.get("verified") if row.get("verified") in (True, False) else None,
        "reason": reason or "",
        "detail": text_of(row.get("reason")) if reason else "",
        "teacher": "unknown" if model == "unknown" else f"{model} ({backend})",
        "check": check.get("kind", "") if isinstance(check, dict) else "",
        "finish": text_of(row.get("finish")),
        "prompt": text_of(prompt),
        "reasoning": text_of(row.get("reasoning")),
        "answer": text_of(row.get("answer")),
        "reference": text_of(row.get("reference")),
    }


def view_rows(files: list[Path]) -> list[dict]:
    """Every row of the files, kept rows first, then each file's rejects with their reason."""
    rows = []
    for path in files:
        rows += [shown(row, path, None) for row in read_traces(path)]
        rows += [shown(reject, path, reason_name(reject)) for reject in read_rejects(path)]
    return rows


def render_page(rows: list[dict], title: str) -> str:
    # "<" as \u003c: no text in a row ("</script>", "<!--") can end or change the script element that holds them.
    data = json.dumps(rows, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    page = TEMPLATE.read_text(encoding="utf-8")
    return page.replace(TITLE_SLOT, html.escape(title)).replace(ROWS_SLOT, data)


def write_view(files: list[Path], out: Path) -> int:
    """Write the page; return the number of rows in it. Replaces an earlier page, never another file."""
    if out.exists() and (out.is_dir() or not out.read_text(encoding="utf-8", errors="replace").startswith(MARKER)):
        raise UserError(f"{out} exists and is not a page crap.py view wrote; give another --out")
    rows = view_rows(files)
    title = f"{len(rows)} rows: " + ", ".join(p.name for p in files)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render_page(rows, title), encoding="utf-8")
    os.replace(tmp, out)
    return len(rows)
