"""The OpenAI-compatible backend reads the environment as curl and httpx do: HTTP(S)_PROXY and NO_PROXY, and
basic auth for the server's host from ~/.netrc ($NETRC) unless OPENAI_API_KEY is set. It looks them up once per
teacher, not on every request (aiohttp's trust_env did, in a thread each time); these tests hold the behaviour."""

from __future__ import annotations

import base64

import pytest

from tests.fakes.openai_server import OpenAIFake
from tests.helpers import replies_in_turn

SCRIPT = {"default": {"reasoning": "2 + 2 = 4.", "content": "\\boxed{4}"}}
QUESTION = "What is 2 + 2?"
UNRESOLVABLE = "http://teacher.invalid/v1"  # .invalid never resolves: only a proxy can reach it


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no.netrc"))  # never the machine's own ~/.netrc


def ask(url: str, calls: int = 2) -> list:
    return replies_in_turn(url, "qwen3-14b", [QUESTION] * calls)


def origin(url: str) -> str:
    return url.removesuffix("/v1")


def test_requests_go_through_the_proxy_from_the_environment(monkeypatch):
    with OpenAIFake(SCRIPT) as proxy:  # the fake answers whatever absolute URL it is sent, as a proxy would
        monkeypatch.setenv("HTTP_PROXY", origin(proxy.url).replace("http://", "http://carol:pw@"))
        replies = ask(UNRESOLVABLE)
        headers = proxy.headers
    assert [r.content for r in replies] == ["\\boxed{4}"] * 2
    assert len(headers) == 2 and all(h["Proxy-Authorization"] == basic(b"carol:pw") for h in headers)


def test_no_proxy_sends_the_host_direct(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # the discard port: nothing answers there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with OpenAIFake(SCRIPT) as fake:
        replies = ask(fake.url)
        headers = fake.headers
    assert [r.content for r in replies] == ["\\boxed{4}"] * 2 and "Proxy-Authorization" not in headers[0]


def alice_in_netrc(monkeypatch, tmp_path) -> None:
    """A $NETRC file with alice's password for 127.0.0.1, where the fakes listen."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))


def basic(user_password: bytes) -> str:
    return "Basic " + base64.b64encode(user_password).decode()


def test_netrc_gives_basic_auth_and_an_api_key_wins_over_it(monkeypatch, tmp_path):
    alice_in_netrc(monkeypatch, tmp_path)
    with OpenAIFake(SCRIPT) as fake:
        ask(fake.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        ask(fake.url, calls=1)  # both would be refused by aiohttp (two Authorization headers): the key is sent
        headers = fake.headers
    assert [h["Authorization"] for h in headers] == [basic(b"alice:s3cret")] * 2 + ["Bearer sk-test"]


def test_credentials_in_the_url_win_over_netrc(monkeypatch, tmp_path):
    alice_in_netrc(monkeypatch, tmp_path)
    with OpenAIFake(SCRIPT) as fake:
        replies = ask(fake.url.replace("http://", "http://bob:pw@"), calls=1)  # aiohttp refused both at once
        headers = fake.headers
    assert replies[0].content == "\\boxed{4}"
    assert headers[0]["Authorization"] == basic(b"bob:pw")
