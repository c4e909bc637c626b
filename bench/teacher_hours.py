"""What one consumer GPU's hours buy: usable rows per simulated GPU-hour, and the share of the teacher's tokens
spent on rows that are not kept, for three ways of driving the same simulated card (issue 18).

The card: tests/fakes/gpu.py, Qwen3-14B Q4_K_M on a 16 GB card, 60 tokens/s for one slot, each slot slower
as slots fill (llama.cpp's batched throughput curve, https://github.com/ggml-org/llama.cpp/pull/15802); the
fake OpenAI server (tests/fakes/openai_server.py) streams each reply one token a decode step of it. Time is
the card's own simulated clock, so the figures do not depend on the machine's load; a run takes seconds.

The workload: N GSM8K-style rows ("Item i: what is i plus i?"), each reply a trace of L tokens then the right
answer. L is log-normal, by default with median 1,500 tokens (the issue's "good trace") and p90 4,000 (a heavy
tail: one trace in ten runs past 4,000; mean 2,010), drawn as the N stratified quantiles (the same lengths in
every run), shuffled by --seed. --median/--p90 set another; --mean M keeps the shape (p90 / median) and scales
it to mean M (the issue's arithmetic, "2% of replies loop and a good trace is 1,500 tokens: those 2% burn about
30% of all teacher tokens", holds for a MEAN of 1,500: --mean 1500). The words are real text (GSM8K's human solutions from tests/fixtures/real_texts, one word a token),
so the loop detector sees prose, not a pattern. A share p of the rows loop: half of their trace, then the same
26-word passage again and again until the server stops them. A row is usable if it did not loop, ended by
itself and fits the student's budget B as crap.py mix counts it (the whole training row: chat prompt, thinking
and answer, tunixhack.tokens.row_length; in words here, which the fake streams one a token).

    (a) the original scripts: one request at a time, no max_tokens: a loop runs to the 32,768-token context;
        the card has one slot (LM Studio before 0.4 served one request at a time);
    (b) parallel, 4 slots, nothing stopped on the stream (Curator, distilabel): loops and traces over the
        budget are generated in full and thrown away after (a quality check, the mix);
    (c) ours: tunixhack.generate.engine.generate with the GSM8K recipe, --concurrency 4 and --budget-from B:
        a loop is cancelled when the watch sees it, a trace is cut once its row passes B words;
    (c) oracle: not a run but the ceiling of any detector on this workload: (c) with every loop stopped at the very
        token it starts (its honest half and one token) and every row over B at the first token past B.

    python bench/teacher_hours.py [--rows 100] [--loops 0,1,3,5] [--budget 4096,8192] [--seed 0]
                                  [--median 1500 --p90 4000 | --mean M] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from statistics import NormalDist

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
os.environ.setdefault("TQDM_DISABLE", "1")

from throughput import FAKE_MODEL, SAMPLING, gsm8k_recipe, prompts  # noqa: E402

from tests.fakes.gpu import GPU  # noqa: E402
from tests.fakes.openai_server import OpenAIFake  # noqa: E402
from tunixhack.generate.store import sibling  # noqa: E402
from tunixhack.tokens import WordCounter, row_length  # noqa: E402
from tunixhack.verify import quality  # noqa: E402

MEDIAN, P90 = 1500, 4000    # the default trace lengths, in tokens
CONTEXT = 32768          # Qwen3's native context: where a loop ends when nothing else stops it
SLOTS = 4                # 4 x 8k tokens of Qwen3-14B f16 KV cache (160 KiB a token: 5 GiB) beside 9 GB of weights
LOOP = ("Wait, let me double-check that. She sells the remaining eggs at two dollars each, so the total "
        "is the number of eggs left times two dollars, which gives the same answer.")
TEXTS = ROOT / "tests" / "fixtures" / "real_texts" / "texts.ndjson.gz"


def sigma_of(median: float, p90: float) -> float:
    """The log-normal's shape from its median and p90 (0.77 for the defaults)."""
    return math.log(p90 / median) / NormalDist().inv_cdf(0.9)


def shape(median: float, p90: float, mean: float | None) -> tuple[float, float]:
    """(median, p90) as given, or with a mean: the same shape scaled so that the log-normal's mean is `mean`
    (a log-normal's mean is its median x exp(sigma^2 / 2))."""
    if mean is None:
        return median, p90
    scale = mean / (median * math.exp(sigma_of(median, p90) ** 2 / 2))
    return median * scale, p90 * scale


def lengths(n: int, seed: int, median: float = MEDIAN, p90: float = P90) -> list[int]:
    """n trace lengths: the stratified quantiles of the log-normal with this median and p90, shuffled."""
    sigma = sigma_of(median, p90)
    out = [round(median * math.exp(sigma * NormalDist().inv_cdf((i + 0.5) / n))) for i in range(n)]
    random.Random(seed).shuffle(out)
    return out


def words(seed: int) -> list[str]:
    """Real prose, one word a token: GSM8K's human solutions (not the Socratic ones), shuffled by seed."""
    with gzip.open(TEXTS, "rt", encoding="utf-8") as f:
        texts = [row["text"] for line in f if (row := json.loads(line))["source"] in ("gsm8k/train", "gsm8k/test")]
    random.Random(seed).shuffle(texts)
    return " ".join(texts).split()


def workload(n: int, loop_share: float, seed: int, median: float = MEDIAN,
             p90: float = P90) -> tuple[dict, set[int], list[int]]:
    """The fake's script, the rows that loop, and each row's trace length in tokens."""
    sizes, pool = lengths(n, seed, median, p90), words(seed)
    loops = set(random.Random(seed + 1).sample(range(n), round(loop_share * n)))
    rules, at = [], 0
    for i, size in enumerate(sizes):
        thinking = size - 1 if i not in loops else size // 2   # the answer is one token
        text = [pool[(at + k) % len(pool)] for k in range(thinking)]
        at += thinking
        rule = {"match": f"Item {i}:", "reasoning": " ".join(text), "content": f"\\boxed{{{2 * i}}}"}
        rules.append({**rule, "loop": LOOP} if i in loops else rule)
    return {"models": [FAKE_MODEL], "rules": rules}, loops, sizes


def row_lengths(script: dict, n: int) -> list[int]:
    """Each row's length as the mix counts it (in words), had its reply run to its end."""
    recipe = gsm8k_recipe()
    return [row_length(recipe.prompt(item), rule["reasoning"], rule["content"], WordCounter())
            for item, rule in zip(prompts(n), script["rules"])]


def row_of(prompt: str) -> int:
    return int(prompt.split("Item ", 1)[1].split(":", 1)[0])


async def bare(url: str, n: int, concurrency: int, max_tokens: int | None) -> dict[int, dict]:
    """A plain parallel client, as Curator's: every reply read to its end, then judged after the fact."""
    recipe, replies = gsm8k_recipe(), {}

    async def one(session, gate, item, i):
        body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": recipe.teacher_prompt(item)}],
                "stream": True, **SAMPLING, **({"max_tokens": max_tokens} if max_tokens else {})}
        thinking, answer, finish = [], [], None
        async with gate, session.post(f"{url}/chat/completions", json=body) as response:
            async for line in response.content:
                if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                    for choice in json.loads(line[5:]).get("choices", []):
                        thinking.append(choice["delta"].get("reasoning_content") or "")
                        answer.append(choice["delta"].get("content") or "")
                        finish = choice.get("finish_reason") or finish
        replies[i] = {"finish": finish, "thinking": "".join(thinking), "answer": "".join(answer).strip(),
                      "length": row_length(recipe.prompt(item), "".join(thinking).strip(), "".join(answer).strip(),
                                           WordCounter())}

    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(one(session, gate, item, i) for i, item in enumerate(prompts(n))))
    return replies


def kept_after_the_fact(replies: dict[int, dict], budget: int) -> set[int]:
    """What survives the quality check (a loop is rejected) and the mix (a trace over the budget is dropped)."""
    kept = set()
    for i, reply in replies.items():
        try:
            quality.no_repetition(reply["thinking"])
        except quality.Reject:
            continue
        if reply["finish"] == "stop" and reply["length"] <= budget:
            kept.add(i)
    return kept


async def ours(url: str, n: int, budget: int, folder: Path) -> tuple[set[int], dict[int, int]]:
    """Ours over the workload: the kept rows, and for each reply cancelled on the stream the tokens the client had
    received when it cancelled."""
    from tunixhack.generate.engine import generate
    from tunixhack.generate.settings import Selection, Settings
    from tunixhack.teachers.base import Sampling
    from tunixhack.teachers.watch import Budget, RowBudget

    folder.mkdir(parents=True)
    source = folder / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in prompts(n)))
    out = folder / "ours.jsonl"
    settings = Settings(Selection(str(source), split="bench"), out=out, teachers=(url,), model=FAKE_MODEL,
                        sampling=Sampling(**SAMPLING, budget=Budget(row=RowBudget(budget, WordCounter()))),
                        concurrency=SLOTS)
    await generate(gsm8k_recipe(), settings, warn=lambda _: None)
    read = lambda path: [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []  # noqa: E731
    seen = {row_of(r["prompt"]): r["usage"]["completion_tokens"] for r in read(sibling(out, "rejects"))
            if r["finish"] == "cancelled"}
    return {row_of(r["prompt"]) for r in read(out)}, seen


def run(way: str, script: dict, n: int, budgets: list[int], folder: Path, scale: float) -> list[dict]:
    """One way over the workload on a fresh simulated card, judged at each budget (ours runs once a budget):
    usable rows, simulated hours, tokens the card decoded."""
    results = []
    for budget in budgets if way == "c" else budgets[:1]:
        gpu, started, seen = GPU(scale=scale), time.perf_counter(), {}
        with OpenAIFake(script, slots=1 if way == "a" else SLOTS, gpu=gpu) as fake:
            if way == "c":
                rows, seen = asyncio.run(ours(fake.url, n, budget, folder / str(budget)))
                kept = {budget: rows}
            else:
                replies = asyncio.run(bare(fake.url, n, 1 if way == "a" else SLOTS, None if way == "a" else CONTEXT))
            time.sleep(0.05)  # the last cancel reaches the server
            spent = {row_of(s["prompt"]): s["sent"] for s in fake.server.streams}
        if way != "c":
            kept = {b: kept_after_the_fact(replies, b) for b in budgets}
        total, slots = sum(spent.values()), 1 if way == "a" else SLOTS
        steady = total * gpu.step_seconds(slots) / slots / 3600   # every slot busy, as through a long run
        # A real card at ~20 ms a token decodes about one token after the client cancels; the fake card, time
        # scaled, runs on while the client catches up. As on a real card: what the client had seen, plus one.
        real_lag = {i: min(t, seen[i] + 1) if i in seen else t for i, t in spent.items()}
        real_hours = steady * sum(real_lag.values()) / total
        results += [{"way": way, "budget": b, "usable": len(rows), "hours": steady, "clock_hours": gpu.clock / 3600,
                     "real_lag_hours": real_hours, "tokens": total,
                     "real_lag_wasted": 1 - sum(real_lag[i] for i in rows) / sum(real_lag.values()),
                     "wasted": 1 - sum(spent[i] for i in rows) / total, "kept": sorted(rows), "spent": spent,
                     "wall_s": time.perf_counter() - started} for b, rows in kept.items()]
    return results


def oracle(ours: dict, loops: set[int], sizes: list[int], row_lens: list[int]) -> dict:
    """(c) as a perfect detector would have it, on the same card: every loop stopped at the very token it starts
    (its honest half and that token), every row over the budget at the first token past it (the trace's room, the
    budget less the row's prompt and tags, and one), every other reply decoded in full. The same rows are kept as
    in ours (none stopped is usable, and ours stops no other); the card's hours per token are ours'."""
    budget, spent = ours["budget"], {}
    for i, (size, length) in enumerate(zip(sizes, row_lens)):
        room = size - (length - budget)   # the trace's tokens the budget has room for
        spent[i] = size // 2 + 1 if i in loops else min(size, room + 1) if length > budget else size
    kept = {i for i, length in enumerate(row_lens) if i not in loops and length <= budget}
    total = sum(spent.values())
    hours = total * ours["hours"] / ours["tokens"]
    wasted = 1 - sum(spent[i] for i in kept) / total
    return {"way": "o", "budget": budget, "usable": len(kept), "hours": hours, "clock_hours": None,
            "real_lag_hours": hours, "tokens": total, "real_lag_wasted": wasted, "wasted": wasted,
            "kept": sorted(kept), "spent": spent, "wall_s": 0.0}


def table(results: list[dict]) -> str:
    lines = ["| p (loops) | B | way | usable rows | GPU-hours | usable rows / GPU-hour | vs (b) | teacher tokens | "
             "tokens on rows not kept | this run's clock: h, rows/h | a real card's lag after a cancel: vs (b), not kept |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    names = {"a": "(a) one at a time", "b": "(b) parallel, judged after", "c": "(c) ours",
             "o": "(c) oracle: each stop at its first token"}
    for r in results:
        rate = r["usable"] / r["hours"]
        base = next(b for b in results if b["way"] == "b" and b["p"] == r["p"] and b["budget"] == r["budget"])
        lines.append(f"| {r['p']:.0%} | {r['budget']:,} | {names[r['way']]} | {r['usable']} | {r['hours']:.2f} | "
                     f"{rate:.1f} | {rate / (base['usable'] / base['hours']):.2f} | {r['tokens']:,} | {r['wasted']:.1%} | "
                     f"{clock(r)} | "
                     f"{r['usable'] / r['real_lag_hours'] / (base['usable'] / base['real_lag_hours']):.3f}, "
                     f"{r['real_lag_wasted']:.1%} |")
    return "\n".join(lines)


def clock(r: dict) -> str:
    """The run's own simulated clock: hours, usable rows an hour (none for the oracle, which is computed)."""
    return "computed" if r["clock_hours"] is None else f"{r['clock_hours']:.2f}, {r['usable'] / r['clock_hours']:.1f}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100, help="rows per run (default 100)")
    p.add_argument("--loops", default="0,1,3,5", help="comma list of looping shares, in %% (default 0,1,3,5)")
    p.add_argument("--budget", default="4096,8192", help="comma list of student budgets B, the whole training row in words (one a token here; default "
                   "4096,8192)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--median", type=float, default=MEDIAN, help="median trace length in tokens (default 1500)")
    p.add_argument("--p90", type=float, default=P90, help="90th percentile trace length in tokens (default 4000)")
    p.add_argument("--mean", type=float, help="scale the --median/--p90 shape to this mean trace length in tokens "
                   "(default: none; the defaults' mean is 2,010; the issue's arithmetic is --mean 1500)")
    p.add_argument("--scale", type=float, default=100, help="the card's time runs at most this many times real time "
                   "(default 100: a client's few ms between requests cost the slots what they do on a real card)")
    p.add_argument("--json", type=Path, help="also write every run's figures here")
    args = p.parse_args()
    if not 0 < args.median < args.p90 or (args.mean is not None and args.mean <= 0):
        print(f"error: trace lengths need 0 < --median < --p90 and --mean > 0, got --median {args.median:g} "
              f"--p90 {args.p90:g} --mean {args.mean}", file=sys.stderr)
        sys.exit(2)
    median, p90 = shape(args.median, args.p90, args.mean)
    results, budgets = [], [int(x) for x in args.budget.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for share in (float(x) / 100 for x in args.loops.split(",")):
            script, loops, sizes = workload(args.rows, share, args.seed, median, p90)
            row_lens = row_lengths(script, args.rows)
            for way in "abc":
                for result in run(way, script, args.rows, budgets, Path(tmp) / f"{share}-{way}", args.scale):
                    for r in [result, oracle(result, loops, sizes, row_lens)] if way == "c" else [result]:
                        r.update(p=share, loops=sorted(loops), sizes=sizes, lengths=row_lens)
                        results.append(r)
                        print(f"p={share:.0%} B={r['budget']} ({r['way']}): {r['usable']} usable, {r['hours']:.2f} h, "
                              f"{r['wasted']:.1%} wasted, {r['wall_s']:.1f} s", file=sys.stderr)
    results.sort(key=lambda r: (r["budget"], r["p"], r["way"]))
    drawn = lengths(args.rows, args.seed, median, p90)
    mean = median * math.exp(sigma_of(median, p90) ** 2 / 2)
    print(f"trace lengths: log-normal, median {median:,.0f}, p90 {p90:,.0f}, mean {mean:,.0f} tokens (the {args.rows} "
          f"drawn: mean {sum(drawn) / len(drawn):,.0f}, median {sorted(drawn)[len(drawn) // 2]:,})")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results))


if __name__ == "__main__":
    main()
