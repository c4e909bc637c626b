"""Throughput of the generation engine against a local OpenAI-compatible server, beside a bare asyncio client
and Bespoke Curator, measured in the same run.

The server (tests/fakes/openai_server.py, its own process) answers every request after a fixed latency L and
generates at most S replies at once (requests beyond S wait in the server), like a GPU server with S parallel
slots: the ideal is S/L rows per second. For each S, every client runs in its own process against the same
server, over N = rows-per-slot x S rows, after a warm-up of S rows; the clients take turns, their order rotated
each round, so that whatever else runs on the machine weighs on all of them alike. Clients:
- ours: `generate(recipe, settings)` with the GSM8K recipe, given S requests at a time (--concurrency S):
  routing, retries, math verification and JSONL writes included;
- bare: aiohttp and asyncio, S requests at a time, the stream read and each event parsed, nothing else;
- curator: Bespoke Curator's OpenAI backend with max_concurrent_requests=S, when `bespokelabs` imports in
  --curator-python (default: this interpreter);
- auto: ours with --concurrency auto, not told S (reported as the share of the ideal and the settled value).
rows/s is rows over the time from a client's first request to its last reply; CPU is the client process's
(all threads) over the same span, per row. Printed: the median over rounds and the spread (min-max).

    python bench/throughput.py [--latency 0.2] [--slots 1,4,16,64] [--rows-per-slot 20] [--rounds 3]
                               [--curator-python .venv-curator/bin/python]
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


def prompts(n: int, offset: int = 0) -> list[dict]:
    return [{"question": f"Item {i}: what is {i} plus {i}?", "answer": f"#### {2 * i}"}
            for i in range(offset, offset + n)]


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
def client_ours(url: str, rows: int, slots: int, folder: Path, auto: bool) -> dict:
    from tunixhack.generate.engine import generate
    from tunixhack.generate.scripts import load_recipe
    from tunixhack.generate.settings import Selection, Settings

    recipe = load_recipe(ROOT / "gsm8k" / "generate.py", "gsm8k_recipe")
    result = {}
    for name, data in (("warm", prompts(slots, rows)), ("run", prompts(rows))):
        source = folder / f"{name}.jsonl"
        source.write_text("".join(json.dumps(r) + "\n" for r in data))
        settings = Settings(Selection(str(source), split="bench"), out=folder / f"{name}.out.jsonl",
                            teachers=(url,), concurrency=None if auto else slots)
        outcome = asyncio.run(generate(recipe, settings, warn=lambda _: None))
        summary = outcome.summary
        assert summary["accepted"] == len(data), summary
        endpoint = next(iter(summary["endpoints"].values()))
        result = {"rows_per_s": summary["rows_per_second"], "cpu_ms_per_row": summary["client_cpu_ms_per_row"],
                  "settled": endpoint["concurrency"]}
    return result


def client_bare(url: str, rows: int, slots: int) -> dict:
    import aiohttp

    async def one(session, gate, item):
        body = {"model": "qwen3-14b", "messages": [{"role": "user", "content": item["question"]}], "stream": True,
                "max_tokens": 32768, "temperature": 0.6, "top_p": 0.95}
        async with gate, session.post(f"{url}/chat/completions", json=body) as response:
            async for line in response.content:
                if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                    json.loads(line[5:])

    async def batch(items):
        gate = asyncio.Semaphore(slots)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            await asyncio.gather(*(one(session, gate, item) for item in prompts(slots, rows)))  # warm-up
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(one(session, gate, item) for item in items))
            return time.perf_counter() - wall, time.process_time() - cpu

    wall, cpu = asyncio.run(batch(prompts(rows)))
    return {"rows_per_s": rows / wall, "cpu_ms_per_row": 1000 * cpu / rows}


def client_curator(url: str, rows: int, slots: int, folder: Path) -> dict:
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

    llm = Answer(model_name="qwen3-14b", backend="openai",
                 generation_params={"max_tokens": 32768, "temperature": 0.6, "top_p": 0.95},
                 backend_params={"base_url": url, "api_key": "not-needed", "max_concurrent_requests": slots,
                                 "max_requests_per_minute": 10_000_000, "max_tokens_per_minute": 10_000_000_000,
                                 "require_all_responses": True, "request_timeout": 60})
    llm(Dataset.from_list(prompts(slots, rows)))  # warm-up
    cpu, wall = time.process_time(), time.perf_counter()
    llm(Dataset.from_list(prompts(rows)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"rows_per_s": rows / wall, "cpu_ms_per_row": 1000 * cpu / rows}


def run_client(name: str, python: str, url: str, rows: int, slots: int) -> dict | None:
    cmd = [python, str(Path(__file__).resolve()), "--client", name, "--url", url, "--rows", str(rows),
           "--concurrency", str(slots)]
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
    proc, url = start_server(args.latency, slots, rows + slots, folder)
    results: dict[str, list[dict]] = {name: [] for name in clients}
    try:
        for round_ in range(args.rounds):
            names = list(clients)
            names = names[round_ % len(names):] + names[: round_ % len(names)]  # rotate the order each round
            for name in names:
                found = run_client(name, clients[name], url, rows, slots)
                if found:
                    found["round"] = round_
                    results[name].append(found)
    finally:
        proc.terminate()
        proc.wait()
    return results


def table_row(slots: int, latency: float, results: dict[str, list[dict]]) -> str:
    ideal = slots / latency
    rate = {name: [r["rows_per_s"] for r in runs] for name, runs in results.items()}
    cpu = {name: [r["cpu_ms_per_row"] for r in runs] for name, runs in results.items()}
    bare = {r["round"]: r["rows_per_s"] for r in results["bare"]}
    paired = [r["rows_per_s"] / bare[r["round"]] for r in results["ours"] if r["round"] in bare]
    cells = [str(slots), f"{ideal:.0f}", spread(rate["bare"]), spread(rate["ours"]), spread(paired, "{:.3f}"),
             spread(cpu["ours"], "{:.2f}"), spread(cpu["bare"], "{:.2f}")]
    if "curator" in results:
        cells += [spread(rate["curator"]), spread(cpu["curator"], "{:.2f}")]
    auto = results.get("auto") or []
    cells += [spread([r["rows_per_s"] / ideal for r in auto], "{:.2f}"), spread([r["settled"] for r in auto], "{:.0f}")]
    return "| " + " | ".join(cells) + " |"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--latency", type=float, default=0.2, help="server seconds per request (default 0.2)")
    p.add_argument("--slots", default="1,4,16,64", help="comma list of parallel slots (default 1,4,16,64)")
    p.add_argument("--rows-per-slot", type=int, default=20, help="measured rows = slots x this (default 20)")
    p.add_argument("--rounds", type=int, default=3, help="runs of each client per S, interleaved (default 3)")
    p.add_argument("--curator-python", default=sys.executable, help="an interpreter where bespokelabs imports")
    p.add_argument("--no-auto", action="store_true", help="skip the --concurrency auto runs")
    # one client's run (the orchestrator starts these)
    p.add_argument("--client", choices=("ours", "bare", "curator", "auto"), help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    p.add_argument("--concurrency", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.client:
        with tempfile.TemporaryDirectory() as tmp:
            if args.client in ("ours", "auto"):
                found = client_ours(args.url, args.rows, args.concurrency, Path(tmp), args.client == "auto")
            elif args.client == "bare":
                found = client_bare(args.url, args.rows, args.concurrency)
            else:
                found = client_curator(args.url, args.rows, args.concurrency, Path(tmp))
        print(json.dumps(found))
        return

    clients = {"ours": sys.executable, "bare": sys.executable}
    if curator_available(args.curator_python):
        clients["curator"] = args.curator_python
    else:
        print(f"Curator not found in {args.curator_python}: its columns are left out", file=sys.stderr)
    if not args.no_auto:
        clients["auto"] = sys.executable
    print(f"L = {args.latency:g} s per request; N = {args.rows_per_slot} x S rows after a warm-up of S; "
          f"{args.rounds} rounds, clients interleaved; load average {os.getloadavg()[0]:.1f} at the start")
    header = ["S", "ideal S/L", "bare rows/s", "ours rows/s", "ours / bare", "ours CPU ms/row", "bare CPU ms/row"]
    if "curator" in clients:
        header += ["Curator rows/s", "Curator CPU ms/row"]
    header += ["auto: share of ideal", "auto: settled at"]
    print("| " + " | ".join(header) + " |\n|" + "---:|" * len(header), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for slots in (int(s) for s in args.slots.split(",")):
            results = measure_slots(args, slots, clients, Path(tmp))
            print(table_row(slots, args.latency, results), flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end", flush=True)


if __name__ == "__main__":
    main()
