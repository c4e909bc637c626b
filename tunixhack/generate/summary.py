"""The run summary: what <stem>.summary.json holds, and the few lines printed at the end of a run.

The top-level counts are the last run's; `file` keeps the totals of every run that wrote to the same files
(a rerun with nothing left to do leaves them as they were). `spent` is what the teacher spent, in tokens, by
outcome: kept rows, rejected replies and replies cancelled on the stream (by reason; a resampled reply counts
under its own reason), and replies whose check failed to run (errors).
"""

from __future__ import annotations

import json
import sys
from collections import Counter

from .store import TraceStore

OUTCOMES = ("kept", "rejected", "cancelled", "errors")


def summarise(recipe: str, store: TraceStore, tally, plan, existing, run: dict) -> dict:
    """run: fingerprint, stopped (why the run ended early, or None), endpoints (router stats), wall_seconds, shard."""
    busy = tally.wall_seconds  # from the first request to the last row: start-up and teacher checks excluded
    done = tally.finished + tally.errors
    summary = {
        "recipe": recipe,
        "out": str(store.paths["main"]),
        "files": {kind: str(path) for kind, path in store.paths.items() if path.exists()},
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
        "spent": tally.spent,
        "wall_seconds": round(run["wall_seconds"], 2),
        "rows_per_second": round(done / busy, 3) if busy else None,
        "tokens_per_second": round(tally.completion_tokens / busy, 1) if busy else None,
        "client_cpu_ms_per_row": round(1000 * tally.cpu_seconds / done, 3) if done else None,
        "endpoints": run["endpoints"],
    }
    summary["file"] = file_totals(summary, existing, previous_totals(store, existing))
    return summary


def previous_totals(store: TraceStore, existing) -> dict | None:
    """The totals the last summary kept, if they still describe these files (as many rows kept and rejected)."""
    try:
        totals = json.loads(store.summary_path.read_text(encoding="utf-8")).get("file")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(totals, dict) or (totals.get("accepted"), sum((totals.get("rejected") or {}).values())) \
            != (existing.accepted, existing.rejected):
        return None  # an older summary, or the files were changed by hand since
    return totals


def file_totals(run: dict, existing, before: dict | None) -> dict:
    """This run's counts on top of what the files held before it. Rows are counted from the files; the reject
    reasons and the tokens spent come from the last summary (resampled replies are in no file)."""
    rejected = Counter((before or {}).get("rejected") or {})
    if before is None and existing.rejected:
        rejected["(before this summary)"] = existing.rejected
    rejected.update(run["rejected"])
    before = before or {}
    return {
        "accepted": existing.accepted + run["accepted"],
        "rejected": dict(rejected),
        "resampled": (before.get("resampled") or 0) + run["resampled"],
        "spent": merge_spent(before.get("spent") or {}, run["spent"]),
        "runs": (before.get("runs") or 0) + 1,
    }


def merge_spent(a: dict, b: dict) -> dict:
    out: dict = {}
    for spent in (a, b):
        for outcome, reasons in spent.items():
            for reason, counts in reasons.items():
                bucket = out.setdefault(outcome, {}).setdefault(reason, {"replies": 0, "prompt": 0, "completion": 0})
                for key in bucket:
                    bucket[key] += counts.get(key) or 0
    return out


def spent_line(spent: dict) -> str | None:
    """'3,120 tokens a kept row; rejected verify_failed 2,400; cancelled repetition_loop 9,100 (43% of all spent)'."""
    def tokens(bucket: dict) -> int:
        return bucket["prompt"] + bucket["completion"]

    total = sum(tokens(b) for reasons in spent.values() for b in reasons.values())
    if not total:
        return None
    kept = spent.get("kept", {}).get("kept")
    parts = [f"{tokens(kept) / kept['replies']:,.0f} tokens a kept row" if kept else "no row kept"]
    for outcome in OUTCOMES[1:]:
        reasons = spent.get(outcome) or {}
        if reasons:
            parts.append(f"{outcome} " + ", ".join(f"{r} {tokens(b):,} ({b['replies']})" for r, b in reasons.items()))
    wasted = total - (tokens(kept) if kept else 0)
    return "; ".join(parts) + f"; {100 * wasted / total:.0f}% of the {total:,} tokens spent on replies not kept"


def print_summary(s: dict, file=None) -> None:
    file = file or sys.stderr
    rejected = ", ".join(f"{k} {v}" for k, v in s["rejected"].items()) or "none"
    lines = [
        f"{s['recipe']}: {s['accepted']} accepted, {sum(s['rejected'].values())} rejected ({rejected}), "
        f"{s['errors']} errors, {s['resampled']} resampled, in {s['wall_seconds']:.1f}s"
        + (f"; {s['done_before']} of the {s['rows']} rows were done before" if s["done_before"] else ""),
        f"  {s['tokens']['completion']:,} tokens generated, {s['tokens_per_second'] or 0:,.1f} tok/s, "
        f"{s['rows_per_second'] or 0:.2f} rows/s",
    ]
    spent = spent_line(s["spent"])
    if spent:
        lines.append(f"  teacher tokens: {spent}")
    totals = s["file"]
    if totals["runs"] > 1:
        lines.append(f"  in the file after {totals['runs']} runs: {totals['accepted']:,} rows kept, "
                     f"{sum(totals['rejected'].values()):,} rejected" + (
                         f"; {spent_line(totals['spent'])}" if spent_line(totals["spent"]) else ""))
    names = {"main": "rows", "rejects": "rejects", "errors": "errors"}
    files = "  ".join(f"{names[kind]}: {path}" for kind, path in s["files"].items())
    lines.append(f"  {files or 'no file written'}")
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

