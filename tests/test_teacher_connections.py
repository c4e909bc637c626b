"""Connections to an OpenAI-compatible server: kept alive where the server keeps them, one a reply where it
closes after every streamed reply as llama-server does (the fake's reports="llama.cpp" behaves so, and loses
any request sent on such a connection; tests/real/test_llama_teacher.py checks the real server)."""

from __future__ import annotations

from tests.fakes.openai_server import OpenAIFake
from tests.test_generate_scale import endpoint, generate, ids, script, source, summary_of
from tests.helpers import replies_in_turn, sibling


def ask_in_turn(fake, n: int) -> list[str]:
    """n answers one after another through one teacher."""
    prompts = [f"Item {i}: what is {i} plus {i}?" for i in range(n)]
    return [r.content for r in replies_in_turn(fake.url, "qwen3-14b", prompts, max_tokens=64)]


def test_a_server_that_closes_after_each_stream_gets_each_request_on_a_fresh_connection():
    with OpenAIFake(script(6), reports="llama.cpp") as fake:
        answers = ask_in_turn(fake, 6)
        assert answers == [f"\\boxed{{{2 * i if i % 3 else -1}}}" for i in range(6)]
        assert len(set(fake.ports)) == 6  # none was sent on a connection the server was closing
        assert all(h.get("Connection") == "close" for h in fake.headers)


def test_other_servers_keep_one_connection_for_requests_in_turn():
    with OpenAIFake(script(6)) as fake:
        assert len(ask_in_turn(fake, 6)) == 6
        assert len(set(fake.ports)) == 1 and not any("Connection" in h for h in fake.headers)


def test_a_run_against_llama_cpp_spends_no_retry_on_closed_connections(tmp_path):
    out = tmp_path / "gsm8k.jsonl"
    with OpenAIFake(script(24), slots=4, reports="llama.cpp") as fake:
        result = generate(fake, source(tmp_path, 24), out, "--concurrency", "4")
        requests = len(fake.requests)
    assert result.returncode == 0, result.stderr
    assert len(set(ids(out))) == 24
    stats = endpoint(summary_of(out))
    assert (stats["ok"], stats["failed"], requests) == (24, 0, 24) and not sibling(out, "errors").exists()
