"""Throughput of the generation engine against a local OpenAI-compatible server, beside a bare asyncio client
and Bespoke Curator, measured in the same run.

The server (tests/fakes/openai_server.py, its own process) answers every request after a fixed latency L and
generates at most S replies at once (requests beyond S wait in the server), like a GPU server with S parallel
slots: the ideal is S/L rows per second. For each S, every client runs in its own process against the same
server, over N = rows-per-slot x S rows, after a warm-up of S rows; the clients take turns, their order rotated
each round, so that whatever else runs on the machine weighs on all of them alike. Clients:
- ours: `generate(recipe, settings)` with the GSM8K recipe, given S requests at a time (--concurrency S):
  routing, retries, math verification and JSONL writes included;
- bare: aiohttp and asyncio, S requests at a time, the stream read and each event parsed; beyond that only
  ours' connection rules (KEEPALIVE_S, and Connection: close to llama.cpp) and openai-python's default retries
  of a connection error (twice, after 0.5 and 1 s), so that it finishes against a real server as a user's
  client would;
- curator: Bespoke Curator's OpenAI backend with max_concurrent_requests=S, when `bespokelabs` imports in
  --curator-python (default: this interpreter);
- auto: ours with --concurrency auto, not told S (reported as the share of the ideal and the settled value).
rows/s is rows over the time from a client's first request to its last reply; CPU is the client process's
(all threads) over the same span, per row. Printed: the median over rounds and the spread (min-max).

`--teacher URL` runs the same clients against a real server instead (llama-server, vLLM, LM Studio's /v1): S
defaults to the slots it reports, every client sends the same GSM8K prompts and sampling with `--max-tokens`,
and, since real replies differ in length, completion tokens/s is printed beside rows/s, and the retries each
client spent (ours': the requests its router retried).

    python bench/throughput.py [--latency 0.2] [--slots 1,4,16,64] [--rows-per-slot 20] [--rounds 3]
                               [--curator-python .venv-curator/bin/python]
    python bench/throughput.py --teacher http://127.0.0.1:8080/v1 [--model NAME] [--max-tokens 64] ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIENT_TIMEOUT_S = 600
FAKE_MODEL = "qwen3-14b"   # what the fake serves
SAMPLING = {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0}  # ours' defaults, sent by every client
BARE_RETRIES = 2  # openai-python's default max_retries


def prompts(n: int, offset: int = 0) -> list[dict]:
    return [{"question": f"Item {i}: what is {i} plus {i}?", "answer": f"#### {2 * i}"}
            for i in range(offset, offset + n)]


def gsm8k_recipe():
    from tunixhack.generate.scripts import load_recipe

    return load_recipe(ROOT / "gsm8k" / "generate.py", "gsm8k_recipe")


def start_server(latency: float, slots: int, rows: int, folder: Path) -> tuple[subprocess.Popen, str]:
    script = {"latency": latency, "default": {"reasoning": "Add the two numbers.", "content": "\\boxed{0}"},
              "rules": [{"match": f"Item {i}:", "reasoning": f"{i} + {i} = {2 * i}", "content": f"\\boxed{{{2 * i}}}"}
                        for i in range(rows)]}
    path = folder / f"script{slots}.json"
    path.write_text(json.dumps(script))
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.openai_server", "--script", str(path),
                             "--slots", str(slots)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().split()[-1]


# --- the clients, each run in a process of its own (--client NAME) ------------------------------------------
def client_ours(url: str, rows: int, slots: int, folder: Path, auto: bool, model: str, max_tokens: int) -> dict:
    from tunixhack.generate.engine import generate
    from tunixhack.generate.settings import Selection, Settings
    from tunixhack.teachers.base import Sampling

    recipe, result = gsm8k_recipe(), {}
    for name, data in (("warm", prompts(slots, rows)), ("run", prompts(rows))):
        source = folder / f"{name}.jsonl"
        source.write_text("".join(json.dumps(r) + "\n" for r in data))
        settings = Settings(Selection(str(source), split="bench"), out=folder / f"{name}.out.jsonl",
                            teachers=(url,), model=model, sampling=Sampling(max_tokens=max_tokens, **SAMPLING),
                            concurrency=None if auto else slots)
        outcome = asyncio.run(generate(recipe, settings, warn=lambda _: None))
        summary = outcome.summary
        # The fake answers every row right; a real model is judged, so only errors count against the run.
        assert summary["errors"] == 0 and (summary["accepted"] == len(data) or model != FAKE_MODEL), summary
        endpoint = next(iter(summary["endpoints"].values()))
        result = {"rows_per_s": summary["rows_per_second"], "cpu_ms_per_row": summary["client_cpu_ms_per_row"],
                  "tokens_per_s": summary["tokens_per_second"], "settled": endpoint["concurrency"],
                  "retries": endpoint["failed"]}
    return result


def client_bare(url: str, rows: int, slots: int, model: str, max_tokens: int) -> dict:
    """A plain aiohttp loop, with what any client needs to finish against a real server: the connection rules
    ours follows (a pooled connection idle past KEEPALIVE_S is not reused; to llama.cpp, which closes after
    every streamed reply, each request says Connection: close) and openai-python's default retries."""
    import random

    import aiohttp

    from tunixhack.teachers.openai_compat import CLOSES_AFTER_STREAM, KEEPALIVE_S

    recipe, completion, retried, headers = gsm8k_recipe(), [0], [0], {}

    async def post(session, body):
        """openai-python's default (max_retries=2): a connection error is retried twice, after 0.5 then 1 s,
        each less up to a quarter at random."""
        for attempt in range(BARE_RETRIES + 1):
            try:
                return await session.post(f"{url}/chat/completions", json=body, headers=headers)
            except aiohttp.ClientConnectionError:
                if attempt == BARE_RETRIES:
                    raise
                retried[0] += 1
                await asyncio.sleep(0.5 * 2**attempt * (1 - 0.25 * random.random()))

    async def one(session, gate, item):
        body = {"model": model, "messages": [{"role": "user", "content": recipe.teacher_prompt(item)}],
                "stream": True, "stream_options": {"include_usage": True}, "max_tokens": max_tokens, **SAMPLING}
        async with gate:
            async with await post(session, body) as response:
                async for line in response.content:
                    if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                        usage = json.loads(line[5:]).get("usage")
                        completion[0] += (usage or {}).get("completion_tokens") or 0

    async def batch(items):
        gate = asyncio.Semaphore(slots)
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_S)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get(f"{url}/models") as response:
                if response.headers.get("Server", "").startswith(CLOSES_AFTER_STREAM):
                    headers["Connection"] = "close"
            await asyncio.gather(*(one(session, gate, item) for item in prompts(slots, rows)))  # warm-up
            completion[0] = retried[0] = 0
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(one(session, gate, item) for item in items))
            return time.perf_counter() - wall, time.process_time() - cpu

    wall, cpu = asyncio.run(batch(prompts(rows)))
    return {"rows_per_s": rows / wall, "cpu_ms_per_row": 1000 * cpu / rows, "tokens_per_s": completion[0] / wall,
            "retries": retried[0]}


def client_curator(url: str, rows: int, slots: int, folder: Path, model: str, max_tokens: int) -> dict:
    os.environ.update({"CURATOR_CACHE_DIR": str(folder / "curator"), "CURATOR_DISABLE_CACHE": "1",
                       "TELEMETRY_ENABLED": "false", "CURATOR_VIEWER": "0", "OPENAI_API_KEY": "not-needed"})
    import tiktoken
    from bespokelabs import curator
    from bespokelabs.curator.request_processor.online import openai_online_request_processor as processor
    from datasets import Dataset

    # Curator counts prompt tokens with tiktoken's cl100k_base, which it downloads on first use; offline, give it
    # a byte-level encoding built here (the same kind of work per prompt, no download).
    offline = tiktoken.Encoding(name="bench_bytes", pat_str=r"\S+|\s+", special_tokens={},
                                mergeable_ranks={bytes([b]): b for b in range(256)})
    processor.OpenAIOnlineRequestProcessor.get_token_encoding = lambda self: offline

    class Answer(curator.LLM):
        def prompt(self, row):
            return row["question"]

        def parse(self, row, response):
            return {"question": row["question"], "answer": response}

    llm = Answer(model_name=model, backend="openai",
                 generation_params={"max_tokens": max_tokens, "temperature": 0.6, "top_p": 0.95},
                 backend_params={"base_url": url, "api_key": "not-needed", "max_concurrent_requests": slots,
                                 "max_requests_per_minute": 10_000_000, "max_tokens_per_minute": 10_000_000_000,
                                 "require_all_responses": True, "request_timeout": 60})
    llm(Dataset.from_list(prompts(slots, rows)))  # warm-up
    cpu, wall = time.process_time(), time.perf_counter()
    llm(Dataset.from_list(prompts(rows)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"rows_per_s": rows / wall, "cpu_ms_per_row": 1000 * cpu / rows}


def run_client(name: str, python: str, url: str, rows: int, slots: int, args) -> dict | None:
    cmd = [python, str(Path(__file__).resolve()), "--client", name, "--url", url, "--rows", str(rows),
           "--concurrency", str(slots), "--model", args.model, "--max-tokens", str(args.max_tokens)]
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S, cwd=ROOT, env=env)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        print(f"  {name} failed (exit {result.returncode}): {(result.stderr.strip().splitlines() or ['?'])[-1]}",
              file=sys.stderr)
        return None
    return json.loads(lines[-1])


def curator_available(python: str) -> bool:
    check = subprocess.run([python, "-c", "import bespokelabs.curator"], capture_output=True)
    return check.returncode == 0


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    if not values:
        return "-"
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def measure_slots(args, slots: int, clients: dict[str, str], folder: Path) -> dict:
    rows = slots * args.rows_per_slot
    proc, url = (None, args.teacher) if args.teacher else start_server(args.latency, slots, rows + slots, folder)
    results: dict[str, list[dict]] = {name: [] for name in clients}
    try:
        for round_ in range(args.rounds):
            names = list(clients)
            names = names[round_ % len(names):] + names[: round_ % len(names)]  # rotate the order each round
            for name in names:
                found = run_client(name, clients[name], url, rows, slots, args)
                if found:
                    found["round"] = round_
                    results[name].append(found)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
    return results


def table_row(slots: int, ideal: float | None, results: dict[str, list[dict]]) -> str:
    """ideal: S/L rows/s against the fake; None against a real server (then tokens/s, and auto beside bare)."""
    rate = {name: [r["rows_per_s"] for r in runs] for name, runs in results.items()}
    cpu = {name: [r["cpu_ms_per_row"] for r in runs] for name, runs in results.items()}
    bare = {r["round"]: r["rows_per_s"] for r in results["bare"]}

    def paired(name: str) -> list[float]:  # each run over the bare client's in the same round
        return [r["rows_per_s"] / bare[r["round"]] for r in results.get(name) or () if r["round"] in bare]

    cells = [str(slots), f"{ideal:.0f}" if ideal else "-", spread(rate["bare"]), spread(rate["ours"]),
             spread(paired("ours"), "{:.3f}"), spread(cpu["ours"], "{:.2f}"), spread(cpu["bare"], "{:.2f}")]
    if ideal is None:
        cells += [spread([r["tokens_per_s"] for r in results[name]]) for name in ("bare", "ours")]
        cells.append(" / ".join(str(sum(r["retries"] for r in results[name])) for name in ("bare", "ours")))
    if "curator" in results:
        cells += [spread(rate["curator"]), spread(cpu["curator"], "{:.2f}")]
    auto = results.get("auto") or []
    share = [r["rows_per_s"] / ideal for r in auto] if ideal else paired("auto")
    cells += [spread(share, "{:.2f}"), spread([r["settled"] for r in auto], "{:.0f}")]
    return "| " + " | ".join(cells) + " |"


def describe_teacher(url: str, model: str | None) -> tuple[str, int | None]:
    """The model a real server serves (the first, unless named) and the slots it reports."""
    import urllib.request

    from tunixhack.teachers.openai_compat import OpenAITeacher

    if model is None:
        with urllib.request.urlopen(f"{url.rstrip('/')}/models", timeout=10) as response:
            model = json.loads(response.read())["data"][0]["id"]

    async def slots():
        teacher = OpenAITeacher(url, model)
        try:
            return await teacher.reported_parallel() and teacher.reported_slots
        finally:
            await teacher.close()

    return model, asyncio.run(slots())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--latency", type=float, default=0.2, help="server seconds per request (default 0.2)")
    p.add_argument("--slots", default="1,4,16,64", help="comma list of parallel slots (default 1,4,16,64)")
    p.add_argument("--rows-per-slot", type=int, default=20, help="measured rows = slots x this (default 20)")
    p.add_argument("--rounds", type=int, default=3, help="runs of each client per S, interleaved (default 3)")
    p.add_argument("--curator-python", default=sys.executable, help="an interpreter where bespokelabs imports")
    p.add_argument("--no-auto", action="store_true", help="skip the --concurrency auto runs")
    p.add_argument("--teacher", help="a real OpenAI-compatible server (http://HOST:PORT/v1) instead of the fake")
    p.add_argument("--model", help="the model to ask for (default: the first the --teacher serves)")
    p.add_argument("--max-tokens", type=int, help="per reply (default: 64 against a --teacher, else 32768)")
    # one client's run (the orchestrator starts these)
    p.add_argument("--client", choices=("ours", "bare", "curator", "auto"), help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    p.add_argument("--concurrency", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.client:
        work = (args.url, args.rows, args.concurrency)
        with tempfile.TemporaryDirectory() as tmp:
            if args.client in ("ours", "auto"):
                found = client_ours(*work, Path(tmp), args.client == "auto", args.model, args.max_tokens)
            elif args.client == "bare":
                found = client_bare(*work, args.model, args.max_tokens)
            else:
                found = client_curator(*work, Path(tmp), args.model, args.max_tokens)
        print(json.dumps(found))
        return

    clients = {"ours": sys.executable, "bare": sys.executable}
    if curator_available(args.curator_python):
        clients["curator"] = args.curator_python
    else:
        print(f"Curator not found in {args.curator_python}: its columns are left out", file=sys.stderr)
    if not args.no_auto:
        clients["auto"] = sys.executable
    slot_list = [int(s) for s in args.slots.split(",")]
    args.max_tokens = args.max_tokens or (64 if args.teacher else 32768)  # 32768: Sampling's default
    if args.teacher:
        args.model, reported = describe_teacher(args.teacher, args.model)
        if "--slots" not in sys.argv:
            slot_list = [reported or 4]
        print(f"{args.teacher}, model {args.model}, {reported or 'no'} slots reported; {args.max_tokens} tokens at "
              f"most a reply; N = {args.rows_per_slot} x S rows after a warm-up of S; {args.rounds} rounds, "
              f"clients interleaved; load average {os.getloadavg()[0]:.1f} at the start")
    else:
        args.model = FAKE_MODEL
        print(f"L = {args.latency:g} s per request; N = {args.rows_per_slot} x S rows after a warm-up of S; "
              f"{args.rounds} rounds, clients interleaved; load average {os.getloadavg()[0]:.1f} at the start")
    header = ["S", "ideal S/L", "bare rows/s", "ours rows/s", "ours / bare", "ours CPU ms/row", "bare CPU ms/row"]
    if args.teacher:
        header += ["bare tok/s", "ours tok/s", "retries: bare / ours"]
    if "curator" in clients:
        header += ["Curator rows/s", "Curator CPU ms/row"]
    header += ["auto / bare" if args.teacher else "auto: share of ideal", "auto: settled at"]
    print("| " + " | ".join(header) + " |\n|" + "---:|" * len(header), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for slots in slot_list:
            results = measure_slots(args, slots, clients, Path(tmp))
            print(table_row(slots, None if args.teacher else slots / args.latency, results), flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end", flush=True)


if __name__ == "__main__":
    main()
