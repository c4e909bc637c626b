"""The run summary: what <stem>.summary.json holds, and the few lines printed at the end of a run."""

from __future__ import annotations

import sys
from pathlib import Path

from .store import TraceStore, sibling


def summarise(recipe: str, store: TraceStore, tally, plan, existing, run: dict) -> dict:
    """run: fingerprint, stopped (why the run ended early, or None), endpoints (router stats), wall_seconds, shard."""
    busy = tally.wall_seconds  # from the first request to the last row: start-up and teacher checks excluded
    return {
        "recipe": recipe,
        "out": str(store.paths["main"]),
        "fingerprint": run["fingerprint"],
        "stopped": run["stopped"],
        "shard": "{}/{}".format(*run["shard"]) if run["shard"] else None,
        "rows": plan.total,
        "done_before": plan.done,
        "in_file_before": len(existing.done),
        "accepted": tally.accepted,
        "rejected": dict(tally.rejected),
        "errors": tally.errors,
        "resampled": tally.resampled,
        "tokens": {"prompt": tally.prompt_tokens, "completion": tally.completion_tokens},
        "wall_seconds": round(run["wall_seconds"], 2),
        "rows_per_second": round((tally.finished + tally.errors) / busy, 3) if busy else None,
        "tokens_per_second": round(tally.completion_tokens / busy, 1) if busy else None,
        "client_cpu_ms_per_row": round(1000 * tally.cpu_seconds / (tally.finished + tally.errors), 3)
        if tally.finished + tally.errors else None,
        "endpoints": run["endpoints"],
    }


def print_summary(s: dict, file=None) -> None:
    file = file or sys.stderr
    out = Path(s["out"])
    rejected = ", ".join(f"{k} {v}" for k, v in s["rejected"].items()) or "none"
    lines = [
        f"{s['recipe']}: {s['accepted']} accepted, {sum(s['rejected'].values())} rejected ({rejected}), "
        f"{s['errors']} errors, {s['resampled']} resampled, in {s['wall_seconds']:.1f}s"
        + (f"; {s['done_before']} of the {s['rows']} rows were done before" if s["done_before"] else ""),
        f"  {s['tokens']['completion']:,} tokens generated, {s['tokens_per_second'] or 0:,.1f} tok/s, "
        f"{s['rows_per_second'] or 0:.2f} rows/s",
    ]
    files = {"rows": out, "rejects": sibling(out, "rejects"), "errors": sibling(out, "errors")}
    lines.append("  " + "  ".join(f"{name}: {path}" for name, path in files.items() if path.exists()))
    for endpoint, stats in s["endpoints"].items():
        line = f"  {endpoint}: {stats['ok']} ok, {stats['failed']} failed"
        if stats["concurrency"] is not None and stats["requests"]:
            how = "auto, settled at" if stats["concurrency_mode"] == "auto" else "fixed"
            line += f", concurrency {how} {stats['concurrency']} (peak {stats['peak_in_flight']} in flight)"
        lines.append(line)
    if s["errors"]:
        lines.append(f"  {s['errors']} rows failed; run the same command again to retry them")
    if s["stopped"]:
        lines.append(f"  {s['stopped']}")
    print("\n".join(lines), file=file)
