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

    # The oracle, the ceiling of any detector: each loop stopped at the token it starts (its honest half and one),
    # each row over the budget at the first token past it, the rest decoded in full; the same rows kept as ours.
    o = runs["o"]
    assert set(o["kept"]) == fits
    for i, (size, length) in enumerate(zip(c["sizes"], lengths)):
        expected = size // 2 + 1 if i in loops else size - (length - 2000) + 1 if length > 2000 else size
        assert o["spent"][str(i)] == expected <= c["spent"][str(i)], (i, size, length)
    assert o["tokens"] == sum(o["spent"].values()) < c["tokens"]
    assert o["hours"] == pytest.approx(c["hours"] * o["tokens"] / c["tokens"])   # the same card, busy the same
    assert o["wasted"] < c["wasted"]
    assert "| (c) oracle: each stop at its first token |" in result.stdout


def test_the_workload_scales_to_a_mean_trace_length(tmp_path):
    # The issue's arithmetic ("2% of replies loop and a good trace is 1,500 tokens: those 2% burn about 30% of all
    # teacher tokens") is for a mean of 1,500: --mean keeps the default shape (p90 / median = 4,000 / 1,500).
    out = tmp_path / "hours.json"
    result = run_script("bench/teacher_hours.py", "--rows", "20", "--loops", "0", "--budget", "100000",
                        "--scale", "1000", "--mean", "1500", "--json", out)
    assert result.returncode == 0, result.stderr
    assert "log-normal, median 1,119, p90 2,984, mean 1,500 tokens" in result.stdout
    sizes = json.loads(out.read_text())[0]["sizes"]
    assert 0.95 * 1500 < sum(sizes) / len(sizes) < 1500   # 20 stratified quantiles: a little of the tail left out
    middle = sorted(sizes)[9:11]
    assert sum(middle) / 2 == pytest.approx(1119, rel=0.01)   # the median, between the two middle quantiles


def test_a_bad_length_distribution_is_one_line(tmp_path):
    result = run_script("bench/teacher_hours.py", "--median", "5000", "--p90", "4000")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "trace lengths need 0 < --median < --p90 and --mean > 0, got --median 5000 --p90 4000" in result.stderr
