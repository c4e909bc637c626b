"""gsm8k/generate.py end to end against a real local OpenAI-compatible server: rows, verification,
resume, fingerprints, retries, crash safety and bad input."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.fakes.openai_server import OpenAIFake
from tests.helpers import FIXTURES, one_line_error, read_rows, run_script, sibling, start_script, whole_rows

GSM8K = FIXTURES / "gsm8k" / "test.jsonl"

SCRIPT = {
    "rules": [
        {"match": "Janet", "reasoning": "16-3-4=9 eggs, 9*2=18 dollars.", "content": "She makes \\boxed{18} dollars."},
        {"match": "robe", "reasoning": "2 + 1 = 3", "content": "It takes 3 bolts. The answer is 3."},
        {"match": "flipping", "reasoning": "200,000 - 130,000", "content": "Profit: \\boxed{70,000}"},
        {"match": "sprints", "reasoning": "3*3*60 = 520?", "content": "\\boxed{520}"},
        {"match": "Toulouse", "reasoning": "Let me count the sheep again and again", "unclosed": True},
        {"match": "temperature", "reasoning": "-12 - 5", "content": "\\boxed{-17}"},
    ]
}
ARGS = ["--source", GSM8K, "--split", "test", "--model", "qwen3-14b", "--concurrency", "8", "--backoff", "0.01"]


def generate(fake, out, *extra, **kw):
    return run_script("gsm8k/generate.py", *ARGS, "--teacher", fake.url, "--out", out, *extra, **kw)


@pytest.mark.parametrize("reasoning_field", ["reasoning_content", "reasoning", "think_tags", "lone_close"])
def test_rows_schema_and_verification(tmp_path, reasoning_field):
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(SCRIPT, reasoning_field=reasoning_field) as fake:
        result = generate(fake, out)
    assert result.returncode == 0, result.stderr
    rows = {r["id"]: r for r in read_rows(out)}
    rejects = {r["id"]: r for r in read_rows(sibling(out, "rejects"))}
    assert set(rows) == {"gsm8k/test/0", "gsm8k/test/1", "gsm8k/test/2", "gsm8k/test/5"}
    assert {k: r["reason"] for k, r in rejects.items()} == {"gsm8k/test/3": "verify_failed",
                                                          "gsm8k/test/4": "thinking_not_closed"}
    janet = rows["gsm8k/test/0"]
    assert janet["reasoning"] == "16-3-4=9 eggs, 9*2=18 dollars."
    assert janet["answer"] == "She makes \\boxed{18} dollars."
    assert janet["reference"] == "18" and janet["verified"] is True
    assert rows["gsm8k/test/2"]["reference"] == "70000"  # thousands separator stripped
    assert rows["gsm8k/test/5"]["reference"] == "-17"
    assert janet["category"] == "math" and janet["split"] == "test" and janet["finish"] == "stop"
    assert janet["thinking_closed"] is True and rejects["gsm8k/test/4"]["thinking_closed"] is False
    assert janet["teacher"]["model"] == "qwen3-14b" and janet["teacher"]["temperature"] == 0.6
    assert janet["usage"]["completion_tokens"] > 0 and janet["attempt"] == 1 and len(janet["fingerprint"]) == 16
    # The gold answer is never sent to the teacher.
    sent = " ".join(m["content"] for m in janet["messages"])
    assert "#### 18" not in sent and "\\boxed{}" in sent and janet["prompt"] in sent
    summary = json.loads(out.with_name("gsm8k.summary.json").read_text())
    assert summary["accepted"] == 4 and summary["rejected"] == {"verify_failed": 1, "thinking_not_closed": 1}


def test_sampling_sent_exactly(tmp_path):
    with OpenAIFake(SCRIPT) as fake:
        result = generate(fake, tmp_path / "o.jsonl", "--limit", "1", "--max-tokens", "1234", "--top-k", "30")
        assert result.returncode == 0, result.stderr
        body = fake.requests[0]
    assert body["model"] == "qwen3-14b" and body["stream"] is True
    assert body["max_tokens"] == 1234 and body["temperature"] == 0.6 and body["top_p"] == 0.95
    assert body["top_k"] == 30 and body["min_p"] == 0.0


def test_rerun_resumes_without_resending(tmp_path):
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(SCRIPT) as fake:
        assert generate(fake, out, "--limit", "3").returncode == 0
        assert len(fake.requests) == 3
        result = generate(fake, out)
        assert result.returncode == 0, result.stderr
        assert len(fake.requests) == 6  # only the 3 new rows were sent
    ids = [r["id"] for r in read_rows(out) + read_rows(sibling(out, "rejects"))]
    assert sorted(ids) == sorted(f"gsm8k/test/{i}" for i in range(6))


def test_changed_prompt_or_sampling_stops_unless_forced(tmp_path):
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(SCRIPT) as fake:
        assert generate(fake, out, "--limit", "2").returncode == 0
        line = one_line_error(generate(fake, out, "--temperature", "0.7"))
        assert "fingerprint" in line and "--force" in line
        assert len(read_rows(out)) == 2  # nothing lost
        result = generate(fake, out, "--temperature", "0.7", "--force")
        assert result.returncode == 0 and "warning" in result.stderr
    assert len(read_rows(out)) + len(read_rows(sibling(out, "rejects"))) == 6


def test_transient_failures_are_retried(tmp_path):
    script = {"rules": [
        {"match": "Janet", "content": "\\boxed{18}", "fail": 2, "status": 500},
        {"match": "robe", "content": "\\boxed{3}", "fail": 1, "status": 429},
        {"match": "flipping", "content": "\\boxed{70000}", "fail": 1, "drop": True, "chunks": 8},
    ]}
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(script) as fake:
        result = generate(fake, out, "--limit", "3")
    assert result.returncode == 0, result.stderr
    assert {r["id"]: r["verified"] for r in read_rows(out)} == {f"gsm8k/test/{i}": True for i in range(3)}
    assert not sibling(out, "errors").exists()


def test_failed_requests_go_to_errors_and_are_retried_next_run(tmp_path):
    script = {"rules": [{"match": "Janet", "content": "\\boxed{18}", "fail": 3, "status": 503},
                        {"match": "robe", "content": "\\boxed{3}"}]}
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(script) as fake:
        first = generate(fake, out, "--limit", "2", "--retries", "1")
        assert first.returncode == 1 and "retry" in first.stderr
        assert [r["id"] for r in read_rows(sibling(out, "errors"))] == ["gsm8k/test/0"]
        assert [r["id"] for r in read_rows(out)] == ["gsm8k/test/1"]  # a failure is never a row
        second = generate(fake, out, "--limit", "2", "--retries", "1")
        assert second.returncode == 0, second.stderr
    assert sorted(r["id"] for r in read_rows(out)) == ["gsm8k/test/0", "gsm8k/test/1"]


def test_timeout_cancels_the_request(tmp_path):
    script = {"rules": [{"match": "Janet", "hang": True}, {"match": "robe", "content": "\\boxed{3}"}]}
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(script) as fake:
        result = generate(fake, out, "--limit", "2", "--timeout", "0.5", "--retries", "0")
        deadline = time.monotonic() + 30  # when the fake next polls (slow when loaded)
        while fake.server.cancelled < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fake.server.cancelled >= 1  # the server saw the client go away
    assert result.returncode == 1
    assert "no reply within 0.5s" in read_rows(sibling(out, "errors"))[0]["error"]


def test_attempts_resample_a_row_that_fails_verification(tmp_path):
    # A row that keeps failing verification is sent --attempts times, then rejected once.
    script = {"rules": [{"match": "sprints", "content": "\\boxed{520}"}]}
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(script) as fake:
        result = generate(fake, out, "--source", FIXTURES / "gsm8k" / "test.jsonl", "--attempts", "3")
        sprint_calls = [c for c in fake.script.calls if "sprints" in c]
    assert result.returncode == 0
    assert len(sprint_calls) == 3
    reject = next(r for r in read_rows(sibling(out, "rejects")) if "sprints" in r["prompt"])
    assert reject["attempt"] == 3 and reject["reason"] == "verify_failed"


def test_sigkill_midway_then_rerun_gives_every_id_once(tmp_path):
    rows = [{"question": f"Item {i}: what is {i} plus {i}?", "answer": f"{i}+{i}=<<{i}+{i}={2 * i}>>{2 * i}\n#### {2 * i}"}
            for i in range(60)]
    source = tmp_path / "many.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rules = [{"match": f"Item {i}:", "reasoning": f"{i}+{i}", "content": f"\\boxed{{{2 * i if i % 7 else 0}}}"}
             for i in range(60)]
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake({"rules": rules, "latency": 0.05}) as fake:
        args = ["--source", source, "--split", "test", "--teacher", fake.url, "--out", out, "--concurrency", "4"]
        proc = start_script("gsm8k/generate.py", *args)
        deadline = time.monotonic() + 60
        while len(whole_rows(out)) < 15 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        first = {r["id"] for r in whole_rows(out) + whole_rows(sibling(out, "rejects"))}
        assert 15 <= len(first) < 60
        # A kill can tear the last line; the next run cuts it off. Simulate the worst case too.
        with out.open("a") as f:
            f.write('{"id": "gsm8k/test/59", "dataset": "torn')
        calls_before = len(fake.script.calls)
        result = run_script("gsm8k/generate.py", *args)
        assert result.returncode == 0, result.stderr
        resent = fake.script.calls[calls_before:]
    ids = [r["id"] for r in read_rows(out) + read_rows(sibling(out, "rejects"))]
    assert sorted(ids) == sorted(f"gsm8k/test/{i}" for i in range(60))  # each exactly once
    finished_prompts = {f"Item {i.split('/')[-1]}:" for i in first}
    assert not any(c.split(" what")[0] in finished_prompts for c in resent)  # nothing finished sent again
    assert "torn last line" in result.stderr


def test_ctrl_c_keeps_rows_and_exits_130(tmp_path):
    rows = [{"question": f"Item {i}: what is {i} plus {i}?", "answer": f"#### {2 * i}"} for i in range(200)]
    source = tmp_path / "many.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "gsm8k.jsonl"
    # rows from the 40th on never get an answer: Ctrl-C ends a run with requests in flight, and a run that
    # ignored it could not pass by finishing first
    script = {"default": {"content": "\\boxed{0}"}, "latency": 0.05,
              "rules": [{"match": f"Item {i}:", "hang": True} for i in range(40, 200)]}
    with OpenAIFake(script) as fake:
        proc = start_script("gsm8k/generate.py", "--source", source, "--split", "test", "--teacher", fake.url,
                            "--out", out, "--concurrency", "4")
        deadline = time.monotonic() + 60
        while len(whole_rows(sibling(out, "rejects"))) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    kept = read_rows(sibling(out, "rejects"))
    assert 10 <= len(kept) <= 40 and len({r["id"] for r in kept}) == len(kept)


def test_bad_input_gives_one_line_and_exit_2(tmp_path):
    out = tmp_path / "o.jsonl"
    with OpenAIFake(SCRIPT) as fake:
        t = ["--teacher", fake.url, "--out", out]
        assert "not found" in one_line_error(run_script("gsm8k/generate.py", "--source", tmp_path / "nope.jsonl", *t))
        line = one_line_error(run_script("gsm8k/generate.py", "--source", "no-such-user/no-such-dataset", *t))
        assert "no-such-user/no-such-dataset" in line
        line = one_line_error(run_script("gsm8k/generate.py", "--split", "tset", *t))
        assert "split must be train|test, got 'tset'" in line
        wrong = tmp_path / "wrong.jsonl"
        wrong.write_text('{"question": "What is 1+1?", "solution": "2"}\n')
        line = one_line_error(run_script("gsm8k/generate.py", "--source", wrong, *t))
        assert "'answer'" in line and "question, solution" in line
        line = one_line_error(run_script("gsm8k/generate.py", *ARGS, "--teacher", fake.url, "--out", out, "--model", "qwen9"))
        assert "qwen9" in line and "qwen3-14b" in line
        line = one_line_error(run_script("gsm8k/generate.py", *ARGS, "--teacher", "ftp://x", "--out", out))
        assert "--teacher must be" in line
    line = one_line_error(run_script("gsm8k/generate.py", *ARGS, "--teacher", "http://127.0.0.1:9/v1", "--out", out))
    assert "cannot reach" in line and "127.0.0.1:9" in line
    assert not out.exists()


def test_malformed_row_is_rejected_and_the_run_continues(tmp_path):
    source = tmp_path / "mixed.jsonl"
    source.write_text(GSM8K.read_text().splitlines()[0] + "\n" + '{"question": null, "answer": "#### 1"}\n')
    out = tmp_path / "o.jsonl"
    with OpenAIFake(SCRIPT) as fake:
        result = generate(fake, out, "--source", source)
    assert result.returncode == 0, result.stderr
    assert [r["id"] for r in read_rows(out)] == ["gsm8k/test/0"]
    (bad,) = read_rows(sibling(out, "rejects"))
    assert bad["id"] == "gsm8k/test/1" and bad["reason"].startswith("malformed_row")


def test_dry_run_calls_nothing(tmp_path):
    out = tmp_path / "o.jsonl"
    result = run_script("gsm8k/generate.py", *ARGS, "--teacher", "http://127.0.0.1:9/v1", "--out", out, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Janet" in result.stdout and "\\\\boxed{}" in result.stdout and "#### 18" not in result.stdout
    assert not out.exists()


def test_written_style_keeps_the_written_tags_and_the_thinking(tmp_path):
    script = {"rules": [
        {"match": "Janet", "reasoning": "native thinking",
         "content": "<reasoning>16-3-4=9, 9*2=18</reasoning>\n<answer>\\boxed{18}</answer>"},
        {"match": "robe", "reasoning": "native thinking", "content": "3 bolts, no tags"},
    ]}
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(script) as fake:
        result = generate(fake, out, "--limit", "2", "--style", "written")
        system = fake.requests[0]["messages"][0]
    assert result.returncode == 0, result.stderr
    assert system["role"] == "system" and "<reasoning>" in system["content"]
    (row,) = read_rows(out)
    assert (row["reasoning"], row["answer"], row["thinking"]) == ("16-3-4=9, 9*2=18", "\\boxed{18}", "native thinking")
    assert row["verified"] is True
    (reject,) = read_rows(sibling(out, "rejects"))
    assert reject["reason"] == "missing_tags"


def test_a_corrupt_line_is_moved_aside_with_its_number_and_its_row_generated_again(tmp_path):
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(SCRIPT) as fake:
        assert generate(fake, out).returncode == 0
        lines = out.read_text().splitlines(keepends=True)
        broken = json.loads(lines[1])["id"]
        garbage = lines[1][: len(lines[1]) // 2] + "\x00 disk error\n"  # a whole line, newline and all
        out.write_text(lines[0] + garbage + "".join(lines[2:]))
        calls = len(fake.script.calls)
        result = generate(fake, out)
        resent = len(fake.script.calls) - calls
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:") and "JSON" in line]
    assert notes == [f"note: {out}: line 2 not a JSON object, moved to {sibling(out, 'corrupt')}; "
                     "their rows are generated again"]
    assert read_rows(sibling(out, "corrupt")) == [{"file": "gsm8k.jsonl", "line": 2, "text": garbage[:-1]}]
    assert resent == 1 and broken in {r["id"] for r in read_rows(out)}  # read_rows fails on a bad line
    stats = run_script("crap.py", "stats", out, "--out", tmp_path / "stats.md")
    assert stats.returncode == 0, stats.stderr


@pytest.mark.parametrize("name, text, where", [
    ("rows.jsonl", '{"question": "a", "answer": "#### 1"}\n\n{"question": "b", "answer": \n', ":3: not JSON ("),
    ("rows.jsonl", '{"question": "a", "answer": "#### 1"}\n["question", "b"]\n', ":2: a JSON list, not an object"),
    ("rows.json", '[{"question": "a", "answer": "#### 1"},\n {"question": "b" "answer": "#### 2"}]\n',
     ":2: not valid JSON ("),
])
def test_a_bad_source_line_is_named_file_colon_line_counted_from_one(tmp_path, name, text, where):
    source = tmp_path / name
    source.write_text(text)
    line = one_line_error(run_script("gsm8k/generate.py", "--source", source, "--dry-run"))
    assert line.startswith(f"error: {source}{where}"), line
