"""Evaluate the base model and a checkpoint side by side, with the hackathon's greedy inference settings.

    python train/eval.py --model tiny --ckpt runs/grpo --data eval.jsonl
    python train/eval.py --ckpt ckpts/grpo --data eval.jsonl --limit 500

--data holds trace rows (crap.py mix's eval.jsonl: GSM8K test, SciQ test, MBPP test, ...). Each row is
scored by what it carries: math rows against `reference` (math-verify), rows with `options` by the option
picked, rows with `tests` by running them in the sandbox (tunixhack/verify/code.py: MBPP pass@1), and every
row for format compliance (exactly <reasoning>...</reasoning><answer>...</answer>). Correctness reads the
<answer> section when there is one and the whole reply otherwise, so an untrained base model is scored
on what it says, not on its tags. Writes --out/eval.json, eval.md (the table) and samples.jsonl.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import defaultdict
from pathlib import Path

from tunixhack.train import runs

from tunixhack.errors import UserError
from tunixhack.traces import write_json, write_jsonl


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    runs.model_flags(p)
    p.add_argument("--ckpt", help="a run folder of train/sft.py or train/grpo.py (latest checkpoint)")
    p.add_argument("--no-base", action="store_true", help="evaluate the checkpoint only")
    data = p.add_argument_group("data")
    data.add_argument("--data", required=True, help="trace rows (.jsonl) with references, e.g. eval.jsonl")
    data.add_argument("--limit", type=int, help="at most N rows per dataset (a seeded sample)")
    data.add_argument("--seed", type=int, default=0)
    gen = p.add_argument_group("decoding (greedy: temperature 1e-4, top_k 1, top_p 1, seed 42)")
    gen.add_argument("--max-new-tokens", type=int, default=768)
    gen.add_argument("--max-prompt-len", type=int, default=512, help="longer prompts are skipped and counted")
    gen.add_argument("--batch", type=int, default=8)
    p.add_argument("--out", help="output folder (default: CKPT/eval, or eval/ here)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    from tunixhack.train import data as traces

    rows = sample(traces.read_rows(args.data), args.limit, args.seed)
    run = runs.read_run(args.ckpt) if args.ckpt else None
    model_name = runs.root_model(run) if run else args.model
    if run and args.model not in ("gemma3-1b-it", model_name):
        raise UserError(f"--model {args.model} differs from the model {args.ckpt} was trained from ({model_name}); "
                        f"leave --model out")
    if args.no_base and not run:
        raise UserError("--no-base needs --ckpt: there would be nothing to evaluate")
    out = Path(args.out or (Path(args.ckpt) / "eval" if args.ckpt else "eval"))
    results, samples = {}, []
    if not args.no_base:
        results["base"] = evaluate("base", model_name, None, rows, args, samples)
    if run:
        results["ckpt"] = evaluate("ckpt", model_name, args.ckpt, rows, args, samples)
    settings = {"data": args.data, "rows": len(rows), "max_new_tokens": args.max_new_tokens, "limit": args.limit,
                "model": model_name, "ckpt": args.ckpt, "step": results.get("ckpt", {}).get("step")}
    write_json(out / "eval.json", {"settings": settings, "results": results})
    table = markdown(results)
    (out / "eval.md").write_text(table + "\n")
    write_jsonl(out / "samples.jsonl", samples)
    print(table)
    print(f"\nwritten: {out / 'eval.json'}, {out / 'eval.md'}, {out / 'samples.jsonl'}", file=sys.stderr)


def sample(rows: list[dict], limit: int | None, seed: int) -> list[dict]:
    if not limit:
        return rows
    by_dataset = defaultdict(list)
    for row in rows:
        by_dataset[row.get("dataset") or "?"].append(row)
    rng = random.Random(seed)
    return [r for group in by_dataset.values() for r in (rng.sample(group, limit) if len(group) > limit else group)]


def evaluate(label: str, model_name: str, ckpt: str | None, rows: list[dict], args, samples: list) -> dict:
    from tunixhack.train import data as traces
    from tunixhack.train import model as models
    from tunixhack.train.decode import Greedy

    mesh = models.make_mesh(args.mesh)
    if ckpt:
        net, cfg, tok, run = runs.load_run(ckpt, mesh, merged=True)
        step = run["restored_step"]
    else:
        source = models.resolve(model_name)
        (net, cfg), tok, step = models.load_base(source, mesh, args.dtype), models.load_tokenizer(source), None
    greedy = Greedy(net, cfg, tok, models.token_ids(tok), args.max_new_tokens, args.max_prompt_len)
    prompts = [traces.render_prompt(r["prompt"]) for r in rows]
    fits = [i for i, p in enumerate(prompts) if greedy.fits(p)]
    print(f"{label}: generating {len(fits)} replies ({len(rows) - len(fits)} prompts too long)", file=sys.stderr)
    replies = dict(zip(fits, greedy([prompts[i] for i in fits], args.batch)))
    groups: dict = defaultdict(lambda: {"n": 0, "skipped": 0, "checked": 0, "correct": 0, "format": 0})
    for i, row in enumerate(rows):
        group = groups[f"{short(row.get('dataset'))} / {row.get('category') or '?'}"]
        if i not in replies:
            group["skipped"] += 1
            continue
        ok, compliant = score(row, replies[i])
        group["n"] += 1
        group["format"] += compliant
        if ok is not None:
            group["checked"] += 1
            group["correct"] += ok
        samples.append({"model": label, "id": row["id"], "reply": replies[i], "correct": ok, "format": compliant})
    for group in groups.values():
        group["accuracy"] = round(group["correct"] / group["checked"], 4) if group["checked"] else None
        group["format_rate"] = round(group["format"] / group["n"], 4) if group["n"] else None
    return {"model": model_name, "ckpt": ckpt, "step": step, "groups": dict(sorted(groups.items()))}


def score(row: dict, reply: str) -> tuple[bool | None, bool]:
    """(correct or None when nothing can be checked, format compliant)."""
    from tunixhack.student import answer_of, format_compliant

    answer = answer_of(reply) or reply
    if row.get("tests"):
        from tunixhack.verify.code import verify_code

        ok = verify_code(answer, list(row["tests"]), setup=row.get("test_setup") or "",
                         imports=tuple(row.get("test_imports") or ()))
    elif row.get("options") and row.get("reference"):
        from tunixhack.verify.choice import verify_choice

        ok = verify_choice(answer, str(row["reference"]), row["options"])
    elif row.get("category") == "math" and row.get("reference"):
        from tunixhack.verify.math import verify_math

        ok = verify_math(answer, str(row["reference"]))
    else:
        ok = None
    return ok, format_compliant(reply)


def short(dataset: str | None) -> str:
    return (dataset or "?").split("/")[-1]


def markdown(results: dict) -> str:
    labels = list(results)
    head = ["dataset / category", "n"] + [f"{m} accuracy" for m in labels] + [f"{m} format" for m in labels]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    names = sorted({g for r in results.values() for g in r["groups"]})
    for name in names:
        cells = [name, str(max(r["groups"].get(name, {}).get("n", 0) for r in results.values()))]
        for key in ("accuracy", "format_rate"):
            for m in labels:
                value = results[m]["groups"].get(name, {}).get(key)
                cells.append("-" if value is None else f"{100 * value:.1f}%")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    runs.cli(main)
