"""Any OpenAI-compatible server (vLLM, llama.cpp, LM Studio's REST API, Ollama, DeepSeek, OpenRouter...).

Streams every request so that a timeout or Ctrl-C closes the connection and the server stops generating.
The client's own retries are off: only the runner retries, with a cap and backoff.
"""

from __future__ import annotations

import json
import os
import time

import httpx2  # the openai package's own HTTP layer (openai >= 3)
import openai

from ..errors import FatalTeacherError, TransientError, UserError
from ..reasoning import split_reasoning
from .base import Reply, Sampling, usage_dict

FINISH = {"stop": "stop", "length": "length", "content_filter": "other", "tool_calls": "other"}


class OpenAITeacher:
    backend = "openai"

    def __init__(self, base_url: str, model: str):
        self.endpoint = base_url.rstrip("/")
        self.model = model
        self._client: openai.AsyncOpenAI | None = None

    @property
    def client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            self._client = openai.AsyncOpenAI(
                base_url=self.endpoint,
                # Local servers ignore the key, but the client insists on one.
                api_key=os.environ.get("OPENAI_API_KEY") or "not-needed",
                max_retries=0,
                timeout=openai.Timeout(None, connect=10.0),  # the runner times the whole request
            )
        return self._client

    async def check(self) -> None:
        try:
            served = [m.id async for m in self.client.models.list()]
        except openai.APIConnectionError as e:
            raise UserError(f"cannot reach the teacher at {self.endpoint}: {_cause(e)}; is the server running?") from None
        except openai.NotFoundError:
            return  # some servers have no /models; the first request will tell
        except openai.APIStatusError as e:
            raise _classify(e, self) from None
        if served and self.model not in served:
            raise FatalTeacherError(f"model {self.model!r} is not served at {self.endpoint}; it serves: {', '.join(served)}")

    async def complete(self, messages: list[dict], sampling: Sampling) -> Reply:
        start = time.monotonic()
        content: list[str] = []
        reasoning: list[str] = []
        finish = usage = None
        try:
            # The raw stream, one json.loads per line: the typed chunk objects cost about a third of the
            # client's CPU per request, and a long reply is a thousand chunks.
            async with self.client.chat.completions.with_streaming_response.create(
                model=self.model,
                messages=messages,
                max_tokens=sampling.max_tokens,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                stream=True,
                stream_options={"include_usage": True},
                extra_body={"top_k": sampling.top_k, "min_p": sampling.min_p},
            ) as response:  # leaving it closes the connection: on cancel, the server stops generating
                async for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if chunk.get("error"):
                        raise TransientError(f"{self.endpoint}: error mid-reply: {str(chunk['error'])[:300]}")
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or ():
                        delta = choice.get("delta") or {}
                        if delta.get("content"):
                            content.append(delta["content"])
                        thought = delta.get("reasoning_content") or delta.get("reasoning")
                        if thought:
                            reasoning.append(thought)
                        finish = choice.get("finish_reason") or finish
        except openai.APIStatusError as e:
            raise _classify(e, self) from None
        except (openai.APIConnectionError, httpx2.TransportError) as e:
            raise TransientError(f"{self.endpoint}: {_cause(e)}") from None
        except json.JSONDecodeError as e:
            raise TransientError(f"{self.endpoint}: unreadable stream chunk ({e})") from None
        if finish is None:
            raise TransientError(f"{self.endpoint}: the reply ended without a finish reason")
        seconds = time.monotonic() - start
        thinking, answer, closed = split_reasoning("".join(content), "".join(reasoning) or None)
        finish = FINISH.get(finish, "other")
        if finish == "length" and not answer:
            closed = False  # cut off while still thinking: the server never saw </think>
        usage = usage or {}
        details = usage.get("completion_tokens_details") or {}
        return Reply(
            content=answer,
            reasoning=thinking,
            finish=finish,
            thinking_closed=closed,
            model=self.model,
            endpoint=self.endpoint,
            backend=self.backend,
            usage=usage_dict(
                usage.get("prompt_tokens"),
                usage.get("completion_tokens"),
                seconds,
                reasoning_tokens=details.get("reasoning_tokens"),
            ),
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def _classify(error: openai.APIStatusError, teacher: OpenAITeacher) -> Exception:
    """429, 408, 409 and 5xx can pass; anything else (unknown model, bad request, auth) cannot."""
    status = error.status_code
    message = f"{teacher.endpoint}: HTTP {status}: {_cause(error)}"
    if status in (408, 409, 429) or status >= 500:
        return TransientError(message)
    if status == 404:
        return FatalTeacherError(f"model {teacher.model!r} not found at {teacher.endpoint} (HTTP 404: {_cause(error)})")
    if status in (401, 403):
        return FatalTeacherError(f"{message} (set OPENAI_API_KEY for this server)")
    return FatalTeacherError(message)


def _cause(error: Exception) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        detail = body.get("error", body)
        if isinstance(detail, dict):
            detail = detail.get("message", detail)
        return str(detail).splitlines()[0][:300]
    root = error.__cause__ or error.__context__ or error
    return (str(root) or type(root).__name__).splitlines()[0][:300]
