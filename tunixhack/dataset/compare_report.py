"""The bake-off's report: compare.md (one row per teacher, then per recipe) and compare.png (bar charts)."""

from __future__ import annotations

from pathlib import Path

from .stats import duration, pct


def cell(value, fmt="{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def markdown(result: dict) -> str:
    unit = result["length_unit"]
    lines = ["# Teacher comparison", "",
             f"The same {result['n']} prompts"
             + (f" ({result['asked']} asked; the sources had no more)" if result.get("asked", 0) > result["n"] else "")
             + f" (seed {result['seed']}: "
             + ", ".join(f"{r} {n}" for r, n in result["per_recipe"].items())
             + f") answered by each teacher, one teacher at a time. Lengths of the kept rows in {unit}; tokens/s "
             "is the teacher's own, the median over requests; verified: rows verified true of all rows answered "
             f"in the recipes that can check ({', '.join(result['checkable']) or 'none'}).", "",
             "| teacher | model | rows | rejects | errors | reasoning mean | reasoning median | answer mean "
             "| answer median | completion tokens (mean) | tokens/s | wall time | verified | reject reasons |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for t in result["teachers"]:
        reasons = ", ".join(f"{k} {v}" for k, v in t["reject_reasons"].items()) or "-"
        lines.append(
            f"| {t['teacher']} | {t['model']} | {t['rows']} | {t['rejects']} | {t['errors']} | "
            f"{cell(t['reasoning_mean'])} | {cell(t['reasoning_median'])} | {cell(t['answer_mean'])} | "
            f"{cell(t['answer_median'])} | {cell(t['completion_tokens_mean'])} | "
            f"{cell(t['tokens_per_second_median'])} | {duration(t['wall_seconds'])} | "
            f"{pct(t['verified_share'])} | {reasons} |")
    lines += ["", "By recipe:", "", "| teacher | model | recipe | rows | rejects | errors | verified | wall time |",
              "|---|---|---|---:|---:|---:|---:|---:|"]
    for t in result["teachers"]:
        for recipe, r in t["by_recipe"].items():
            wall = duration(r["wall_seconds"]) if r["wall_seconds"] is not None else "-"
            lines.append(f"| {t['teacher']} | {t['model']} | {recipe} | {r['rows']} | {r['rejects']} | "
                         f"{r['errors']} | {pct(r['verified'])} | {wall} |")
    lines += ["", "![comparison](compare.png)", ""]
    return "\n".join(lines)


def chart(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless
    import matplotlib.pyplot as plt

    teachers = result["teachers"]
    names = [f"{t['model']}\n{t['teacher']}" for t in teachers]
    panels = [("tokens_per_second_median", "tokens/s (median)", 1), ("wall_seconds", "wall time (s)", 1),
              ("verified_share", "verified share (%)", 100),
              ("reasoning_mean", f"reasoning, mean ({result['length_unit']})", 1)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4))
    for ax, (key, title, scale) in zip(axes, panels):
        ax.bar(range(len(teachers)), [(t[key] or 0) * scale for t in teachers], color="tab:blue")
        ax.set_xticks(range(len(teachers)), names, fontsize="x-small")
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(result: dict, out: Path) -> str:
    text = markdown(result)
    (out / "compare.md").write_text(text, encoding="utf-8")
    chart(result, out / "compare.png")
    return text
