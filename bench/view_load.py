"""How fast the page of `crap.py view` opens and filters, in a real headless Chromium (tests/browser.py).

Writes N trace rows shaped like real ones (a 300-character prompt, 4,000 characters of reasoning, a 600-character
answer, a reference; three recipes, a tenth of the rows rejected), runs `crap.py view` on them, then opens the page
R times in a fresh tab and reads, in the page: the time from the start of navigation until the list is usable
(`window.viewReady`: HTML parsed, rows' JSON parsed, filters filled, first rows drawn), a filter change, and the
first and a second text search (the first builds the search text of every row).

    .venv/bin/python bench/view_load.py                  # 10,000 rows, 5 loads
    .venv/bin/python bench/view_load.py --rows 50000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import Chromium  # noqa: E402

WORDS = ("the of and to in is that for it as with was on be by this are from or an at which one have not but "
         "all were when we there can more if will each about how up out them then she many some so these would "
         "other into has two time could first water been call who its now find long down day did get come made").split()


def text(rng: random.Random, chars: int) -> str:
    out, n = [], 0
    while n < chars:
        word = rng.choice(WORDS)
        out.append(word)
        n += len(word) + 1
    return " ".join(out)


def rows(n: int) -> list[dict]:
    rng = random.Random(0)
    made = []
    for i in range(n):
        recipe, category = (("gsm8k", "math"), ("sciq", "science"), ("dolly", "open_qa"))[i % 3]
        made.append({"id": f"{recipe}/train/{i}", "dataset": recipe, "category": category,
                     "prompt": text(rng, 300), "reasoning": text(rng, 4000), "answer": text(rng, 600),
                     "reference": text(rng, 40), "verified": (True, None, False)[i % 3] if i % 10 else False,
                     "finish": "stop", "teacher": {"backend": "openai", "model": "qwen3-14b"},
                     **({"reason": "verify_failed"} if i % 10 == 0 else {})})
    return made


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="view-bench-"))
    made = rows(args.rows)
    with (work / "bench.jsonl").open("w") as kept, (work / "bench.rejects.jsonl").open("w") as rejects:
        for row in made:
            (rejects if "reason" in row else kept).write(json.dumps(row) + "\n")
    started = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "crap.py"), "view", str(work / "bench.jsonl"), "--out",
                    str(work / "view.html")], check=True, cwd=ROOT, capture_output=True)
    written = time.perf_counter() - started
    page = work / "view.html"
    loads, filters, searches, again = [], [], [], []
    with Chromium(work / "profile") as browser:
        for _ in range(args.rounds):
            browser.open(page)
            while browser.js("window.viewReady") is None:
                time.sleep(0.01)
            loads.append(browser.js("window.viewReady"))
            filters.append(browser.js("(() => { const s = document.getElementById('f-category'); s.value = 'math';"
                                      " const t = performance.now(); applyFilters(); return performance.now() - t; })()"))
            for word, into in (("water", searches), ("water day", again)):
                into.append(browser.js(f"(() => {{ document.getElementById('search').value = '{word}';"
                                       " const t = performance.now(); applyFilters(); return performance.now() - t; })()"))
            rendered = browser.js("document.querySelectorAll('#spacer .row').length")
    print(f"{args.rows} rows, page {page.stat().st_size / 1e6:.1f} MB, written by crap.py view in {written:.1f} s; "
          f"{rendered} row elements in the page; medians of {args.rounds} loads (min-max), ms:")
    print("| open until usable | filter by category | first search | next search |")
    print("|---:|---:|---:|---:|")
    print(" | ".join(f"{statistics.median(v):.0f} ({min(v):.0f}-{max(v):.0f})"
                     for v in (loads, filters, searches, again)).join(("| ", " |")))


if __name__ == "__main__":
    main()
