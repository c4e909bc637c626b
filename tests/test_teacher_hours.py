"""bench/teacher_hours.py at a tiny size: the figures it prints hold together (no timing is asserted: the
simulated card's clock does not depend on the machine)."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_script


def test_the_bench_figures_are_consistent(tmp_path):
    out = tmp_path / "hours.json"
    result = run_script("bench/teacher_hours.py", "--rows", "20", "--loops", "10", "--budget", "2000",
                        "--scale", "1000", "--json", out)
    assert result.returncode == 0, result.stderr
    runs = {r["way"]: r for r in json.loads(out.read_text())}
    a, b, c = runs["a"], runs["b"], runs["c"]
    loops = set(c["loops"])
    assert len(loops) == 2
    # The same rows are usable every way: no loop, nothing over the budget (and no false alarm in ours).
    lengths = c["lengths"]   # each row's training length in words, as crap.py mix counts it: prompt and trace
    fits = {i for i, length in enumerate(lengths) if i not in loops and length <= 2000}
    assert set(a["kept"]) == set(b["kept"]) == set(c["kept"]) == fits
    # Without a stop, a loop runs to the 32,768-token context; ours cancels it a few repeats in. (What the card
    # decodes after the cancel depends on how far the client lags behind it, which the machine's load decides:
    # bounded here by what the sockets between them hold.)
    assert all(b["spent"][str(i)] == 32768 for i in loops)
    assert all(c["spent"][str(i)] < c["sizes"][i] // 2 + 4000 for i in loops)
    # A trace whose row is over the budget is cut once it passes what the prompt leaves (room), within the same
    # bound as a loop; one within it is decoded in full, as in (b). (A row over by less than the card ran ahead
    # ends first: the exact check after the reply rejects it, so it is not in c["kept"] above.)
    assert any(length - 2000 > 4000 for length in lengths)   # a row where the bound says it was cut
    for i, (size, length) in enumerate(zip(c["sizes"], lengths)):
        room = size - (length - 2000)   # the trace's tokens the budget has room for
        if i not in loops and length <= 2000:
            assert c["spent"][str(i)] == size, (i, size)
        elif i not in loops:
            assert room < c["spent"][str(i)] <= min(size, room + 4000), (i, size, length)
    assert a["tokens"] == b["tokens"] > c["tokens"] and c["wasted"] < b["wasted"]
    # A real card's lag after a cancel (the client's count + 1) changes only ours, which alone cancels, and only down
    assert a["real_lag_hours"] == pytest.approx(a["hours"]) and b["real_lag_hours"] == pytest.approx(b["hours"])
    assert c["real_lag_hours"] <= c["hours"] and c["real_lag_wasted"] <= c["wasted"]
    assert a["hours"] > b["hours"] > c["hours"]   # one slot is slower than four; ours decodes less
    assert "| (c) ours |" in result.stdout
