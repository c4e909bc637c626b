"""The engine against a real llama.cpp server (llama-server, --parallel 4, Gemma 3 270M base; tests/real/fixtures.py):
our OpenAI-compatible backend through gsm8k/generate.py, as a user runs it.

A base model of 270M parameters rarely solves a GSM8K problem, so most rows are rejected; what is checked is
that every reply lands in the right file for the right reason, with the usage the server reported.
"""

from __future__ import annotations

import asyncio
import json
import time

from tests.helpers import (FIXTURES, one_line_error, read_rows, replies_in_turn, run_script, sibling,
                           start_script)
from tunixhack import verify
from tunixhack.teachers.base import Sampling
from tunixhack.teachers.openai_compat import OpenAITeacher

MAX_TOKENS = 48
# what a base model's replies can earn here (one that loops is cut on the stream)
REASONS = {"truncated", "verify_failed", "empty_answer", "repetition_loop"}


def source(tmp_path, easy: int = 4) -> str:
    """`easy` one-step sums the model can get right, then the GSM8K fixture's rows."""
    sums = [{"question": f"What is {i} plus {i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i}"}
            for i in range(2, 2 + easy)]
    path = tmp_path / "gsm8k_test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in sums)
                    + (FIXTURES / "gsm8k" / "test.jsonl").read_text(encoding="utf-8"))
    return str(path)


def generate(server, src, out, *extra, model=None):
    return run_script("gsm8k/generate.py", "--source", src, "--split", "test", "--teacher", server.base_url,
                      "--model", model or server.model, "--max-tokens", str(MAX_TOKENS), "--out", out,
                      "--backoff", "0.01", "--timeout", "300", *extra, timeout=600)


def summary_of(out) -> dict:
    return json.loads(sibling(out, "summary").with_suffix(".json").read_text())


def tokens(server, text: str) -> int:
    return len(server.post("/tokenize", {"content": text, "add_special": False})["tokens"])


def prompt_tokens(server, messages: list[dict]) -> int:
    """What the server counts for a chat request: its own chat template, then its tokenizer (BOS included)."""
    prompt = server.post("/apply-template", {"messages": messages})["prompt"]
    return len(server.post("/tokenize", {"content": prompt, "add_special": True, "parse_special": True})["tokens"])


def assert_the_servers_decode_rate(usage: dict) -> None:
    """The rate is the server's (its `timings`, as LM Studio reports its own), not the client's tokens over its
    seconds. The server's counts the tokens after the first over the time since the first, which the client's
    seconds hold with more (the request, the wait for a slot, the prompt): above (tokens - 1) / seconds however
    loaded the machine."""
    tokens_, seconds, rate = usage["completion_tokens"], usage["seconds"], usage["tokens_per_second"]
    if tokens_ < 2:
        return  # one token (an end of turn, at once) makes no rate: the server says 0
    assert rate != round(tokens_ / seconds, 2) and rate > (tokens_ - 1) / seconds, usage


def idle(server) -> bool:
    return not any(slot["is_processing"] for slot in server.get("/slots"))


def test_rows_rejects_and_usage_from_a_real_server(llama_server, tmp_path):
    out = tmp_path / "gsm8k.jsonl"
    started = time.monotonic()
    result = generate(llama_server, source(tmp_path), out, "--limit", "8", "--concurrency", "4")
    wall = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    rows, rejects = read_rows(out), read_rows(sibling(out, "rejects"))
    assert len(rows) + len(rejects) == 8 and len({r["id"] for r in rows + rejects}) == 8
    assert not sibling(out, "errors").exists()

    for row in rows + rejects:
        usage = row["usage"]
        # the server's count: its usage at the end of a reply, its per-token timings for one cut on the stream
        assert usage["prompt_tokens"] == prompt_tokens(llama_server, row["messages"]), row["id"]
        if row["finish"] == "length":
            assert usage["completion_tokens"] == MAX_TOKENS
        elif row["finish"] == "cancelled":  # a loop, cut: the tokens streamed before the cut, one an event
            assert row["reason"].startswith("repetition_loop: ") and usage["completion_tokens"] <= MAX_TOKENS, row
            # a looped pattern may tokenize into fewer pieces as one text ("hahaha"), never into more
            assert tokens(llama_server, row["reasoning"] + row["answer"]) <= usage["completion_tokens"] + 2
        else:  # the text's own tokens, the end-of-turn token the server counts but does not send, and the
            # whitespace split_reasoning strips (a leading and a trailing newline: a token each)
            assert row["finish"] == "stop"
            text = tokens(llama_server, row["reasoning"] + row["answer"])
            assert text - 2 <= usage["completion_tokens"] <= text + 4, row
        assert 0 < usage["seconds"] < wall
        assert_the_servers_decode_rate(usage)
        assert row["teacher"]["model"] == llama_server.model and row["teacher"]["max_tokens"] == MAX_TOKENS

    for row in rows:
        assert row["verified"] is True and verify.check(row, row["answer"]) is True
    for row in rejects:
        assert row["reason"].split(":")[0] in REASONS, row["reason"]
        assert (row["reason"] == "truncated") == (row["finish"] == "length"), row
        assert row["reason"].startswith("repetition_loop") == (row["finish"] == "cancelled"), row
        if row["reason"] == "verify_failed":
            assert verify.check(row, row["answer"]) is False

    summary = summary_of(out)
    assert summary["accepted"] == len(rows) and sum(summary["rejected"].values()) == len(rejects)
    assert summary["tokens"] == {"prompt": sum(r["usage"]["prompt_tokens"] for r in rows + rejects),
                                 "completion": sum(r["usage"]["completion_tokens"] for r in rows + rejects)}
    (stats,) = summary["endpoints"].values()
    assert (stats["ok"], stats["failed"], stats["concurrency_mode"], stats["concurrency"]) == (8, 0, "fixed", 4)
    assert stats["peak_in_flight"] == 4
    # The closing lines name the files that were written (a base model's replies may all be rejects), and no
    # errors file, which was not.
    assert (f"rows: {out}" in result.stderr) == bool(rows) and "errors:" not in result.stderr
    assert (f"rejects: {sibling(out, 'rejects')}" in result.stderr) == bool(rejects)
    assert idle(llama_server)


def test_replies_cut_on_the_stream_count_the_prompt_the_server_read(llama_server, tmp_path):
    """A reply cancelled on the stream gets no usage from the server; llama.cpp's per-token timings (asked of it
    once its Server header says llama.cpp) still say what the prompt cost, so the spend is whole."""
    for run in ("first", "again"):  # again: the same prompts, which the slots now have cached (cache_n > 0)
        out = tmp_path / run / "gsm8k.jsonl"
        result = generate(llama_server, source(tmp_path, easy=0), out, "--limit", "4", "--concurrency", "4",
                          "--max-answer-tokens", "6")
        assert result.returncode == 0, result.stderr
        cut = [r for r in read_rows(sibling(out, "rejects")) if r["finish"] == "cancelled"]
        assert cut, "no reply of the 4 ran past 6 tokens"  # a base model's replies to GSM8K run on
        for row in cut:
            usage = row["usage"]
            assert row["reason"] == "too_long: answer past 6 tokens" and usage["completion_tokens"] == 7
            assert usage["prompt_tokens"] == prompt_tokens(llama_server, row["messages"]), (run, row["id"])
            assert_the_servers_decode_rate(usage)
        spent = summary_of(out)["spent"]["cancelled"]["too_long"]
        assert spent == {"replies": len(cut), "prompt": sum(r["usage"]["prompt_tokens"] for r in cut),
                         "completion": 7 * len(cut)}
    # the slots go free as llama.cpp sends each cut reply's next token and finds the client gone (in tokens: the
    # cancel test); the generate process may end a moment before
    deadline = time.monotonic() + 60
    while not idle(llama_server):
        assert time.monotonic() < deadline, llama_server.get("/slots")
        time.sleep(0.05)


def test_auto_concurrency_reads_the_servers_slots_and_stays_within_them(llama_server, tmp_path):
    assert llama_server.get("/props")["total_slots"] == 4
    out = tmp_path / "gsm8k.jsonl"
    # 10 rows, 8 tokens each: enough replies for the limit to try to climb, were it allowed to.
    result = generate(llama_server, source(tmp_path), out, "--max-tokens", "8")
    assert result.returncode == 0, result.stderr
    assert len(read_rows(out)) + len(read_rows(sibling(out, "rejects"))) == 10
    (stats,) = summary_of(out)["endpoints"].values()
    assert stats["concurrency_mode"] == "auto"
    # It starts at the server's 4 (a server that says nothing would see 8 at once) and never passes it.
    assert stats["peak_in_flight"] == 4 and 1 <= stats["concurrency"] <= 4
    assert f"concurrency auto, settled at {stats['concurrency']} (peak 4 in flight)" in result.stderr


def test_a_model_the_server_does_not_serve_is_one_line_and_exit_2(llama_server, tmp_path):
    out = tmp_path / "gsm8k.jsonl"
    result = generate(llama_server, source(tmp_path), out, "--limit", "2", model="qwen3-14b")
    line = one_line_error(result)
    assert "'qwen3-14b' is not served" in line and llama_server.model in line
    assert not out.exists() and not sibling(out, "rejects").exists()


def test_streamed_replies_in_turn_lose_no_request_to_a_closing_connection(llama_server):
    """llama-server closes the connection after every streamed reply, though it says keep-alive; a request sent
    on it before the close is seen was lost (one in two, sent at once after the last reply ended). The teacher
    asks for a fresh connection each time instead (CLOSES_AFTER_STREAM)."""
    replies = replies_in_turn(llama_server.base_url, llama_server.model,
                              [f"What is {i} plus {i}?" for i in range(12)], max_tokens=4)
    assert {r.finish for r in replies} <= {"stop", "length"}  # twelve replies, none a TransientError


def decoded(server) -> int:
    """Tokens the busy slots have decoded for their requests so far (llama.cpp's /slots)."""
    return sum(slot["next_token"][0]["n_decoded"] for slot in server.get("/slots") if slot["is_processing"])


def test_a_cancelled_request_frees_its_slot_at_once(llama_server):
    """A timeout or Ctrl-C closes the stream; llama.cpp stops generating and frees the slot (its /slots says).
    "At once" is counted in tokens decoded after the cancel, not in seconds, so a loaded machine cannot fail it:
    llama.cpp notices a closed connection when it sends the next token."""
    async def cancel_mid_reply() -> tuple[int, float] | None:
        teacher = OpenAITeacher(llama_server.base_url, llama_server.model)
        request = asyncio.ensure_future(teacher.complete(
            [{"role": "user", "content": "Count from 1 to 2000, one number a line."}], Sampling(max_tokens=1500)))
        try:
            deadline = time.monotonic() + 60
            while await asyncio.to_thread(idle, llama_server):  # until the server is generating for us
                assert time.monotonic() < deadline and not request.done(), "the request never reached a slot"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            if request.done():
                return None  # the model ended (or looped and was cut) before the cancel: sampled, so try again
            at_cancel = await asyncio.to_thread(decoded, llama_server)
            request.cancel()
            cancelled, last = time.monotonic(), at_cancel
            while not await asyncio.to_thread(idle, llama_server):
                last = max(last, await asyncio.to_thread(decoded, llama_server))
                await asyncio.sleep(0.02)
            return last - at_cancel, time.monotonic() - cancelled
        finally:
            request.cancel()
            await teacher.close()

    for _ in range(3):
        tried = asyncio.run(cancel_mid_reply())
        if tried is not None:
            break
    assert tried is not None, "three replies in a row ended before they could be cancelled"
    after, seconds = tried
    print(f"slot freed {seconds:.2f} s and {after} tokens after the cancel")
    # of the 1,500 the reply could still have cost; a few more may come while a loaded client is descheduled
    # between reading /slots and closing the stream
    assert after <= 32


def test_a_server_that_goes_down_leaves_errors_to_retry_and_a_rerun_finishes(gemma_270m_gguf, llama_server_factory,
                                                                             tmp_path):
    """Exit 1 with the failed rows in the errors file, named in the summary; the same command, once the server is
    back (here on another port), sends only those rows again and exits 0. This test starts servers of its own,
    to stop one; llama_server_factory skips it (fails it on CI) where llama-server is not built."""
    from tests.real.fixtures import GEMMA_TEMPLATE
    from tests.real.llama import LlamaServer

    out, src = tmp_path / "gsm8k.jsonl", source(tmp_path)
    args = ("--limit", "2", "--concurrency", "1", "--retries", "0", "--max-tokens", "120")
    with LlamaServer(gemma_270m_gguf, parallel=1, extra=GEMMA_TEMPLATE) as server:
        run = start_script("gsm8k/generate.py", "--source", src, "--split", "test", "--teacher", server.base_url,
                           "--model", server.model, "--out", out, "--backoff", "0.01", *args)
        deadline = time.monotonic() + 120
        while idle(server):  # the first request is being generated
            assert time.monotonic() < deadline and run.poll() is None, run.communicate()
            time.sleep(0.05)
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 1, stderr
    failed = read_rows(sibling(out, "errors"))
    assert len(failed) == 2 and not out.exists() and not sibling(out, "rejects").exists()
    assert f"errors: {sibling(out, 'errors')}" in stderr and "run the same command again" in stderr

    with LlamaServer(gemma_270m_gguf, parallel=1, extra=GEMMA_TEMPLATE) as server:
        rerun = generate(server, src, out, *args)
    assert rerun.returncode == 0, rerun.stderr
    done = read_rows(out) + read_rows(sibling(out, "rejects"))
    assert sorted(r["id"] for r in done) == sorted(r["id"] for r in failed)
