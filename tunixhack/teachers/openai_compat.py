"""Any OpenAI-compatible server (vLLM, llama.cpp, LM Studio's REST API, Ollama, DeepSeek, OpenRouter...).

Speaks the chat-completions wire format directly over aiohttp, streamed as server-sent events: the `openai`
package's request building (typed parameter transforms, its own HTTP layer) cost more client CPU than the rest
of the engine together, and a run sends hundreds of requests a second to a large server. Streaming also means
that a timeout or Ctrl-C closes the connection and the server stops generating, and that the reply is watched
as it comes (teachers/watch.py): a repetition loop or a reply past its budget is stopped by closing the stream
(llama.cpp and vLLM stop generating and free the slot when the client goes). Nothing here retries: only
the router does, with a cap and backoff.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from contextlib import suppress
from urllib.parse import urlsplit

import aiohttp
from aiohttp.helpers import basicauth_from_netrc, get_env_proxy_for_url, netrc_from_env
from yarl import URL

from ..errors import FatalTeacherError, TransientError, UserError
from .reasoning import THINK_CLOSE, THINK_OPEN, split_reasoning
from .base import Reply, Sampling, usage_dict
from .watch import Budget, Watch
from .probe import PROBE_TIMEOUT_S, llama_cpp_slots, lmstudio_parallel, vllm_start

FINISH = {"stop": "stop", "length": "length", "content_filter": "other", "tool_calls": "other"}
CONNECT_TIMEOUT_S = 10.0  # the whole request is timed by the router
# Pooled connections idle longer than this are not reused: uvicorn (vLLM) and cpp-httplib (llama.cpp's plain
# replies) close one idle for 5 s, and a request sent on a connection the server has just closed fails ("Server
# disconnected"). 2 s, not just under 5: on a loaded machine the client's and the server's clocks for "idle"
# drift apart by more than 1 s.
KEEPALIVE_S = 2.0
# Servers (by their `Server` header) that close the connection after every streamed reply, though the reply says
# "Keep-Alive: timeout=5, max=100": llama-server's stream provider returns false when it ends, which cpp-httplib
# takes for a cancelled write, so it closes. aiohttp pools the connection the moment the body ends and hands it to
# the next request before the close arrives: that request fails, half of them at least (bench/README.md). To such
# a server every chat request says `Connection: close`; it answers the same and aiohttp does not pool it.
CLOSES_AFTER_STREAM = ("llama.cpp",)
# Servers that put their `timings` (prompt_n, cache_n, predicted_per_second) in every streamed event when asked
# (`timings_per_token`): a reply cancelled on the stream then still says what its prompt cost. Others send usage
# only at the end (vLLM could, with stream_options.continuous_usage_stats; OpenAI refuses unknown fields).
TIMINGS_PER_TOKEN = ("llama.cpp",)


class OpenAITeacher:
    backend = "openai"

    def __init__(self, base_url: str, model: str):
        self.endpoint = base_url.rstrip("/")
        self.model = model
        self._session: aiohttp.ClientSession | None = None
        self.reported_slots: int | None = None  # the slots the server said it has (not a start guessed from vLLM)
        self._headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        # The environment as curl and httpx read it, looked up once: aiohttp's trust_env looks it up again on
        # every request, in a thread each time (two thread hops a request, a third of the client's CPU).
        key = os.environ.get("OPENAI_API_KEY")
        auth = f"Bearer {key}" if key else netrc_auth(self.endpoint)
        if auth:  # local servers need none; a hosted API names the variable in its 401, see _status_error
            self._headers["Authorization"] = auth
        self._proxy, proxy_credentials = env_proxy(self.endpoint)
        self._headers.update(proxy_credentials)
        self._chat_headers = self._headers  # + Connection: close once the server is one that closes after streams
        self._timings_per_token = False     # set once the server is one that streams its timings when asked

    @property
    def session(self) -> aiohttp.ClientSession:
        """One connection pool per event loop, made on first use inside it (a session belongs to its loop)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session._loop is not loop:
            # limit=0: the router bounds what is in flight
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=KEEPALIVE_S)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S),
            )
        return self._session

    async def check(self) -> None:
        try:
            async with self.session.get(f"{self.endpoint}/models", headers=self._headers, **self._proxy) as response:
                body = await response.read()
                self._note_server(response)  # before any chat request: the engine checks first
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
            raise UserError(f"cannot reach the teacher at {self.endpoint}: {cause(e)}; is the server running?") from None
        if response.status == 404:
            return  # some servers have no /models; the first request will tell
        if response.status >= 400:
            raise self._status_error(response.status, body)
        try:
            served = [m["id"] for m in json.loads(body).get("data") or []]
        except (ValueError, TypeError, KeyError, AttributeError):
            served = []  # not a model list: the first request will tell
        if served and self.model not in served:
            raise FatalTeacherError(f"model {self.model!r} is not served at {self.endpoint}; it serves: {', '.join(served)}")

    async def reported_parallel(self) -> int | None:
        """How many requests the server says it runs at once: LM Studio's loaded-model `parallel`
        (GET /api/v1/models), llama.cpp's `total_slots` (GET /props), or a vLLM start from its /metrics; None
        when it says nothing. A slot count is also kept as `reported_slots`, the adaptive limit's ceiling."""
        origin = urlsplit(self.endpoint)._replace(path="", query="", fragment="").geturl()
        for path, read, counted in (("/api/v1/models", lambda text: lmstudio_parallel(text, self.model), True),
                                    ("/props", llama_cpp_slots, True),
                                    ("/metrics", vllm_start, False)):
            try:
                async with self.session.get(origin + path, headers=self._headers, **self._proxy,
                                            timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)) as response:
                    if response.status != 200:
                        continue
                    found = read(await response.text())
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError, UnicodeDecodeError):
                continue
            if found:
                self.reported_slots = found if counted else None
                return found
        return None

    async def complete(self, messages: list[dict], sampling: Sampling) -> Reply:
        start = time.monotonic()
        request = {
            "model": self.model, "messages": messages, "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": sampling.top_k,
            "min_p": sampling.min_p, "stream": True, "stream_options": {"include_usage": True},
        }
        if self._timings_per_token:
            request["timings_per_token"] = True
        body = json.dumps(request, ensure_ascii=False).encode()
        stream = Stream(self.endpoint, sampling.budget)
        try:
            response = await self.session.post(f"{self.endpoint}/chat/completions", data=body,
                                               headers=self._chat_headers, **self._proxy)
            self._note_server(response)
            try:
                if response.status >= 400:
                    raise self._status_error(response.status, await response.read())
                if await stream.read(response):
                    response.close()  # stopped by the watch: the server sees the client go and frees the slot
            except BaseException:
                response.close()  # not back to the pool half-read: the server sees the client go and stops
                raise
            finally:
                response.release()
        except (aiohttp.ClientError, OSError) as e:
            raise TransientError(f"{self.endpoint}: {cause(e)}") from None
        return stream.reply(self, time.monotonic() - start)

    def _note_server(self, response: aiohttp.ClientResponse) -> None:
        server = response.headers.get("Server", "")
        if self._chat_headers is self._headers and server.startswith(CLOSES_AFTER_STREAM):
            self._chat_headers = {**self._headers, "Connection": "close"}
        self._timings_per_token = self._timings_per_token or server.startswith(TIMINGS_PER_TOKEN)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _status_error(self, status: int, body: bytes) -> Exception:
        """429, 408, 409 and 5xx can pass; anything else (unknown model, bad request, auth) cannot."""
        detail = error_detail(body)
        message = f"{self.endpoint}: HTTP {status}: {detail}"
        if status in (408, 409, 429) or status >= 500:
            return TransientError(message)
        if status == 404:
            return FatalTeacherError(f"model {self.model!r} not found at {self.endpoint} (HTTP 404: {detail})")
        if status in (401, 403):
            return FatalTeacherError(f"{message} (set OPENAI_API_KEY for this server)")
        return FatalTeacherError(message)


class Stopped(Exception):
    """The watch found a reason to stop the reply (Watch.stop)."""


class Stream:
    """The server-sent events of one streamed reply, gathered into the answer, the thinking and the usage."""

    def __init__(self, endpoint: str, budget: Budget | None = None):
        self.endpoint = endpoint
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.finish = None
        self.usage: dict = {}
        self.watch = Watch(budget)
        self._thinking_in_content: bool | None = None  # <think> opened in the content (no reasoning field)
        self.timings: dict = {}  # llama.cpp's own: predicted_per_second is its decode rate, as LM Studio reports

    async def read(self, response: aiohttp.ClientResponse) -> bool:
        """Read to the end of the body, past `data: [DONE]`, so the connection goes back to the pool; or
        until the watch stops the reply (then True: the caller closes the connection)."""
        pending = b""
        try:
            async for block in response.content.iter_any():
                *lines, pending = (pending + block).split(b"\n")
                for line in lines:
                    if line.startswith(b"data:"):
                        self._event(line[5:].strip())
            if pending.startswith(b"data:"):
                self._event(pending[5:].strip())
        except json.JSONDecodeError as e:
            raise TransientError(f"{self.endpoint}: unreadable stream chunk ({e})") from None
        except Stopped:
            return True
        return False

    def _event(self, data: bytes) -> None:
        if not data or data == b"[DONE]":
            return
        chunk = json.loads(data)
        if chunk.get("error"):
            raise TransientError(f"{self.endpoint}: error mid-reply: {str(chunk['error'])[:300]}")
        self.usage = chunk.get("usage") or self.usage
        self.timings = chunk.get("timings") or self.timings
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                self.content.append(text)
                if self.watch.feed(self._part_of_content(text), text):
                    raise Stopped
            thought = delta.get("reasoning_content") or delta.get("reasoning")
            if thought:
                self.reasoning.append(thought)
                if self.watch.feed("reasoning", thought):
                    raise Stopped
            self.finish = choice.get("finish_reason") or self.finish

    def _part_of_content(self, text: str) -> str:
        """Content is the answer, except thinking in <think> tags (servers that do not separate it)."""
        if self._thinking_in_content is None and not self.reasoning:
            head = "".join(self.content).lstrip()
            if len(head) < len(THINK_OPEN) and THINK_OPEN.startswith(head):
                return "reasoning"  # the tag itself, perhaps split over events: not decided yet
            self._thinking_in_content = head.startswith(THINK_OPEN)
        if not self._thinking_in_content:
            return "answer"
        if THINK_CLOSE in "".join(self.content[-3:]):  # the tag may come split over a few events
            self._thinking_in_content = False
        return "reasoning"

    def reply(self, teacher: OpenAITeacher, seconds: float) -> Reply:
        if self.watch.stop:
            return self.stopped_reply(teacher, seconds)
        if self.finish is None:
            raise TransientError(f"{self.endpoint}: the reply ended without a finish reason")
        thinking, answer, closed = split_reasoning("".join(self.content), "".join(self.reasoning) or None)
        finish = FINISH.get(self.finish, "other")
        if finish == "length" and not answer:
            closed = False  # cut off while still thinking: the server never saw </think>
        usage = self.usage
        details = usage.get("completion_tokens_details") or {}
        return Reply(
            content=answer, reasoning=thinking, finish=finish, thinking_closed=closed, model=teacher.model,
            endpoint=teacher.endpoint, backend=teacher.backend,
            usage=usage_dict(usage.get("prompt_tokens"), usage.get("completion_tokens"), seconds,
                             reasoning_tokens=details.get("reasoning_tokens"),
                             tokens_per_second=self.timings.get("predicted_per_second")),
        )


    def stopped_reply(self, teacher: OpenAITeacher, seconds: float) -> Reply:
        """What came before the stop. The server sent no usage, so the completion tokens are the events counted
        (servers stream one token an event); the prompt's, and the decode rate, are what llama.cpp's per-token
        timings said, None from a server that says nothing before the end."""
        thinking, answer, closed = split_reasoning("".join(self.content), "".join(self.reasoning) or None)
        prompt, rate = timed_so_far(self.timings)
        return Reply(
            content=answer, reasoning=thinking, finish="cancelled", thinking_closed=closed, model=teacher.model,
            endpoint=teacher.endpoint, backend=teacher.backend, stopped=self.watch.stop,
            usage=usage_dict(prompt, self.watch.completion_tokens, seconds,
                             reasoning_tokens=self.watch.tokens["reasoning"], tokens_per_second=rate),
        )


def timed_so_far(timings: dict) -> tuple[int | None, float | None]:
    """llama.cpp's timings mid-reply: (what its usage would say of the prompt, its decode rate so far), None where
    it did not say. Its prompt_tokens are the prompt it read (prompt_n) and the part it had cached (cache_n); its
    rate is the one its last event reports too (0 after the first token: not a rate yet)."""
    prompt = timings["prompt_n"] + timings["cache_n"] if {"prompt_n", "cache_n"} <= timings.keys() else None
    return prompt, timings.get("predicted_per_second") or None


def env_proxy(endpoint: str) -> tuple[dict, dict]:
    """The proxy for this endpoint from HTTP(S)_PROXY and NO_PROXY: a request's keyword arguments, and headers
    for the request itself ({}, {} for none). The proxy's credentials go in the request over http and in the
    CONNECT over https, as aiohttp's proxy_auth (deprecated) sends them."""
    with suppress(LookupError):
        url = URL(endpoint)
        proxy, auth = get_env_proxy_for_url(url)
        credentials = {"Proxy-Authorization": auth.encode()} if auth else {}
        if url.scheme == "https":
            return {"proxy": proxy, "proxy_headers": credentials}, {}
        return {"proxy": proxy}, credentials
    return {}, {}


def netrc_auth(endpoint: str) -> str | None:
    """Basic auth for this endpoint's host from ~/.netrc (or $NETRC), as an Authorization header; none where the
    URL carries its own credentials (they win, as with aiohttp's trust_env)."""
    url = URL(endpoint)
    if url.user is not None:
        return None
    with suppress(LookupError):
        return basicauth_from_netrc(netrc_from_env(), url.host).encode()
    return None


def error_detail(body: bytes) -> str:
    """The server's own words from an error body: {"error": {"message": ...}}, {"error": "..."}, or the text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        detail = data.get("error", data)
        if isinstance(detail, dict):
            detail = detail.get("message", detail)
        text = str(detail)
    return (text.splitlines() or ["(empty body)"])[0][:300]


def cause(error: Exception) -> str:
    return (str(error) or type(error).__name__).splitlines()[0][:300]
