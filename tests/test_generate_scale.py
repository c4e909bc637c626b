"""gsm8k/generate.py at scale, against a real local OpenAI-compatible server: --concurrency auto (hidden slots,
what LM Studio and vLLM report, --max-concurrency), --shard K/N, rows planned lazily (dry-run counts, reruns
that contact nobody), and what a new user runs into (one error line and no summary; plain progress in a pipe;
crap.py over a glob of a run's files)."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

import crap
from tests.fakes.openai_server import OpenAIFake
from tests.helpers import read_rows, run_script, sibling
from tunixhack.teachers.openai_compat import OpenAITeacher
from tunixhack.teachers.probe import VLLM_START


def source(tmp_path, n: int):
    path = tmp_path / f"rows{n}.jsonl"
    path.write_text("".join(json.dumps({"question": f"Item {i}: what is {i} plus {i}?", "answer": f"#### {2 * i}"}) + "\n"
                            for i in range(n)))
    return path


def script(n: int, latency: float = 0.0) -> dict:
    # Every third reply is wrong, so runs write rejects as well as rows.
    return {"latency": latency, "rules": [{"match": f"Item {i}:", "reasoning": f"{i} + {i}",
                                          "content": f"\\boxed{{{2 * i if i % 3 else -1}}}"} for i in range(n)]}


def generate(fake, src, out, *extra):
    return run_script("gsm8k/generate.py", "--source", src, "--split", "test", "--teacher", fake.url, "--out", out,
                      "--backoff", "0.01", *extra)


def summary_of(out) -> dict:
    return json.loads(out.with_name(out.name.removesuffix(".jsonl") + ".summary.json").read_text())


def endpoint(summary: dict) -> dict:
    (stats,) = summary["endpoints"].values()
    return stats


def ids(out) -> list[str]:
    return [r["id"] for r in read_rows(out) + read_rows(sibling(out, "rejects"))]


# --- concurrency ----------------------------------------------------------------------------------------
def test_auto_finds_slots_it_was_not_told_about(tmp_path):
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(script(480, latency=0.1), slots=16) as fake:
        result = generate(fake, source(tmp_path, 480), out)  # --concurrency auto is the default
        assert result.returncode == 0, result.stderr
        peak_in_server = fake.server.peak
    stats = endpoint(summary_of(out))
    assert stats["concurrency_mode"] == "auto"
    # It settles at 16 on a quiet machine. On a loaded one the queueing signal it backs off on is noisier and it
    # has been seen at 128 once; still far below the ceiling of 256 it would reach if it never backed off.
    assert 8 < stats["concurrency"] <= 128 and peak_in_server == 16
    assert "concurrency auto, settled at" in result.stderr
    assert len(ids(out)) == 480


def test_auto_never_passes_max_concurrency(tmp_path):
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(script(200, latency=0.05), slots=64) as fake:
        result = generate(fake, source(tmp_path, 200), out, "--max-concurrency", "6")
        assert result.returncode == 0, result.stderr
        assert fake.server.peak <= 6
    stats = endpoint(summary_of(out))
    assert stats["peak_in_flight"] <= 6 and stats["concurrency"] <= 6


def test_fixed_concurrency_keeps_exactly_n_in_flight(tmp_path):
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(script(60, latency=0.05), slots=64) as fake:
        result = generate(fake, source(tmp_path, 60), out, "--concurrency", "5")
        assert result.returncode == 0, result.stderr
        assert fake.server.peak == 5
    stats = endpoint(summary_of(out))
    assert (stats["concurrency_mode"], stats["concurrency"], stats["peak_in_flight"]) == ("fixed", 5, 5)


@pytest.mark.parametrize("reports, expected", [("lmstudio", 12), ("llama.cpp", 12), ("vllm", VLLM_START),
                                               (None, None)])
def test_the_server_report_is_read_where_real_servers_give_it(reports, expected):
    async def reported(fake):
        teacher = OpenAITeacher(fake.url, "qwen3-14b")
        try:
            return await teacher.reported_parallel()
        finally:
            await teacher.close()

    with OpenAIFake(script(1), slots=12, reports=reports) as fake:
        assert asyncio.run(reported(fake)) == expected


def test_auto_starts_from_what_vllm_reports(tmp_path):
    # vLLM says nothing of its slots but that it is vLLM: all 40 rows go at once, where a silent server
    # would see a handful first.
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(script(40, latency=0.3), slots=64, reports="vllm") as fake:
        assert generate(fake, source(tmp_path, 40), out).returncode == 0
        assert fake.server.peak == 40
    with OpenAIFake(script(40, latency=0.3), slots=64) as fake:
        assert generate(fake, source(tmp_path, 40), tmp_path / "silent.jsonl").returncode == 0
        assert fake.server.peak < 40


def test_bad_concurrency_flags_are_one_line(tmp_path):
    src = source(tmp_path, 3)
    for flags, says in ((["--concurrency", "lots"], "must be auto or a whole number > 0"),
                        (["--concurrency", "8", "--max-concurrency", "4"], "--concurrency 8 is above --max-concurrency 4"),
                        (["--shard", "3/2"], "must be K/N with 1 <= K <= N")):
        result = run_script("gsm8k/generate.py", "--source", src, "--split", "test", "--dry-run", *flags)
        assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr


# --- shards ---------------------------------------------------------------------------------------------
def test_two_shards_are_disjoint_and_complete_and_read_together(tmp_path):
    src = source(tmp_path, 60)
    machine = {k: tmp_path / f"machine{k}" for k in (1, 2)}
    with OpenAIFake(script(60)) as fake:
        for k, folder in machine.items():
            result = generate(fake, src, folder / "gsm8k.jsonl", "--shard", f"{k}/2")
            assert result.returncode == 0, result.stderr
    first, second = (set(ids(machine[k] / f"gsm8k.shard{k}of2.jsonl")) for k in (1, 2))
    assert first and second and not first & second
    assert first | second == {f"gsm8k/test/{i}" for i in range(60)}
    # The same shard again: nothing to send, and the split is the same (by row id, not by luck).
    dry = run_script("gsm8k/generate.py", "--source", src, "--split", "test", "--shard", "1/2", "--dry-run",
                     "--out", machine[1] / "gsm8k.jsonl")
    assert f"{len(first)} rows selected (shard 1/2): 0 to send, {len(first)} already done" in dry.stdout

    # Both machines' files copied into one folder, then read as one trace file, side files and all.
    data = tmp_path / "data"
    data.mkdir()
    for folder in machine.values():
        for path in folder.iterdir():
            shutil.copy(path, data / path.name)
    assert len(list(data.iterdir())) == 6  # two shards x (rows, rejects, summary): nothing clobbered
    report = tmp_path / "stats.md"
    assert crap.main(["stats", *map(str, sorted(data.iterdir())), "--out", str(report)]) == 0
    text = report.read_text()
    assert text.count("## ") == 1 and f"## {data / 'gsm8k.jsonl'}" in text
    assert "| (all) | 40 |" in text and "| math | verify_failed | 20 |" in text


# --- rows planned lazily ------------------------------------------------------------------------------------
def test_dry_run_counts_what_a_run_would_send(tmp_path):
    src = source(tmp_path, 2000)
    out = tmp_path / "gsm8k.jsonl"
    dry = run_script("gsm8k/generate.py", "--source", src, "--split", "test", "--out", out, "--dry-run")
    assert dry.returncode == 0 and "2000 rows selected: 2000 to send, 0 already done" in dry.stdout
    assert '"Item 0: what is 0 plus 0?' in dry.stdout
    shares = []
    for k in (1, 2, 3):
        dry = run_script("gsm8k/generate.py", "--source", src, "--split", "test", "--out", out, "--dry-run",
                         "--shard", f"{k}/3", "--shuffle", "--seed", "4", "--limit", "300")
        shares.append(int(dry.stdout.split(" rows selected")[0].split()[-1]))
    assert sum(shares) == 300 and min(shares) > 50
    assert not out.exists()


def test_shuffle_seed_limit_pick_the_same_rows_as_before_plans(tmp_path):
    # random.Random(seed).shuffle over the kept rows, then the first N: the selection earlier versions made.
    import random

    src = source(tmp_path, 50)
    with OpenAIFake(script(50)) as fake:
        out = tmp_path / "gsm8k.jsonl"
        assert generate(fake, src, out, "--shuffle", "--seed", "7", "--limit", "10").returncode == 0
    order = list(range(50))
    random.Random(7).shuffle(order)
    assert sorted(ids(out)) == sorted(f"gsm8k/test/{i}" for i in order[:10])


def test_rerun_over_finished_rows_contacts_no_teacher(tmp_path):
    src = source(tmp_path, 30)
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(script(30)) as fake:
        assert generate(fake, src, out).returncode == 0
    rerun = run_script("gsm8k/generate.py", "--source", src, "--split", "test", "--out", out,
                       "--teacher", "http://127.0.0.1:9/v1")  # nothing listens there: it must not be needed
    assert rerun.returncode == 0, rerun.stderr
    assert "30 of the 30 rows were done before" in rerun.stderr
    assert summary_of(out)["done_before"] == 30 and len(ids(out)) == 30


# --- what a new user runs into ------------------------------------------------------------------------------
def test_a_run_that_cannot_start_prints_one_line_and_no_summary(tmp_path):
    out = tmp_path / "gsm8k.jsonl"
    result = run_script("gsm8k/generate.py", "--source", source(tmp_path, 3), "--split", "test", "--out", out,
                        "--teacher", "http://127.0.0.1:9/v1")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the teacher at http://127.0.0.1:9/v1")
    assert list(tmp_path.glob("gsm8k*")) == []  # no summary, no empty files


def test_progress_in_a_pipe_is_plain_lines(tmp_path):
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(script(20)) as fake:
        result = generate(fake, source(tmp_path, 20), out)  # stderr is a pipe here, as in a log file
    assert result.returncode == 0
    assert "\r" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("progress:")]
    assert line.startswith("progress: 20/20 rows (100.0%) | ok 13 rej 7 err 0 |") and "concurrency" in line


def test_crap_reads_a_glob_of_a_runs_files(tmp_path):
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(script(9)) as fake:
        assert generate(fake, source(tmp_path, 9), out).returncode == 0
    files = sorted(str(p) for p in tmp_path.glob("gsm8k*"))  # rows, rejects, summary: what data/gsm8k* gives
    assert len(files) == 3
    report = tmp_path / "stats.md"
    assert crap.main(["stats", *files, "--out", str(report)]) == 0
    assert "| (all) | 6 |" in report.read_text()
    assert crap.main(["mix", *files, "--out", str(tmp_path / "mix"), "--no-decontam", "--eval-share", "0"]) == 0
    staging = tmp_path / "hub"
    assert crap.main(["push", str(sibling(out, "rejects")), "--repo", "me/g", "--dry-run", "--staging", str(staging)]) == 0
    assert "| train | 6 |" in (staging / "README.md").read_text()


def test_resume_reads_ids_past_a_line_that_is_not_json(tmp_path):
    from tunixhack.generate.store import TraceStore

    out = tmp_path / "gsm8k.jsonl"
    rows = [{"id": f"gsm8k/test/{i}", "fingerprint": "f" * 16, "reasoning": "long " * 1000} for i in range(3)]
    out.write_text(json.dumps(rows[0]) + "\n{not json\n" + "".join(json.dumps(r) + "\n" for r in rows[1:]))
    sibling(out, "errors").write_text(json.dumps({"id": 7, "error": "x"}) + "\n")  # an id that is not text
    existing = TraceStore(out).load()
    assert existing.done == {"gsm8k/test/0", "gsm8k/test/1", "gsm8k/test/2"} and existing.failed == {7}
    assert existing.fingerprints == {"f" * 16: 3}
    # the bad line is set aside with its number, the rows around it stay as they were
    assert [r["id"] for r in map(json.loads, out.read_text().splitlines())] == [r["id"] for r in rows]
    assert read_rows(sibling(out, "corrupt")) == [{"file": "gsm8k.jsonl", "line": 2, "text": "{not json"}]


def test_plain_progress_is_one_line_a_tick_and_a_last_one(monkeypatch):
    import io

    from tunixhack.generate.progress import Progress

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    stream = io.StringIO()  # not a terminal, as a log file is not
    progress = Progress(total=10, done_before=4, describe=lambda: "ok 3 rej 0 err 0", stream=stream, every=0)
    for _ in range(3):
        progress.update(1)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and len(lines) == 4  # one a row here (every=0), and the last one
    assert lines[-1].startswith("progress: 7/10 rows (70.0%) | ok 3 rej 0 err 0 |")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    quiet = io.StringIO()
    Progress(total=10, done_before=0, describe=lambda: "", stream=quiet, every=0).update(1)
    assert quiet.getvalue() == ""
