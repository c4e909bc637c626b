"""crap.py view: the page it writes, opened in a real headless Chromium (tests/browser.py) from a file, as a user
opens it: filters, search, picking a row and unfolding its reasoning work; rows are text, never markup; nothing is
fetched; 10,000 rows keep only the rows in sight in the page; a screenshot shows a page, not a blank."""

from __future__ import annotations

import io
import json
import shutil
import time

import pytest
from PIL import Image

from tests.browser import Chromium
from tests.helpers import FIXTURES, one_line_error, read_rows, run_script
from tests.test_crap_mix import trace_row, write_rows

TRACES = FIXTURES / "traces"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with Chromium(tmp_path_factory.mktemp("chromium-profile")) as chromium:
        yield chromium


def view(*args):
    result = run_script("crap.py", "view", *args)
    assert result.returncode == 0, result.stderr
    return result


def wait_until(browser, condition: str, timeout: float = 20):
    """Poll a JavaScript condition (the search waits for typing to pause before it filters)."""
    deadline = time.monotonic() + timeout
    while not browser.js(condition):
        assert time.monotonic() < deadline, f"never true: {condition}"
        time.sleep(0.05)


def choose(browser, name: str, value: str) -> None:
    """Pick an option of a filter, as the select does when a user picks one (it fires `change`)."""
    browser.js(f"(() => {{ const s = document.getElementById('f-{name}'); s.value = {json.dumps(value)};"
               " s.dispatchEvent(new Event('change')); })()")


def listed(browser) -> list[dict]:
    return browser.js("[...document.querySelectorAll('#spacer .row')].sort((a, b) => a.offsetTop - b.offsetTop)"
                      ".map(r => ({id: r.querySelector('.id').textContent, category: r.querySelector('.cat').textContent,"
                      " verdict: r.querySelector('.badge').textContent}))")


def fixture_rows() -> list[dict]:
    """What the page should list for tests/fixtures/traces: each file's rows, then its rejects."""
    rows = []
    for name in ("databricks", "gsm8k", "sciq"):
        rows += read_rows(TRACES / f"{name}.jsonl") + read_rows(TRACES / f"{name}.rejects.jsonl")
    return rows


def test_filters_search_and_unfolding_work_in_a_real_browser(browser, tmp_path):
    out = tmp_path / "view.html"
    result = view(TRACES, "--out", out)
    rows = fixture_rows()
    assert f"wrote {out} ({len(rows)} rows from 3 file(s))" in result.stdout
    browser.open(out)
    wait_until(browser, "window.viewReady !== undefined")
    assert browser.js("document.getElementById('count').textContent") == f"{len(rows)} of {len(rows)} rows"
    shown = [r["id"] for r in listed(browser)]
    assert len(shown) >= 10 and shown == [r["id"] for r in rows][:len(shown)]  # the first rows, in the files' order
    assert browser.requests() == [out.resolve().as_uri()]  # self-contained: nothing else was fetched

    choose(browser, "category", "math")
    math = [r["id"] for r in rows if r.get("category") == "math"]
    assert [r["id"] for r in listed(browser)] == math and len(math) == 11
    choose(browser, "reason", "verify_failed")
    assert listed(browser) == [{"id": r["id"], "category": "math", "verdict": "rejected: verify_failed"} for r in rows
                               if r.get("reason", "").startswith("verify_failed")]
    choose(browser, "reason", "")
    choose(browser, "verdict", "pass")  # verified by its check, and kept
    assert {r["verdict"] for r in listed(browser)} == {"verified"}
    assert len(listed(browser)) == sum(r.get("category") == "math" and r["verified"] is True and "reason" not in r
                                       for r in rows)
    choose(browser, "verdict", "reject")
    assert len(listed(browser)) == sum(r.get("category") == "math" and "reason" in r for r in rows) == 3
    choose(browser, "verdict", "")
    choose(browser, "category", "")

    browser.click_on("#search")
    browser.type("half as many")  # words anywhere in the row, in any case
    expected = [r["id"] for r in rows if "half as many" in json.dumps(r).lower()]
    wait_until(browser, f"document.getElementById('count').textContent.startsWith('{len(expected)} of')")
    assert [r["id"] for r in listed(browser)] == expected and len(expected) == 2

    browser.click_on("#spacer .row")  # pick the first match: its fields side by side, the reasoning folded
    row = next(r for r in rows if r["id"] == expected[0])
    shown = browser.js("({prompt: document.getElementById('prompt').textContent, answer: "
                       "document.getElementById('answer').textContent, reference: document.getElementById("
                       "'reference').textContent, verdict: document.getElementById('verdict').textContent, "
                       "open: document.getElementById('reasoning-fold').open, reasoningShown: "
                       "document.getElementById('reasoning').checkVisibility()})")
    assert shown == {"prompt": row["prompt"], "answer": row["answer"], "reference": row["reference"],
                     "verdict": "verified", "open": False, "reasoningShown": False}
    assert browser.js("document.querySelector('#spacer .row').classList.contains('picked')")
    browser.click_on("#reasoning-fold summary")
    assert browser.js("[document.getElementById('reasoning-fold').open, "
                      "document.getElementById('reasoning').checkVisibility(), "
                      "document.getElementById('reasoning').textContent]") == [True, True, row["reasoning"]]
    columns = browser.js("[...document.querySelectorAll('.columns section')].map(s => Math.round(s.getBoundingClientRect().top))")
    assert len(columns) == 4 and len(set(columns)) == 1  # prompt, reasoning, answer, reference: side by side

    shot = Image.open(io.BytesIO(browser.screenshot())).convert("RGB")
    assert shot.size == (1400, 900)
    background = shot.getpixel((shot.width - 5, shot.height - 5))
    inked = sum(n for n, colour in shot.getcolors(shot.width * shot.height) if colour != background)
    assert inked > 0.05 * shot.width * shot.height  # text, badges and frames, not a blank page
    assert len(shot.getcolors(shot.width * shot.height)) > 100


def test_row_text_is_shown_as_text_never_run_as_markup(browser, tmp_path):
    hostile = '</script><script>window.pwned = 1</script><img src="x.png" onerror="window.pwned = 2"><!--'
    traces = write_rows(tmp_path / "t.jsonl", [trace_row(0, "math", hostile, reasoning=hostile, answer="<b>4</b>")])
    view(traces, "--out", tmp_path / "view.html")
    browser.open(tmp_path / "view.html")
    wait_until(browser, "window.viewReady !== undefined")
    browser.click_on("#spacer .row")
    assert browser.js("[typeof window.pwned, document.getElementById('prompt').textContent, "
                      "document.getElementById('answer').textContent, document.querySelectorAll('img').length]") == \
        ["undefined", hostile, "<b>4</b>", 0]
    assert browser.requests() == [(tmp_path / "view.html").resolve().as_uri()]


def test_ten_thousand_rows_keep_only_the_rows_in_sight_in_the_page(browser, tmp_path):
    rows = [trace_row(i, ("math", "science", "code")[i % 3], f"Question number {i}: what is {i} plus {i}?",
                      reasoning=f"{i} + {i} = {2 * i}. " * 40, answer=str(2 * i), verified=i % 7 != 0)
            for i in range(10_000)]
    view(write_rows(tmp_path / "big.jsonl", rows), "--out", tmp_path / "view.html")
    browser.open(tmp_path / "view.html")
    wait_until(browser, "window.viewReady !== undefined")
    assert browser.js("document.getElementById('count').textContent") == "10000 of 10000 rows"
    assert browser.js("document.querySelectorAll('#spacer .row').length") < 80  # not 10,000 elements
    browser.js("document.getElementById('list').scrollTop = 1e9")  # scroll to the end: the last rows appear
    wait_until(browser, "[...document.querySelectorAll('#spacer .row .id')].some(e => e.textContent === 't/train/9999')")
    choose(browser, "verdict", "fail")
    assert browser.js("document.getElementById('count').textContent") == f"{sum(i % 7 == 0 for i in range(10_000))} of 10000 rows"
    browser.click_on("#search")
    browser.type("number 7777:")
    wait_until(browser, "document.getElementById('count').textContent.startsWith('1 of')")  # 7777 = 7 x 1111
    assert [r["id"] for r in listed(browser)] == ["t/train/7777"]


def test_data_glob_bad_paths_and_a_file_that_is_not_a_view(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("gsm8k.jsonl", "gsm8k.rejects.jsonl"):
        shutil.copy(TRACES / name, data / name)
    (data / "stats.md").write_text("# report")
    view(*sorted(data.iterdir()), "--out", data / "view.html")
    result = view(*sorted(data.iterdir()), "--out", data / "view.html")  # its own page in data/* is skipped, replaced
    assert f"skipped {data / 'view.html'}: not a trace file" in result.stderr
    rows = len(read_rows(data / "gsm8k.jsonl") + read_rows(data / "gsm8k.rejects.jsonl"))
    assert f"({rows} rows from 1 file(s))" in result.stdout

    assert "trace file not found" in one_line_error(run_script("crap.py", "view", tmp_path / "nope.jsonl",
                                                               "--out", tmp_path / "v.html"))
    mine = tmp_path / "notes.html"
    mine.write_text("<p>my notes</p>")
    error = one_line_error(run_script("crap.py", "view", data, "--out", mine))
    assert f"{mine} exists and is not a page crap.py view wrote" in error
    assert mine.read_text() == "<p>my notes</p>"
