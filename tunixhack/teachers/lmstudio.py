"""LM Studio through its own Python SDK (`lmstudio`, async API), one websocket client shared by all requests.

Reasoning is separated by each streamed fragment's `reasoning_type`, not by splitting the joined content
(whether `<think>` shows up in it changed between LM Studio builds). Each fragment is watched as it comes
(teachers/watch.py): a loop or a reply past its budget is cancelled on the wire with the SDK's cancel. See ../../shared/notes/teachers.md.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time

import httpx
import lmstudio as lms
from httpx_ws import HTTPXWSException

from ..errors import FatalTeacherError, TransientError, UserError
from .reasoning import split_reasoning
from .base import Reply, Sampling, usage_dict
from .probe import PROBE_TIMEOUT_S, lmstudio_parallel
from .watch import Watch

LOCAL_SERVER = "localhost:1234"  # where `lms server start` listens; the SDK's own scan skips it
CANCEL_GRACE_S = 5.0  # after a cancel, how long to let the server close the prediction before giving up on it
FINISH = {
    "eosFound": "stop", "stopStringFound": "stop",
    "maxPredictedTokensReached": "length", "contextLengthReached": "length",
    "userStopped": "cancelled", "modelUnloaded": "error", "failed": "error", "toolCalls": "other",
}
# Server error codes that no retry can fix (LMStudioModelNotFoundError covers generic.noModelMatchingQuery).
PERMANENT_CODES = {"generic.pathNotFound", "generic.identifierNotFound", "generic.domainMismatch"}
# What a lost connection raises: the SDK does not wrap the errors of the libraries under it.
CONNECTION_ERRORS = (lms.LMStudioWebsocketError, lms.LMStudioTimeoutError, HTTPXWSException, httpx.HTTPError, OSError)
SDK_ERRORS = (lms.LMStudioError, *CONNECTION_ERRORS)
WATCHED = {"reasoning": "reasoning", "none": "answer"}  # fragment reasoning_type -> what the watch calls it


class ModelMissing(FatalTeacherError):
    """The server does not have the model: no retry helps."""


class Unreachable(TransientError):
    """No LM Studio answers there (yet: it may be restarting during a run)."""


class LMStudioTeacher:
    backend = "lmstudio"

    def __init__(self, host: str | None, model: str):
        self.host, self.model = host, model
        self.endpoint = f"lmstudio://{host or 'local'}"
        self._where = host or "localhost (LM Studio's own ports, then 1234)"
        self._loop = self._lock = self._client = self._llm = None
        self.reported_slots: int | None = None  # Max Concurrent Predictions, when LM Studio says

    async def check(self) -> None:
        """Connect and get (or load) the model once, before the run, so a bad setup fails in one line."""
        try:
            await self._connect()
        except Unreachable as exc:
            raise UserError(f"{exc}: start LM Studio (or `lms server start`), "
                            f"or pass --teacher lmstudio://HOST:PORT") from None
        except TransientError as exc:
            raise UserError(str(exc)) from None
        except ModelMissing as exc:
            try:
                available = [m.model_key for m in await asyncio.wait_for(self._client.llm.list_downloaded(), 10)]
            except Exception:  # the listing is only a hint
                available = []
            hint = f"; available: {', '.join(available)}" if available else "; see `lms ls`"
            raise FatalTeacherError(f"{exc}{hint}") from None

    async def reported_parallel(self) -> int | None:
        """The loaded model's `parallel` (Max Concurrent Predictions) from LM Studio's REST API on the same port:
        the SDK 1.5.0 does not expose it. None when this LM Studio does not say (before 0.4)."""
        try:
            host = await self._find_host()
            token = os.environ.get("LMSTUDIO_API_TOKEN")
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S, trust_env=False) as http:
                response = await http.get(f"http://{host}/api/v1/models", headers=headers)
        except (httpx.HTTPError, OSError, TransientError):
            return None
        self.reported_slots = lmstudio_parallel(response.text, self.model) if response.status_code == 200 else None
        return self.reported_slots

    async def complete(self, messages: list[dict], sampling: Sampling) -> Reply:
        llm, client = await self._connect(), self._client
        config = lms.LlmPredictionConfig(  # typed, so a misspelt key raises instead of being dropped
            max_tokens=sampling.max_tokens, temperature=sampling.temperature, top_p_sampling=sampling.top_p,
            top_k_sampling=sampling.top_k, min_p_sampling=sampling.min_p,
        )
        # Fragments by reasoning_type: none, reasoning, reasoningStartTag, reasoningEndTag.
        parts: dict[str, list] = {"none": [], "reasoning": [], "reasoningStartTag": [], "reasoningEndTag": []}
        watch, stop_now = Watch(sampling.budget), asyncio.Event()

        def on_fragment(fragment) -> None:  # called in this event loop, as each fragment arrives
            parts.setdefault(fragment.reasoning_type, []).append(fragment)
            part = WATCHED.get(fragment.reasoning_type)
            if part and watch.stop is None and watch.feed(part, fragment.content, fragment.tokens_count or 1):
                stop_now.set()

        started = time.monotonic()
        result = None
        try:
            stream = await llm.respond_stream(lms.Chat.from_history({"messages": messages}), config=config,
                                              on_prediction_fragment=on_fragment)
            await stream.start()  # the request is on the wire from here, so a cancel below can reach it
            task = asyncio.ensure_future(stream.wait_for_result())
            stopper = asyncio.ensure_future(stop_now.wait())
            try:
                # asyncio.wait leaves the task running when this request is cancelled: a cancelled iteration
                # would only close the channel locally, and the server would go on generating; the prediction
                # must be cancelled on the wire.
                await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                await stop_prediction(stream, task)
                raise
            finally:
                stopper.cancel()
            if watch.stop:  # a loop, or past the budget: cancelled on the wire at once
                await stop_prediction(stream, task)
                result = task.result() if task.done() and not task.cancelled() and not task.exception() else None
            else:
                result = task.result()
        except SDK_ERRORS as exc:
            if isinstance(exc, lms.LMStudioServerError):  # e.g. the model was evicted: get or load it again
                self._llm = None
            raise await self._failure(exc, client) from None

        reasoning, answer = joined(parts["reasoning"]), joined(parts["none"])
        thinking = bool(parts["reasoning"] or parts["reasoningStartTag"])
        closed = bool(parts["reasoningEndTag"]) or not thinking
        if not thinking:  # a model or build that types no fragment as reasoning: fall back to the tags
            reasoning, answer, closed = split_reasoning(answer)
        if watch.stop:
            stats = result.stats if result is not None else None
            return Reply(
                content=answer, reasoning=reasoning, finish="cancelled", thinking_closed=closed, model=self.model,
                endpoint=self.endpoint, backend=self.backend, stopped=watch.stop,
                usage=usage_dict(stats and stats.prompt_tokens_count,
                                 (stats and stats.predicted_tokens_count) or watch.completion_tokens,
                                 time.monotonic() - started, reasoning_tokens=watch.tokens["reasoning"]),
            )
        stats = result.stats
        return Reply(
            content=answer, reasoning=reasoning, finish=FINISH.get(stats.stop_reason, "other"),
            thinking_closed=closed, model=self.model, endpoint=self.endpoint, backend=self.backend,
            usage=usage_dict(
                stats.prompt_tokens_count, stats.predicted_tokens_count, time.monotonic() - started,
                reasoning_tokens=sum(f.tokens_count for f in parts["reasoning"]),
                tokens_per_second=stats.tokens_per_second,
            ),
        )

    async def close(self) -> None:
        client, self._client, self._llm = self._client, None, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await close_quietly(client)

    async def _connect(self):
        """The model handle on the shared client, which is opened on first use inside the running loop."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a client belongs to the event loop that opened it
            self._loop, self._lock, self._client, self._llm = loop, asyncio.Lock(), None, None
        async with self._lock:
            try:
                if self._client is None:
                    client = lms.AsyncClient(await self._find_host(), **api_token())
                    try:
                        await client.__aenter__()
                    except BaseException:
                        await close_quietly(client)
                        raise
                    self._client = client
                if self._llm is None:
                    self._llm = await self._client.llm.model(self.model)
            except SDK_ERRORS as exc:
                raise await self._failure(exc, self._client) from None
            return self._llm

    async def _find_host(self) -> str:
        if self.host:
            candidates = [self.host]
        else:  # the SDK's scan of LM Studio's internal ports, then the port of `lms server start`
            candidates = [await lms.AsyncClient.find_default_local_api_host(), LOCAL_SERVER]
        for host in filter(None, candidates):
            try:
                if await lms.AsyncClient.is_valid_api_host(host):
                    return host
            except Exception:  # something else answers on that port
                pass
        raise Unreachable(f"LM Studio is not reachable at {self._where}")

    async def _failure(self, exc: Exception, client) -> Exception:
        """The error the runner acts on: retry (TransientError) or stop the run (FatalTeacherError)."""
        line = one_line(exc)
        code = getattr(getattr(exc, "server_error", None), "display_data", None) or {}
        if isinstance(exc, lms.LMStudioModelNotFoundError) or code.get("code") in PERMANENT_CODES:
            return ModelMissing(f"LM Studio at {self._where} has no model {self.model!r} ({line})")
        if isinstance(exc, CONNECTION_ERRORS):
            if client is not None and client is self._client:  # a broken websocket stays broken: reconnect
                self._client = self._llm = None
                await close_quietly(client)
            return TransientError(f"LM Studio at {self._where}: {line}")
        if isinstance(exc, lms.LMStudioServerError):
            return TransientError(f"LM Studio at {self._where} failed: {line}")
        return FatalTeacherError(f"LM Studio at {self._where}: {line}")


async def stop_prediction(stream, task: asyncio.Future) -> None:
    """Best effort: send the cancel, let the server end the prediction, and never leave the task behind."""
    try:
        await stream.cancel()
        await asyncio.wait([task], timeout=CANCEL_GRACE_S)
    except (Exception, asyncio.CancelledError):
        pass
    finally:
        if not task.done():
            task.cancel()
        elif not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it


def joined(fragments: list) -> str:
    return "".join(f.content for f in fragments).strip()


async def close_quietly(client) -> None:
    try:
        await client.aclose()
    except Exception:
        pass


def api_token() -> dict:
    """LMSTUDIO_API_TOKEN for SDKs that take one (1.6+); 1.5.0 has no auth tokens."""
    token = os.environ.get("LMSTUDIO_API_TOKEN")
    return {"api_token": token} if token and "api_token" in inspect.signature(lms.AsyncClient).parameters else {}


def one_line(exc: Exception) -> str:
    details = getattr(exc, "server_error", None)
    if details is not None and details.title:
        return f"{details.title}: {details.cause}" if details.cause else str(details.title)
    return " ".join(str(exc).split())[:300] or type(exc).__name__
