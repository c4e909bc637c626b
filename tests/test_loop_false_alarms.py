"""The loop detector's false alarms (issue 18): none on thousands of real texts that do not loop.

tests/fixtures/real_texts/texts.ndjson.gz holds GSM8K's human solutions of 60 words or more and all 974 MBPP
solutions (sources and licenses in its README); beside them, the fixtures' human references and Python's own
documentation (tests/test_stream_stop.py: real_texts). Each text is streamed through the real Watch in pieces
of 1 to 7 characters, as a server's tokens come, so a rule that only fires across piece boundaries is tried too.
"""

from __future__ import annotations

import gzip
import json
from itertools import cycle

from tests.helpers import FIXTURES
from tests.test_stream_stop import real_texts
from tunixhack.teachers.watch import Watch

CORPUS = FIXTURES / "real_texts" / "texts.ndjson.gz"


def corpus() -> dict[str, str]:
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return {f"{row['source']}:{row['id']}": row["text"] for row in rows}


def alarm(text: str) -> str | None:
    """What the watch says of this text streamed in token-sized pieces (None: nothing)."""
    watch, start = Watch(), 0
    for size in cycle((1, 4, 2, 7, 3, 5, 6)):
        if start >= len(text):
            return watch.loops["reasoning"].finish()
        if found := watch.feed("reasoning", text[start : start + size]):
            return found
        start += size


def test_the_corpus_is_what_its_readme_says():
    texts = corpus()
    gsm8k = [t for name, t in texts.items() if name.startswith("gsm8k/")]
    mbpp = [name for name in texts if name.startswith("mbpp:")]
    assert len(gsm8k) >= 3000 and min(len(t.split()) for t in gsm8k) >= 60
    assert len(mbpp) == 974


def test_no_real_text_alarms():
    texts = {**corpus(), **real_texts()}
    long = [t for t in texts.values() if len(t.split()) >= 60]
    assert len(long) >= 4000, len(long)
    alarms = {name: found for name, text in texts.items() if (found := alarm(text))}
    assert alarms == {}, f"{len(alarms)} real texts alarm, e.g. {dict(list(alarms.items())[:5])}"


def test_a_real_text_that_starts_to_loop_is_caught():
    # The same texts stay catchable: a real solution with its last sentence repeated, as a loop does.
    text = next(iter(corpus().values()))
    last = text.strip().splitlines()[-2]
    assert alarm(text + ("\n" + last) * 12).startswith("repetition_loop")


def test_a_loop_whose_passage_changes_a_little_is_still_caught():
    # A counter in the passage breaks every stretch of repeated 8-word runs; the share rule catches it.
    text = " ".join(f"Step {i}: wait, let me recount the eggs she sells at the market again." for i in range(60))
    assert "of 8-word runs are repeats" in alarm(text)
