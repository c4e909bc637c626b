"""Per file and category statistics of trace files: rows, verification, rejects, lengths, teacher speed.

Writes a markdown report and one PNG of length histograms per trace file (matplotlib, Agg backend: no
display needed). Lengths are in the student's tokens with --tokenizer, else in words; the report says which.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..generate.store import sibling
from .traces import read_rejects, read_traces, reason_name

PERCENTILES = (10, 50, 90, 99)
ALL = "(all)"
NO_CATEGORY = "(no category)"


@dataclass
class Group:
    """One category of one file (or the whole file, category ALL)."""

    rows: int = 0
    verified: Counter = field(default_factory=Counter)   # True / False / None -> count
    rejects: Counter = field(default_factory=Counter)    # reason -> count
    reasoning: list[int] = field(default_factory=list)
    answer: list[int] = field(default_factory=list)
    speeds: list[float] = field(default_factory=list)    # teacher tokens/s per request (kept or rejected)
    seconds: float = 0.0                                 # teacher time summed over requests (kept or rejected)
    kept_tokens: int = 0                                 # teacher tokens (prompt + completion) of kept rows
    spent: Counter = field(default_factory=Counter)      # (rejected | cancelled, reason) -> teacher tokens

    def add_usage(self, row: dict) -> None:
        usage = row.get("usage") or {}
        if usage.get("tokens_per_second"):
            self.speeds.append(float(usage["tokens_per_second"]))
        self.seconds += float(usage.get("seconds") or 0)

    def wasted(self) -> int:
        return sum(self.spent.values())

    def share(self, value) -> float | None:
        return self.verified[value] / self.rows if self.rows else None


@dataclass
class FileStats:
    path: Path
    groups: dict[str, Group]   # category -> Group; ALL is the whole file


def file_stats(path: Path, counter) -> FileStats:
    groups: dict[str, Group] = defaultdict(Group)
    for row in read_traces(path):
        for key in (row["category"], ALL):
            g = groups[key]
            g.rows += 1
            g.verified[row["verified"]] += 1
            g.reasoning.append(counter.count(row["reasoning"]))
            g.answer.append(counter.count(row["answer"]))
            g.add_usage(row)
            g.kept_tokens += teacher_tokens(row)
    for reject in read_rejects(path):
        reason = reason_name(reject)
        # stopped on the stream (a loop, a budget) or judged after the reply ended
        outcome = "cancelled" if reject.get("finish") == "cancelled" else "rejected"
        for key in (reject.get("category") or NO_CATEGORY, ALL):  # a malformed source row has none
            groups[key].rejects[reason] += 1
            groups[key].add_usage(reject)  # a rejected reply took the teacher's time all the same
            groups[key].spent[outcome, reason] += teacher_tokens(reject)
    # ALL last, categories sorted: a stable order makes reports comparable between runs
    ordered = {k: groups[k] for k in sorted(k for k in groups if k != ALL)}
    if ALL in groups:
        ordered[ALL] = groups[ALL]
    return FileStats(path, ordered)


def teacher_tokens(row: dict) -> int:
    usage = row.get("usage") or {}
    return int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)


def run_totals(path: Path) -> str | None:
    """What every run of this file spent, from its summary (resampled replies are in no file, only there)."""
    from ..generate.summary import spent_line

    try:
        spent = json.loads(sibling(path, "summary").read_text(encoding="utf-8"))["file"]["spent"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return spent_line(spent)


def percentiles(values: list[int]) -> list[str]:
    if not values:
        return ["-"] * (len(PERCENTILES) + 1)
    cuts = np.percentile(values, PERCENTILES)
    return [f"{c:.0f}" for c in cuts] + [str(max(values))]


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def markdown(stats: list[FileStats], unit: str, images: dict[Path, str]) -> str:
    lines = ["# Trace statistics", "",
             f"Lengths are in {unit}. verified/failed/unverifiable: shares of the rows (verified true/false/null); "
             "kept: rows / (rows + rejects); tokens/s: the teacher's, per request, rejected ones included; "
             "teacher time: summed over requests (with concurrency, more than the wall time).", ""]
    for fs in stats:
        lines += [f"## {fs.path}", ""]
        lines += ["| category | rows | verified | failed | unverifiable | rejects | kept | tokens/s (median) "
                  "| teacher time |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for cat, g in fs.groups.items():
            speed = f"{np.median(g.speeds):.1f}" if g.speeds else "-"
            rejects = sum(g.rejects.values())
            kept = g.rows / (g.rows + rejects) if g.rows + rejects else None
            time_ = duration(g.seconds) if g.seconds else "-"
            lines.append(f"| {cat} | {g.rows} | {pct(g.share(True))} | {pct(g.share(False))} | "
                         f"{pct(g.share(None))} | {rejects} | {pct(kept)} | {speed} | {time_} |")
        lines += ["", "Teacher tokens (prompt + completion, from each row's usage): per kept row, and spent on "
                  "replies not kept: rejected after the reply, cancelled on the stream (a loop, a budget).", "",
                  "| category | kept rows | tokens a kept row | rejected | cancelled | share not kept |",
                  "|---|---:|---:|---:|---:|---:|"]
        for cat, g in fs.groups.items():
            rejected = sum(n for (o, _), n in g.spent.items() if o == "rejected")
            cancelled = sum(n for (o, _), n in g.spent.items() if o == "cancelled")
            total = g.kept_tokens + g.wasted()
            per_row = f"{g.kept_tokens / g.rows:,.0f}" if g.rows else "-"
            lines.append(f"| {cat} | {g.rows} | {per_row} | {rejected:,} | {cancelled:,} | "
                         f"{pct(g.wasted() / total if total else None)} |")
        totals = run_totals(fs.path)
        if totals:
            lines += ["", f"Every run, resampled replies included (its summary): {totals}."]
        reasons = [(cat, r, n, g.spent["rejected", r] + g.spent["cancelled", r])
                   for cat, g in fs.groups.items() if cat != ALL for r, n in g.rejects.most_common()]
        lines += ["", "Rejects by reason:", ""]
        if reasons:
            lines += ["| category | reason | rejects | teacher tokens |", "|---|---|---:|---:|"]
            lines += [f"| {cat} | {r} | {n} | {t:,} |" for cat, r, n, t in reasons]
        else:
            lines.append("none (no rejects file, or it is empty)")
        head = " | ".join(f"p{p}" for p in PERCENTILES)
        lines += ["", f"Lengths ({unit}):", "", f"| category | field | {head} | max |",
                  "|---|---|" + "---:|" * (len(PERCENTILES) + 1)]
        for cat, g in fs.groups.items():
            for name in ("reasoning", "answer"):
                lines.append(f"| {cat} | {name} | " + " | ".join(percentiles(getattr(g, name))) + " |")
        if fs.path in images:
            lines += ["", f"![lengths of {fs.path.name}]({images[fs.path]})"]
        lines.append("")
    return "\n".join(lines)


def histogram(fs: FileStats, unit: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers and CI
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, name in zip(axes, ("reasoning", "answer")):
        bins = np.histogram_bin_edges(getattr(fs.groups[ALL], name), bins=40) if ALL in fs.groups else 40
        for cat, g in fs.groups.items():
            if cat != ALL and getattr(g, name):
                ax.hist(getattr(g, name), bins=bins, histtype="step", label=f"{cat} ({g.rows})")
        ax.set_title(f"{fs.path.name}: {name} length")
        ax.set_xlabel(unit)
        ax.set_ylabel("rows")
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def write_report(files: list[Path], counter, out: Path) -> tuple[str, list[Path]]:
    """Compute, write out (markdown) and one PNG per file next to it; return the markdown and the PNGs."""
    stats = [file_stats(p, counter) for p in files]
    out.parent.mkdir(parents=True, exist_ok=True)
    images: dict[Path, str] = {}
    pngs: list[Path] = []
    for fs in stats:
        if ALL not in fs.groups or not fs.groups[ALL].rows:
            continue  # nothing kept: no lengths to draw
        png = out.with_name(f"{out.stem}_{fs.path.stem}.png")
        if png in pngs:  # two inputs with one name, from different folders
            png = out.with_name(f"{out.stem}_{fs.path.stem}_{len(pngs)}.png")
        histogram(fs, counter.unit, png)
        images[fs.path] = png.name  # relative: the report and its images move together
        pngs.append(png)
    text = markdown(stats, counter.unit, images)
    out.write_text(text, encoding="utf-8")
    return text, pngs
