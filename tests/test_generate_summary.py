"""The generation summary (issue 16, items 5 and 6): the progress line and the summary count the same rows at
the same moment, Ctrl-C included; the summary names only files that exist; a rerun keeps the file's totals
with the last run's counts beside them; --concurrency auto is never reported above what ran at once."""

from __future__ import annotations

import json
import re
import signal
import time

from tests.fakes.lmstudio_server import LMStudioFake
from tests.fakes.openai_server import OpenAIFake
from tests.fakes.script import Script
from tests.helpers import read_rows, run_script, sibling, start_script, whole_rows
from tests.test_generate_gsm8k import ARGS, SCRIPT


def summary_of(out) -> dict:
    return json.loads(out.with_name(out.name.removesuffix(".jsonl") + ".summary.json").read_text())


def source(tmp_path, n: int):
    rows = [{"question": f"Item {i}: what is {i} plus {i}?", "answer": f"#### {2 * i}"} for i in range(n)]
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_progress_at_ctrl_c_is_the_summary(tmp_path):
    out = tmp_path / "gsm8k.jsonl"
    # half right; rows from the 60th on never get an answer: Ctrl-C ends a run with requests in flight
    script = {"default": {"content": "\\boxed{0}"}, "latency": 0.05,
              "rules": [{"match": f"Item {i}:", "hang": True} for i in range(60, 300)]
              + [{"match": f"Item {i}:", "content": f"\\boxed{{{2 * i}}}"} for i in range(0, 60, 2)]}
    with OpenAIFake(script) as fake:
        proc = start_script("gsm8k/generate.py", "--source", source(tmp_path, 300), "--split", "test",
                            "--teacher", fake.url, "--out", out, "--concurrency", "8")
        deadline = time.monotonic() + 60
        while len(whole_rows(out)) < 15 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)  # with requests in flight: they are neither done nor counted
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    last = [line for line in stderr.splitlines() if line.startswith("progress:")][-1]
    done, total = map(int, re.search(r"progress: ([\d,]+)/([\d,]+) rows", last).groups())
    rate = float(re.search(r"\| ([\d.]+) rows/s", last).group(1))
    s = summary_of(out)
    finished = s["accepted"] + sum(s["rejected"].values()) + s["errors"]
    assert (done, total) == (s["done_before"] + finished, 300)
    assert finished == len(read_rows(out)) + len(read_rows(sibling(out, "rejects")))
    assert abs(rate - s["rows_per_second"]) <= 0.01  # the same clock (printed to 2 places, kept to 3)
    assert f"ok {s['accepted']} rej {sum(s['rejected'].values())} err {s['errors']}" in last


def test_summary_names_only_files_that_exist(tmp_path):
    out = tmp_path / "gsm8k.jsonl"
    script = {"rules": [r for r in SCRIPT["rules"] if r["match"] in ("Janet", "robe", "flipping", "temperature")]}
    with OpenAIFake({**script, "default": {"reasoning": "x", "content": "\\boxed{70,000}"}}) as fake:
        result = run_script("gsm8k/generate.py", *ARGS, "--teacher", fake.url, "--out", out, "--limit", "3")
    assert result.returncode == 0, result.stderr
    s = summary_of(out)
    assert s["files"] == {"main": str(out)}  # nothing was rejected and no request failed
    assert not sibling(out, "rejects").exists() and not sibling(out, "errors").exists()
    assert "rejects:" not in result.stderr and "errors:" not in result.stderr and f"rows: {out}" in result.stderr


def test_a_rerun_keeps_the_file_totals_beside_the_last_run(tmp_path):
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(SCRIPT) as fake:
        first = run_script("gsm8k/generate.py", *ARGS, "--teacher", fake.url, "--out", out, "--limit", "4")
        assert first.returncode == 0, first.stderr
        again = run_script("gsm8k/generate.py", *ARGS, "--teacher", fake.url, "--out", out)
        assert again.returncode == 0, again.stderr
        totals_after_two = summary_of(out)["file"]
        nothing = run_script("gsm8k/generate.py", *ARGS, "--teacher", fake.url, "--out", out)
    assert nothing.returncode == 0, nothing.stderr
    s = summary_of(out)
    assert (s["accepted"], s["rejected"], s["done_before"]) == (0, {}, 6)  # the last run did nothing
    assert s["file"]["accepted"] == 4 and s["file"]["rejected"] == {"verify_failed": 1, "thinking_not_closed": 1}
    assert s["file"]["spent"] == totals_after_two["spent"] and s["file"]["runs"] == 3
    kept = s["file"]["spent"]["kept"]["kept"]
    assert kept["replies"] == 4 and kept["completion"] > 0 and kept["prompt"] > 0
    assert "in the file after 3 runs: 4 rows kept, 2 rejected" in nothing.stderr


def test_auto_against_reported_slots_settles_at_them_and_never_above_its_peak(tmp_path):
    out = tmp_path / "gsm8k.jsonl"
    with LMStudioFake(Script.from_dict({"latency": 0.05, "default": {"content": "\\boxed{0}"}}), parallel=8) as fake:
        result = run_script("gsm8k/generate.py", "--source", source(tmp_path, 200), "--split", "test",
                            "--teacher", f"lmstudio://{fake.host}", "--out", out)
        peak_in_server = fake.peak_in_flight
    assert result.returncode == 0, result.stderr
    (stats,) = summary_of(out)["endpoints"].values()
    assert stats["concurrency_mode"] == "auto" and peak_in_server <= 8
    assert 6 <= stats["concurrency"] <= 8 and stats["concurrency"] <= stats["peak_in_flight"]
