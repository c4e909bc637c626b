"""LMStudioTeacher through the real `lmstudio` SDK against a fake LM Studio websocket server."""

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.lmstudio_server import LMStudioFake, count_tokens
from tests.fakes.script import Rule, Script, split_chunks
from tunixhack.errors import FatalTeacherError, TransientError, UserError
from tunixhack.teachers.base import Sampling
from tunixhack.teachers.lmstudio import LMStudioTeacher

MODEL = "qwen3-14b"
REASONING = "Natalia sold 48 clips in April and half as many in May: 48/2 = 24. In all 48 + 24 = 72."
RULES = [
    Rule(match="Natalia", reasoning=REASONING, content="\\boxed{72}"),
    Rule(match="ramble", reasoning="hmm, let me reconsider again", unclosed=True),
    Rule(match="slow", reasoning="thinking", content="done", latency=0.5),
    Rule(match="stuck", hang=True),
    Rule(match="dropme", content="ok after a drop", fail=1, drop=True),
    Rule(match="flaky", content="ok after an error", fail=1, status=500),
]


def user(text: str) -> list[dict]:
    return [{"role": "system", "content": "You are a careful tutor."}, {"role": "user", "content": text}]


@pytest.fixture
def fake():
    with LMStudioFake(Script(rules=RULES, models=[MODEL])) as server:
        yield server


def run(teacher: LMStudioTeacher, body):
    """Run `body(teacher)` in a fresh event loop, closing the teacher's client afterwards."""

    async def main():
        try:
            return await body(teacher)
        finally:
            await teacher.close()

    return asyncio.run(main())


def test_reply_separates_reasoning_from_answer_by_fragment_type(fake):
    teacher = LMStudioTeacher(fake.host, MODEL)
    messages = user("Natalia sold clips to 48 of her friends in April. How many in all?")

    async def body(t):
        await t.check()
        return await t.complete(messages, Sampling())

    reply = run(teacher, body)
    assert (reply.reasoning, reply.content) == (REASONING, "\\boxed{72}")
    assert (reply.finish, reply.thinking_closed) == ("stop", True)
    assert (reply.model, reply.backend, reply.endpoint) == (MODEL, "lmstudio", f"lmstudio://{fake.host}")
    reasoning_tokens = sum(count_tokens(piece) for piece in split_chunks(REASONING, 4))
    assert reply.usage["reasoning_tokens"] == reasoning_tokens
    assert reply.usage["completion_tokens"] > reasoning_tokens  # the tags and the answer count too
    assert reply.usage["prompt_tokens"] == sum(count_tokens(m["content"]) for m in messages)
    assert reply.usage["tokens_per_second"] == 50.0 and reply.usage["seconds"] >= 0
    assert fake.predictions[0]["messages"] == messages
    assert fake.predictions[0]["model"] == MODEL


def test_sampling_values_reach_the_server(fake):
    sampling = Sampling(max_tokens=777, temperature=0.6, top_p=0.9, top_k=33, min_p=0.05)
    run(LMStudioTeacher(fake.host, MODEL), lambda t: t.complete(user("Natalia"), sampling))
    assert fake.predictions[0]["config"] == {
        "maxPredictedTokens": 777, "temperature": 0.6, "topPSampling": 0.9, "topKSampling": 33, "minPSampling": 0.05,
    }


def test_thinking_that_never_closes_is_flagged(fake):
    reply = run(LMStudioTeacher(fake.host, MODEL), lambda t: t.complete(user("ramble on"), Sampling()))
    assert (reply.finish, reply.thinking_closed) == ("length", False)
    assert (reply.reasoning, reply.content) == ("hmm, let me reconsider again", "")


def test_concurrent_completes_share_one_connection_and_overlap(fake):
    async def body(t):
        return await asyncio.gather(*(t.complete(user(f"slow question {i}"), Sampling()) for i in range(8)))

    replies = run(LMStudioTeacher(fake.host, MODEL), body)
    assert [r.content for r in replies] == ["done"] * 8
    assert fake.peak_in_flight >= 4
    assert fake.connections.count("/llm") == 1


def test_timeout_cancels_the_prediction_on_the_server(fake):
    async def body(t):
        await t.check()  # connected, so the time limit falls on the prediction itself
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(t.complete(user("stuck forever"), Sampling()), 0.5)
        return await t.complete(user("Natalia"), Sampling())  # the client still works

    reply = run(LMStudioTeacher(fake.host, MODEL), body)
    assert fake.cancels == ["stuck forever"]
    assert reply.content == "\\boxed{72}"


def test_dropped_connection_is_transient_and_the_next_call_reconnects(fake):
    async def body(t):
        with pytest.raises(TransientError):
            await t.complete(user("dropme"), Sampling())
        return await t.complete(user("dropme"), Sampling())

    reply = run(LMStudioTeacher(fake.host, MODEL), body)
    assert reply.content == "ok after a drop"
    assert fake.connections.count("/llm") == 2


def test_server_error_is_transient(fake):
    async def body(t):
        with pytest.raises(TransientError, match="status 500"):
            await t.complete(user("flaky"), Sampling())
        return await t.complete(user("flaky"), Sampling())

    assert run(LMStudioTeacher(fake.host, MODEL), body).content == "ok after an error"


def test_unknown_model_is_fatal_and_lists_the_available_ones(fake):
    with pytest.raises(FatalTeacherError, match="llama-9000") as caught:
        run(LMStudioTeacher(fake.host, "llama-9000"), lambda t: t.check())
    assert MODEL in str(caught.value) and "\n" not in str(caught.value)


def test_unreachable_server_is_a_user_error_naming_the_host():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        host = f"127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(UserError, match="lms server start") as caught:
        run(LMStudioTeacher(host, MODEL), lambda t: t.check())
    assert host in str(caught.value) and not isinstance(caught.value, FatalTeacherError)


def test_fake_runs_as_a_subprocess(tmp_path):
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"models": [MODEL], "rules": [{"match": "Natalia", "content": "72"}]}))
    with subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.lmstudio_server", "--script", str(script)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent,
    ) as proc:
        try:
            line = proc.stdout.readline().strip()
            assert line.startswith("listening on 127.0.0.1:")
            host = line.removeprefix("listening on ")
            reply = run(LMStudioTeacher(host, MODEL), lambda t: t.complete(user("Natalia"), Sampling()))
            assert reply.content == "72"
        finally:
            proc.terminate()


def test_reports_the_loaded_models_parallel_as_lm_studio_0_4_does():
    async def reported(server, model=MODEL):
        teacher = LMStudioTeacher(server.host, model)
        try:
            return await teacher.reported_parallel()
        finally:
            await teacher.close()

    with LMStudioFake(Script(rules=RULES, models=[MODEL]), parallel=3) as server:
        assert asyncio.run(reported(server)) == 3
        assert asyncio.run(reported(server, "another-model")) is None  # not loaded: nothing said of it
    with LMStudioFake(Script(rules=RULES, models=[MODEL])) as server:  # before 0.4: no /api/v1/models
        assert asyncio.run(reported(server)) is None
