"""Charts of training and evaluation, drawn with matplotlib (Agg: no display needed) from what the runs wrote.

- curves(RUN): RUN/curves.png from RUN/metrics.jsonl. SFT: the loss (with the holdout's eval_loss) and the
  learning rate. GRPO: each reward's mean and their sum, the KL to the reference, the completion length.
- side_by_side(RUNS, FILE): the same panels, one column per run (train/plot.py).
- eval_chart(eval.json's results, FILE): accuracy and format compliance per model, with their 95% intervals.
"""

from __future__ import annotations

from pathlib import Path

from tunixhack.errors import UserError
from tunixhack.train import runs

CURVES = "curves.png"


def panels(rows: list[dict], stage: str) -> list[tuple[str, list[tuple[str, list, list]]]]:
    """[(title, [(label, steps, values), ...]), ...]: what a stage's chart shows, from its metrics.jsonl rows."""
    def series(key: str, label: str | None = None):
        points = [(r["step"], r[key]) for r in rows if key in r]
        return (label or key, [s for s, _ in points], [v for _, v in points])

    if stage == "grpo":
        rewards = sorted({k for r in rows for k in r if k.startswith("rewards/") and k.endswith("_reward")})
        return [("reward (mean per completion)", [series("rewards/sum", "sum")]
                 + [series(k, k[len("rewards/"):-len("_reward")]) for k in rewards]),
                ("KL to the reference", [series("kl")]),
                ("completion length (tokens)", [series("completions/mean_length", "mean"),
                                                series("completions/max_length", "max")])]
    return [("loss", [series("loss", "train"), series("eval_loss", "holdout")]),
            ("learning rate", [series("learning_rate")])]


def run_panels(run_dir) -> tuple[str, list]:
    """(a title, panels) of a run folder; one line naming the problem when it is not a run with metrics."""
    run = runs.read_run(str(run_dir))
    rows = runs.read_metrics(run_dir)
    if not any("loss" in r or "rewards/sum" in r for r in rows):
        raise UserError(f"{run_dir} has no training steps in metrics.jsonl yet: nothing to draw")
    last = max(r["step"] for r in rows)
    return f"{Path(run_dir).name}: {run['stage']} of {run['model']}, {last} steps", panels(rows, run["stage"])


def curves(run_dir) -> Path:
    """RUN/curves.png, redrawn from the whole metrics.jsonl (a resumed run's earlier steps included)."""
    path = Path(run_dir) / CURVES
    side_by_side([run_dir], path)
    return path


def side_by_side(run_dirs: list, path) -> Path:
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    charts = [run_panels(r) for r in run_dirs]
    height = max(len(p) for _, p in charts)
    fig, axes = plt.subplots(height, len(charts), figsize=(5.5 * len(charts), 2.8 * height), squeeze=False)
    for column, (title, chart) in enumerate(charts):
        axes[0][column].annotate(title, (0.5, 1.25), xycoords="axes fraction", ha="center", fontweight="bold")
        for row in range(height):
            ax = axes[row][column]
            if row >= len(chart):
                ax.axis("off")
                continue
            name, lines = chart[row]
            for label, steps, values in lines:
                if steps:
                    ax.plot(steps, values, marker="o" if len(steps) < 20 else None, markersize=3, label=label)
            ax.set_title(name, fontsize="medium")
            ax.set_xlabel("step", fontsize="small")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if sum(1 for _, steps, _ in lines if steps) > 1:
                ax.legend(fontsize="x-small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def eval_chart(results: dict, title: str, path) -> Path:
    """Bars of accuracy and format compliance per model, each with its 95% Wilson interval as an error bar."""
    plt = pyplot()
    labels = [Path(label).name if r["ckpt"] else f"{label} ({r['model']})" for label, r in results.items()]
    fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 2.2 * len(labels) + 2), 4))
    for ax, measure in zip(axes, ("accuracy", "format")):
        values, below, above = [], [], []
        for r in results.values():
            value = r[measure]["value"] or 0.0
            low, high = r[measure]["ci95"] or (value, value)
            values.append(100 * value)
            below.append(100 * (value - low))
            above.append(100 * (high - value))
        ax.bar(range(len(labels)), values, yerr=[below, above], capsize=6, color="tab:blue")
        for i, r in enumerate(results.values()):
            if r[measure]["value"] is None:
                ax.annotate("n/a", (i, 1), ha="center", fontsize="small")
        ax.set_xticks(range(len(labels)), labels, fontsize="small", rotation=15)
        ax.set_ylim(0, 100)
        ax.set_ylabel(f"{measure} (%), 95% CI")
        ax.set_title(measure)
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)



def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers, in CI or on Kaggle
    import matplotlib.pyplot as plt

    return plt
