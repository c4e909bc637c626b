"""crap.py: the cross-dataset command line over the trace files in data/ (one JSON row per line, README.md).

    python crap.py stats [FILES...]                      rows, verification, rejects, lengths, teacher speed
    python crap.py mix [FILES...] --out data/mix --seed 0 the training mix: sft.jsonl, rl.jsonl, eval.jsonl, mix.json
    python crap.py push PATH --repo USER/NAME            publish as a Hub dataset (JSONL or parquet + card)
    python crap.py compare --teacher A --teacher B --n 100  teacher bake-off over the same seeded prompts
    python crap.py convert FILES...                      the original project's CSV outputs -> trace files
    python crap.py view [FILES...] --out data/view.html  one HTML page to browse, filter and search the rows

FILES are trace files or folders of them (default: data/); each file's rejects are read from
<stem>.rejects.jsonl beside it. The work is done in tunixhack/; this file only reads flags.
Exit codes: 0 done, 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tunixhack.generate.argtypes import concurrency, show_defaults
from tunixhack.errors import UserError


def counter_of(args):
    """Lengths in the student's tokens (--tokenizer, else Gemma3's from the Hugging Face cache), else words (its
    `note` says so, printed once the command has done its work: an error stays one line)."""
    from tunixhack.tokens import student_counter

    return student_counter(args.tokenizer)


def cmd_stats(args) -> None:
    from tunixhack.dataset.stats import write_report
    from tunixhack.dataset.traces import trace_files

    files = trace_files(args.files)
    counter = counter_of(args)
    text, pngs = write_report(files, counter, Path(args.out))
    print(text)
    print(f"wrote {args.out} and {len(pngs)} histogram(s): {', '.join(str(p) for p in pngs)}", file=sys.stderr)
    if counter.note:
        print(counter.note, file=sys.stderr)


def cmd_mix(args) -> None:
    from tunixhack.dataset.decontam import parse_eval_files
    from tunixhack.dataset.mix import build_mix, load_config, make_recipe, parse_quotas, summary_table
    from tunixhack.dataset.traces import trace_files

    overrides = {"seed": args.seed, "quotas": parse_quotas(args.quota) or None, "sft_share": args.sft_share,
                 "eval_share": args.eval_share, "max_tokens": args.max_tokens,
                 "max_prompt_tokens": args.max_prompt_tokens, "ngram": args.ngram,
                 "near_dup_threshold": args.near_dup_threshold,
                 "decontaminate": False if args.no_decontam else None}
    recipe = make_recipe(load_config(args.config), overrides)
    eval_files = parse_eval_files(args.eval_set)
    files = trace_files(args.files)
    out = Path(args.out)
    counter = counter_of(args)
    summary = build_mix(files, recipe, counter, eval_files, out, args.overwrite)
    print(summary_table(summary))
    removed = ", ".join(f"{k} {v}" for k, v in summary["removed"].items()) or "nothing"
    print(f"\nremoved: {removed} (each one in {out / 'removed.jsonl'}); lengths in {summary['length_unit']}")
    print("wrote " + ", ".join(f"{o['file']} ({o['rows']})" for o in summary["outputs"].values())
          + f" and mix.json in {out}")
    if counter.note:
        print(counter.note, file=sys.stderr)


def cmd_push(args) -> None:
    from tunixhack.dataset.hub import push, stage

    path = Path(args.path)
    folder = Path(args.staging or Path("data") / "hub" / args.repo.replace("/", "__"))
    staged = stage(path, args.repo, folder, args.format)
    splits = ", ".join(f"{k} {v}" for k, v in staged["splits"].items())
    if args.dry_run:
        print(f"dry run: the folder that would be uploaded to {args.repo} is {folder} ({splits}); nothing sent")
        return
    url = push(folder, args.repo, args.private, args.collection)
    print(f"pushed {splits} to {url}" + (f" and added it to collection {args.collection}" if args.collection else ""))


def cmd_view(args) -> None:
    from tunixhack.dataset.traces import trace_files
    from tunixhack.dataset.view import write_view

    files = trace_files(args.files)
    out = Path(args.out)
    rows = write_view(files, out)
    print(f"wrote {out} ({rows} rows from {len(files)} file(s)): open it in a browser; it needs no server or network")


def cmd_compare(args) -> None:
    from tunixhack.dataset.compare import Bakeoff, compare, discover_recipes, pair_teachers, parse_keyed, pick_recipes, shares
    from tunixhack.dataset.compare_report import markdown
    from tunixhack.tokens import token_counter

    teachers = pair_teachers(args.teacher, args.model)
    available = discover_recipes()
    recipes = pick_recipes(args.recipe, available)
    sources = parse_keyed(args.source, "--source", available)  # naming a recipe not chosen is harmless
    splits = parse_keyed(args.split, "--split", available)
    counter = token_counter(args.tokenizer)
    passthrough = []
    for flag in ("concurrency", "max_tokens", "timeout", "style"):
        if getattr(args, flag) is not None:
            passthrough += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    out = Path(args.out)
    bakeoff = Bakeoff(teachers, recipes, shares(args.n, list(recipes)), out, args.seed,
                      {"source": sources, "split": splits}, passthrough)
    result = compare(bakeoff, counter)
    print(markdown(result))
    print(f"wrote {out / 'compare.md'}, {out / 'compare.png'} and {out / 'compare.json'}", file=sys.stderr)


def cmd_convert(args) -> None:
    from tunixhack.dataset.convert import convert_file
    from tunixhack.dataset.traces import write_jsonl

    out_dir = Path(args.out_dir)
    plans = []
    for name in args.files:
        path = Path(name)
        out = out_dir / f"{path.stem}.jsonl"
        rejects = out_dir / f"{path.stem}.rejects.jsonl"
        for target in (out, rejects):
            if target.exists():  # never overwrite what is there: it may be someone's only copy
                raise UserError(f"{target} already exists; remove it or give another --out-dir")
        if any(out == planned for _, planned, _ in plans):
            raise UserError(f"two inputs named {path.name} would both write {out}; convert them one at a time "
                            "with different --out-dir")
        plans.append((path, out, rejects))
    # Read every file before writing any: a bad file leaves nothing half done.
    converted = [(path, out, rejects, *convert_file(path, args.dataset, args.category)) for path, out, rejects in plans]
    for path, out, rejects, rows, bad in converted:
        write_jsonl(out, rows)
        if bad:
            write_jsonl(rejects, bad)
        print(f"{path}: {len(rows)} rows -> {out}" + (f", {len(bad)} rejects -> {rejects}" if bad else ""))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crap.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("stats", help="per file and category statistics, data/stats.md and PNG histograms")
    s.add_argument("files", nargs="*", help="trace files or folders (default: data/)")
    s.add_argument("--out", default="data/stats.md", help="markdown report; PNGs go beside it")
    s.add_argument("--tokenizer", help="SentencePiece .model or HF tokenizer folder (default: Gemma3's from the "
                                       "Hugging Face cache, else words)")
    s.set_defaults(run=cmd_stats)

    m = sub.add_parser("mix", help="the seeded training mix: sft.jsonl, rl.jsonl, eval.jsonl, mix.json")
    m.add_argument("files", nargs="*", help="trace files or folders (default: data/)")
    m.add_argument("--out", default="data/mix", help="output folder")
    m.add_argument("--overwrite", action="store_true", help="replace a mix already in --out")
    m.add_argument("--config", help="JSON or TOML file with the recipe (seed, quotas, shares...); flags win")
    # the recipe; unset flags fall back to --config, then to the defaults shown
    m.add_argument("--seed", type=int, help="default 0")
    m.add_argument("--quota", action="append", metavar="CATEGORY=N",
                   help="at most N rows of a category (repeatable); a category without one keeps all its rows")
    m.add_argument("--sft-share", type=float, help="share of each category for SFT, the rest for GRPO (default 0.2)")
    m.add_argument("--eval-share", type=float, help="share of each category held out in eval.jsonl (default 0.05)")
    m.add_argument("--max-tokens", type=int,
                   help="budget for a whole example, chat prompt + completion (default 1024: train/sft.py --max-len)")
    m.add_argument("--max-prompt-tokens", type=int,
                   help="budget for the chat prompt (default 256: train/grpo.py --max-prompt-len)")
    m.add_argument("--tokenizer", help="the student's tokenizer (SentencePiece .model or HF folder; default: "
                                       "Gemma3's from the Hugging Face cache, as train/ finds it, else words)")
    m.add_argument("--near-dup-threshold", type=float, help="MinHash Jaccard for near-duplicate prompts (0.8)")
    # decontamination against the evaluation sets
    m.add_argument("--ngram", type=int, help="n-gram length for decontamination (default 13)")
    m.add_argument("--eval-set", action="append", metavar="KEY=PATH",
                   help="local copy of an evaluation set: gsm8k-test, mbpp-test, sciq-validation, sciq-test "
                        "(repeatable; the others load from the Hub)")
    m.add_argument("--no-decontam", action="store_true", help="skip decontamination (recorded in mix.json)")
    m.set_defaults(run=cmd_mix)

    u = sub.add_parser("push", help="upload trace files or a mix as a Hub dataset with a dataset card")
    u.add_argument("path", help="a mix folder, a folder of trace files (a split each) or one trace file")
    u.add_argument("--repo", required=True, help="USER/NAME")
    u.add_argument("--private", action="store_true", help="create the repository private")
    u.add_argument("--collection", metavar="SLUG", help="add the dataset to this collection (owner/title-id)")
    u.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl",  # tunixhack.dataset.hub.FORMATS
                   help="each split as data/<split>.jsonl (one trace row a line) or as parquet")
    u.add_argument("--staging", help="folder to build the upload in (default data/hub/USER__NAME)")
    u.add_argument("--dry-run", action="store_true", help="build the folder, upload nothing")
    u.set_defaults(run=cmd_push)

    b = sub.add_parser("compare", help="teacher bake-off: the same seeded prompts answered by every teacher")
    b.add_argument("--teacher", action="append", metavar="SPEC",
                   help="lmstudio | lmstudio://HOST:PORT | http(s)://HOST:PORT/v1 (give two or more)")
    b.add_argument("--model", action="append", metavar="NAME",
                   help="model key: once for every teacher, or once per --teacher in order (default qwen3-14b)")
    b.add_argument("--n", type=int, default=100, help="prompts in all, spread evenly over the recipes (default 100)")
    b.add_argument("--seed", type=int, default=0, help="which prompts are drawn (default 0)")
    b.add_argument("--recipe", action="append", metavar="NAME", help="recipe folder (repeatable; default: all)")
    b.add_argument("--source", action="append", metavar="RECIPE=ID_OR_PATH", help="a recipe's input (repeatable)")
    b.add_argument("--split", action="append", metavar="RECIPE=SPLIT", help="a recipe's split (repeatable)")
    b.add_argument("--out", default="data/compare", help="OUT/<teacher>/<recipe>.jsonl and compare.md/.png/.json")
    b.add_argument("--tokenizer", help="count lengths in the student's tokens (SentencePiece .model or HF folder)")
    b.add_argument("--concurrency", type=concurrency, metavar="N|auto", help="passed to every generate.py (default auto)")
    b.add_argument("--max-tokens", type=int, help="passed to every generate.py")
    b.add_argument("--timeout", type=float, help="passed to every generate.py")
    b.add_argument("--style", choices=("native", "written"), help="passed to every generate.py")
    b.set_defaults(run=cmd_compare)

    c = sub.add_parser("convert", help="import the original project's CSV outputs as trace files")
    c.add_argument("files", nargs="+", help="CSV files")
    c.add_argument("--out-dir", default="data", help="writes <stem>.jsonl and <stem>.rejects.jsonl here")
    c.add_argument("--dataset", help="source dataset id (default: guessed from the file name, else unknown)")
    c.add_argument("--category", help="category for every row (default: the CSV's column, else the file name)")
    c.set_defaults(run=cmd_convert)
    v = sub.add_parser("view", help="one self-contained HTML page to browse, filter and search the rows")
    v.add_argument("files", nargs="*", help="trace files or folders (default: data/)")
    v.add_argument("--out", default="data/view.html", help="the page (an earlier page there is replaced)")
    v.set_defaults(run=cmd_view)
    for command in sub.choices.values():
        show_defaults(command)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
