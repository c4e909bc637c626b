"""Throughput of the generation engine against a local OpenAI-compatible server.

The server (tests/fakes/openai_server.py, in its own process) answers every request after a fixed latency L
and generates at most S replies at once (requests beyond S wait in the server), like a GPU server with S
parallel slots. The ideal is then S/L rows per second. For S in 1, 4, 16, 64 this prints the measured rows/s,
its ratio to ideal, and the client's CPU milliseconds per row (the engine, the openai client, parsing,
math verification and writing; the server's CPU is not counted).

    python bench/throughput.py [--latency 1.0] [--slots 1,4,16,64] [--rows-per-slot 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tunixhack.router import Router  # noqa: E402
from tunixhack.runner import Generation, prepare  # noqa: E402
from tunixhack.store import TraceStore  # noqa: E402
from tunixhack.teachers import make_teacher  # noqa: E402
from tunixhack.teachers.base import Sampling  # noqa: E402


def start_server(script: dict, slots: int, folder: Path) -> tuple[subprocess.Popen, str]:
    path = folder / "script.json"
    path.write_text(json.dumps(script))
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.openai_server", "--script", str(path),
                             "--slots", str(slots)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().split()[-1]
    return proc, url


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(recipe, url: str, slots: int, rows: int, out: Path) -> tuple[float, float]:
    jobs = [prepare(recipe, f"gsm8k/bench/{i}", {"question": f"Item {i}: what is {i} plus {i}?",
                                                 "answer": f"#### {2 * i}"}, "native") for i in range(rows)]
    teacher = make_teacher(url, "qwen3-14b")
    await teacher.check()
    store = TraceStore(out)

    def generation():
        return Generation(recipe, Router([teacher]), store, sampling=Sampling(), style="native", attempts=1,
                          concurrency=slots, verify_workers=4, fingerprint="bench",
                          source={"dataset": "bench", "config": None, "split": "bench"})

    # Warm the connection pool and the code paths, then measure.
    await generation().run(jobs[:slots], total=slots, done_before=0)
    cpu, wall = cpu_seconds(), time.perf_counter()
    tally = await generation().run(jobs[slots:], total=rows - slots, done_before=0)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    store.close()
    await teacher.close()
    assert tally.accepted == rows - slots, tally
    return (rows - slots) / wall, cpu / (rows - slots)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--latency", type=float, default=1.0, help="server seconds per request (default 1.0)")
    p.add_argument("--slots", default="1,4,16,64", help="comma list of parallel slots (default 1,4,16,64)")
    p.add_argument("--rows-per-slot", type=int, default=4, help="measured rows = slots x this + warm-up (default 4)")
    args = p.parse_args()
    recipe = runpy.run_path(str(ROOT / "gsm8k" / "generate.py"))["GSM8K"]()
    script = {"latency": args.latency, "default": {"reasoning": "Add the two numbers: the sum is 2i.",
                                                   "content": "The answer is \\boxed{0}."}}
    script["rules"] = [{"match": f"Item {i}:", "reasoning": f"{i} + {i} = {2 * i}", "content": f"\\boxed{{{2 * i}}}"}
                       for i in range(64 * args.rows_per_slot + 64)]
    print(f"latency L = {args.latency:g} s per request; client CPU per row excludes the server")
    print(f"{'slots S':>8} {'rows':>6} {'rows/s':>8} {'ideal S/L':>10} {'ratio':>6} {'CPU ms/row':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for slots in (int(s) for s in args.slots.split(",")):
            proc, url = start_server(script, slots, Path(tmp))
            try:
                rows = slots * args.rows_per_slot + slots
                rate, cpu = asyncio.run(measure(recipe, url, slots, rows, Path(tmp) / f"out{slots}.jsonl"))
            finally:
                proc.terminate()
                proc.wait()
            ideal = slots / args.latency
            print(f"{slots:>8} {rows - slots:>6} {rate:>8.1f} {ideal:>10.1f} {rate / ideal:>6.3f} {cpu * 1000:>11.2f}")


if __name__ == "__main__":
    main()
