"""Evaluate the base model and checkpoints side by side: on a published benchmark, or on the mix's holdout.

    python train/eval.py --model tiny --ckpt runs/sft --ckpt runs/grpo --benchmark gsm8k --source gsm8k_test.parquet
    python train/eval.py --ckpt runs/sft --ckpt runs/grpo --benchmark gsm8k        # openai/gsm8k main test, 1,319
    python train/eval.py --ckpt runs/grpo --data data/mix                          # the holdout (eval split)

--benchmark gsm8k|sciq|mbpp reads the real test split (openai/gsm8k main, allenai/sciq, MBPP full), every row
(--limit: a seeded sample, said so), or --source, a local copy in the same schema. The prompt and the check are
the dataset's recipe's own. --data reads trace rows (the mix's eval split: a holdout of the training sources,
easier than the benchmark and in its distribution; never call it a test). Protocol: 0-shot, the student's
prompt format, greedy decoding (temperature 1e-4, top_k 1, top_p 1, seed 42) with the choice made on float32
logits (the output layer and the argmax in float32, so no bfloat16 tie decides a token), --max-new-tokens, the
extraction stated in eval.json. Each checkpoint is evaluated as it was trained (base + float32 adapter, unmerged).
Every accuracy comes with n and its 95% Wilson interval. Writes --out/eval.json, eval.md, eval.png (accuracy
and format compliance per model, with the intervals as error bars), samples.jsonl.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

from tunixhack.errors import UserError
from tunixhack.generate.argtypes import show_defaults
from tunixhack.dataset.traces import write_json, write_jsonl
from tunixhack.train import plots, runs


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    runs.model_flags(p)
    p.add_argument("--ckpt", action="append", default=[], help="a run folder of sft.py or grpo.py (repeatable)")
    p.add_argument("--no-base", action="store_true", help="evaluate the checkpoints only")
    data = p.add_argument_group("what to evaluate on (one of)")
    data.add_argument("--benchmark", help="gsm8k | sciq | mbpp: the real test split")
    data.add_argument("--source", help="with --benchmark: a local copy of its test split, in the same schema")
    data.add_argument("--data", help="trace rows: a .jsonl, a mix folder, a pushed dataset folder or USER/NAME")
    data.add_argument("--split", default="eval", help="with --data: the split (default eval, the holdout)")
    data.add_argument("--limit", type=int, help="a seeded sample of N rows (per dataset with --data)")
    data.add_argument("--seed", type=int, default=0)
    gen = p.add_argument_group("decoding (greedy: temperature 1e-4, top_k 1, top_p 1, seed 42)")
    gen.add_argument("--max-new-tokens", type=int, default=768)
    gen.add_argument("--batch", type=int, default=8)
    p.add_argument("--unsafe-run-code", action="store_true",
                   help="run model-written code with no isolation where the machine allows none (see README)")
    p.add_argument("--out", help="output folder (default: eval/BENCHMARK, or eval/holdout, in the last --ckpt, "
                                 "else here); one that holds an eval is refused without --force")
    p.add_argument("--force", action="store_true", help="replace the eval already in --out")
    return show_defaults(p).parse_args(argv)


def out_folder(args) -> Path:
    """Where this eval goes: one folder per benchmark (a holdout run does not replace a GSM8K table), and never
    over an earlier eval unless --force, as export.py does."""
    out = Path(args.out) if args.out else \
        (Path(args.ckpt[-1]) if args.ckpt else Path()) / "eval" / (args.benchmark or "holdout")
    if (out / "eval.json").exists() and not args.force:
        raise UserError(f"{out} already holds an eval (eval.json); use another --out, or --force to replace it")
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    from tunixhack.train import benchmarks

    if bool(args.benchmark) == bool(args.data):
        raise UserError("give --benchmark gsm8k|sciq|mbpp (a published test split) or --data (trace rows), one")
    if args.source and not args.benchmark:
        raise UserError("--source is a local copy of a --benchmark's test split; trace rows go to --data")
    chain = [runs.read_run(c) for c in args.ckpt]
    model_name = runs.root_model(chain[0]) if chain else args.model
    for ckpt, run in zip(args.ckpt, chain):
        if runs.root_model(run) != model_name or args.model not in ("gemma3-1b-it", model_name):
            raise UserError(f"--ckpt {ckpt} was trained from {runs.root_model(run)}, not {model_name}: every "
                            f"checkpoint compared must come from the same base; leave --model out")
    if args.no_base and not chain:
        raise UserError("--no-base needs --ckpt: there would be nothing to evaluate")
    out = out_folder(args)  # refused now, not after an hour of decoding
    if args.benchmark:
        rows, protocol = benchmarks.load(args.benchmark, args.source, args.limit, args.seed)
    else:
        rows, protocol = holdout(args)
    protocol.update(prompt_template=prompt_template(), shots=0, max_new_tokens=args.max_new_tokens,
                    decoding=decoding(), isolation=sandbox_level(rows, args.unsafe_run_code))
    labels = ([] if args.no_base else [("base", None)]) + [(c, c) for c in args.ckpt]
    results, samples = {}, []
    for label, ckpt in labels:
        results[label] = evaluate(label, model_name, ckpt, rows, args, samples)
    write_json(out / "eval.json", {"protocol": protocol, "results": results})
    table = markdown(protocol, results)
    (out / "eval.md").write_text(table + "\n")
    chart = plots.eval_chart(results, heading(protocol, results), out / "eval.png")
    write_jsonl(out / "samples.jsonl", samples)
    print(table)
    print(f"\nwritten: {out / 'eval.json'}, {out / 'eval.md'}, {chart}, {out / 'samples.jsonl'}", file=sys.stderr)


def holdout(args) -> tuple[list[dict], dict]:
    import random

    from tunixhack.train import data as traces

    rows, read = traces.read_rows(args.data, args.split)
    total = len(rows)
    if args.limit:
        by_dataset = defaultdict(list)
        for row in rows:
            by_dataset[row.get("dataset") or "?"].append(row)
        rng = random.Random(args.seed)
        rows = [r for group in by_dataset.values() for r in (rng.sample(group, args.limit)
                                                             if len(group) > args.limit else group)]
    return rows, {"benchmark": None, "what": "the holdout of the training sources (the mix's eval split), not a benchmark",
                  "data": {k: v for k, v in read.as_dict().items() if k != "files"}, "rows_in_split": total,
                  "n": len(rows), "sample": f"at most {args.limit} per dataset, seeded ({args.seed})"
                  if args.limit else "every row", "extraction": "each row's check (tunixhack.verify.check) on "
                  "the text inside <answer></answer>, the whole reply when the tags are missing"}


def prompt_template() -> str:
    from tunixhack.student import FORMAT_INSTRUCTION, PROMPT_TEMPLATE

    return PROMPT_TEMPLATE.replace("{instruction}", FORMAT_INSTRUCTION)


def decoding() -> dict:
    from tunixhack.train.decode import INFERENCE, LOGITS

    return {"greedy": True, **INFERENCE, "logits": LOGITS}


def sandbox_level(rows: list[dict], unsafe: bool) -> str | None:
    """The code sandbox's isolation, named once, when the rows hold code to run."""
    from tunixhack.verify import check_of

    if not any((check_of(r) or {}).get("kind") == "code" for r in rows):
        return None
    from tunixhack.verify import code

    code.allow_unsafe(unsafe)
    level = code.require_isolation()  # refused here, at start-up, rather than in the middle of scoring
    print(f"code sandbox: {level}" + (f" ({code.why()})" if code.why() else ""), file=sys.stderr)
    return {"level": level, "why": code.why() or None}


def evaluate(label: str, model_name: str, ckpt: str | None, rows: list[dict], args, samples: list) -> dict:
    from tunixhack.student import answer_of, format_compliant, render_prompt
    from tunixhack.train import benchmarks
    from tunixhack.train import model as models
    from tunixhack.train.decode import Greedy
    from tunixhack.verify import check_many, check_of

    mesh = models.make_mesh(args.mesh)
    if ckpt:
        net, cfg, tok, run = runs.load_run(ckpt, mesh)
        step = run["restored_step"]
    else:
        source = models.resolve(model_name)
        (net, cfg), tok, step = models.load_base(source, mesh, args.dtype), models.load_tokenizer(source), None
    prompts = [render_prompt(r["prompt"]) for r in rows]
    longest = max(len(tok.encode(p)) for p in prompts) + 1
    greedy = Greedy(net, cfg, tok, models.token_ids(tok), args.max_new_tokens, max_prompt_len=longest)
    print(f"{label}: generating {len(rows)} replies", file=sys.stderr)
    replies = greedy(prompts, args.batch)
    verdicts = check_many(rows, [answer_of(r) or r for r in replies])
    groups: dict = defaultdict(lambda: {"correct": 0, "checked": 0, "uncheckable": 0, "format": 0, "n": 0})
    for row, reply, ok in zip(rows, replies, verdicts):
        compliant = format_compliant(reply)
        for name in ("all", f"{short(row.get('dataset'))} / {row.get('category') or '?'}"):
            group = groups[name]
            group["n"] += 1
            group["format"] += compliant
            if check_of(row) is not None:  # a row with a check counts, even when its answer could not be checked
                group["checked"] += 1
                group["correct"] += ok is True
                group["uncheckable"] += ok is None  # e.g. math-verify out of time: counted wrong, and said
        samples.append({"model": label, "id": row["id"], "reply": reply, "correct": ok, "format": compliant})
    summary = {name: {"accuracy": benchmarks.proportion(g["correct"], g["checked"]),
                      "uncheckable": g["uncheckable"], "format": benchmarks.proportion(g["format"], g["n"])}
               for name, g in sorted(groups.items())}
    return {"model": model_name, "ckpt": ckpt, "step": step, **summary.pop("all"), "groups": summary}


def short(dataset: str | None) -> str:
    return (dataset or "?").split("/")[-1]


def heading(protocol: dict, results: dict) -> str:
    """What was measured, on which models: eval.md's title and the chart's."""
    title = (f"{protocol['benchmark']} ({protocol['dataset']})" if protocol.get("benchmark")
             else f"Holdout of {protocol['data']['data']}"
             + (f", split {protocol['data']['split']}" if protocol["data"].get("split") else ""))
    models = ", ".join(f"{r['model']} (base)" if r["ckpt"] is None else f"{label} (step {r['step']})"
                       for label, r in results.items())
    return f"{title}: {models}"


def markdown(protocol: dict, results: dict) -> str:
    what = (f"{protocol['benchmark']}: {protocol['dataset']} {protocol['split']}" if protocol.get("benchmark")
            else protocol["what"])
    lines = [f"# {heading(protocol, results)}", "",
             f"Evaluated on {what}; n = {protocol['n']} ({protocol['sample']}); {protocol['shots']}-shot, greedy, "
             f"{protocol['max_new_tokens']} new tokens. Accuracy and format compliance with 95% Wilson intervals.",
             "", "| model | step | accuracy | 95% CI | format | n |", "|---|---|---|---|---|---|"]
    for label, r in results.items():
        acc, fmt = r["accuracy"], r["format"]
        lines.append(f"| {label} | {r['step'] if r['step'] is not None else '-'} | {pct(acc['value'])} | "
                     f"{interval(acc['ci95'])} | {pct(fmt['value'])} | {acc['n']} |")
    names = sorted({g for r in results.values() for g in r["groups"]})
    if len(names) > 1:
        lines += ["", "| dataset / category | " + " | ".join(f"{m} accuracy" for m in results) + " |",
                  "|---|" + "---|" * len(results)]
        for name in names:
            cells = [f"{pct(r['groups'][name]['accuracy']['value'])} {interval(r['groups'][name]['accuracy']['ci95'])}"
                     if name in r["groups"] else "-" for r in results.values()]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def interval(ci) -> str:
    return "-" if not ci else f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


if __name__ == "__main__":
    runs.cli(main)
