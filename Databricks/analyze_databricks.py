"""Look at Dolly before generating: rows per category and the length of instruction, context and response.

Lengths are in the student's tokens with `--tokenizer PATH` (Gemma3's SentencePiece tokenizer.model, or a
folder holding one), else in words; the report says which. Context lengths count only rows that have one.
Writes <out-dir>/dolly_analysis.md (markdown tables) and <out-dir>/dolly_analysis.png (chart).

    python Databricks/analyze_databricks.py                                   # the Hub dataset
    python Databricks/analyze_databricks.py --source dolly.jsonl --tokenizer gemma3/tokenizer.model
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tunixhack.errors import UserError
from tunixhack.generate.source import is_local, load_rows
from tunixhack.tokens import token_counter

DATASET = "databricks/databricks-dolly-15k"
COLUMNS = ("instruction", "context", "response", "category")
FIELDS = ("instruction", "context", "response")
ALL = "(all)"
STEM = "dolly_analysis"


@dataclass
class Lengths:
    rows: int = 0
    with_context: int = 0
    lengths: dict[str, list[int]] = field(default_factory=lambda: {f: [] for f in FIELDS})


def measure(rows: list[dict], counter) -> dict[str, Lengths]:
    """Per category (most rows first), then ALL."""
    groups: dict[str, Lengths] = {}
    for row in rows:
        for key in (row["category"], ALL):
            g = groups.setdefault(key, Lengths())
            g.rows += 1
            for name in FIELDS:
                text = (row[name] or "").strip()
                if name == "context" and not text:
                    continue  # most categories have no passage: zeros would hide the real lengths
                g.lengths[name].append(counter.count(text))
            g.with_context += bool((row["context"] or "").strip())
    order = sorted((k for k in groups if k != ALL), key=lambda k: (-groups[k].rows, k))
    return {k: groups[k] for k in [*order, ALL] if k in groups}


def spread(values: list[int]) -> list[str]:
    """min, median, p90, max."""
    if not values:
        return ["-"] * 4
    median, p90 = np.percentile(values, [50, 90])
    return [str(min(values)), f"{median:.0f}", f"{p90:.0f}", str(max(values))]


def markdown(groups: dict[str, Lengths], source: str, unit: str, image: str) -> str:
    total = groups[ALL].rows
    lines = [f"# Dolly: {source}", "", f"{total:,} rows. Lengths are in {unit}; context lengths count only rows "
             "that have a context.", "", "| category | rows | share | with context |", "|---|---:|---:|---:|"]
    for cat, g in groups.items():
        lines.append(f"| {cat} | {g.rows:,} | {100 * g.rows / total:.1f}% | {g.with_context:,} |")
    lines += ["", "| category | field | min | median | p90 | max |", "|---|---|---:|---:|---:|---:|"]
    for cat, g in groups.items():
        for name in FIELDS:
            lines.append(f"| {cat} | {name} | " + " | ".join(spread(g.lengths[name])) + " |")
    lines += ["", f"![rows and lengths per category]({image})", ""]
    return "\n".join(lines)


def chart(groups: dict[str, Lengths], unit: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless: no display needed
    import matplotlib.pyplot as plt

    cats = [c for c in groups if c != ALL]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    counts = axes[0][0]
    counts.bar(cats, [groups[c].rows for c in cats])
    counts.set_xticks(range(len(cats)), cats, rotation=30, ha="right")
    counts.set_title("rows per category")
    counts.set_ylabel("rows")
    for ax, name in zip((axes[0][1], axes[1][0], axes[1][1]), FIELDS):
        shown = [c for c in cats if groups[c].lengths[name]]
        if shown:
            ax.boxplot([groups[c].lengths[name] for c in shown], showfliers=False)
            ax.set_xticks(range(1, len(shown) + 1), shown, rotation=30, ha="right")
        ax.set_title(f"{name} length" + (" (rows with a context)" if name == "context" else ""))
        ax.set_ylabel(unit)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", default=DATASET, help=f"HF dataset id or a local .jsonl/.json/.parquet/.csv (default {DATASET})")
    p.add_argument("--config", default=None, help="dataset config (Dolly has none)")
    p.add_argument("--split", default="train", help="split (default train, Dolly's only split)")
    p.add_argument("--tokenizer", metavar="PATH", help="SentencePiece model (Gemma3 tokenizer.model) to count tokens; default: words")
    p.add_argument("--out-dir", type=Path, default=Path("data"), help="where the .md and .png go (default data)")
    args = p.parse_args(argv)
    try:
        counter = token_counter(args.tokenizer)
        splits = ("train",) if args.source == DATASET else ()
        rows = load_rows(args.source, args.config, args.split, COLUMNS, splits)
        if not rows:
            raise UserError(f"{args.source} has no rows")
        groups = measure(rows, counter)
        args.out_dir.mkdir(parents=True, exist_ok=True)
        png, report = args.out_dir / f"{STEM}.png", args.out_dir / f"{STEM}.md"
        chart(groups, counter.unit, png)
        source = args.source if is_local(args.source) else f"{args.source} ({args.split})"
        text = markdown(groups, source, counter.unit, png.name)  # relative: the report and chart move together
        report.write_text(text, encoding="utf-8")
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(text)
    print(f"wrote {report} and {png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
