"""Spread requests over several teacher endpoints, and retry the ones that can succeed on retry.

Each request goes to the endpoint with the fewest requests in flight. An endpoint that fails several
times in a row is benched for a while (with a warning) while the others carry on; the bench time doubles
each time it is benched again. Only TransientError is retried, with capped exponential backoff and jitter.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from .errors import TransientError
from .teachers.base import Reply, Sampling

BENCH_AFTER = 5          # consecutive failures before an endpoint is benched
BENCH_SECONDS = 30.0     # first bench; doubles each time, up to MAX_BENCH
MAX_BENCH = 600.0


@dataclass
class Endpoint:
    teacher: object
    in_flight: int = 0
    requests: int = 0
    ok: int = 0
    failed: int = 0
    streak: int = 0          # consecutive failures
    benched_until: float = 0.0
    bench_seconds: float = BENCH_SECONDS
    completion_tokens: int = 0

    def stats(self) -> dict:
        return {"requests": self.requests, "ok": self.ok, "failed": self.failed,
                "completion_tokens": self.completion_tokens}


class Router:
    def __init__(self, teachers: list, retries: int = 5, backoff: float = 1.0, max_backoff: float = 60.0, warn=print):
        self.endpoints = [Endpoint(t) for t in teachers]
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.warn = warn

    def pick(self) -> Endpoint:
        now = time.monotonic()
        active = [e for e in self.endpoints if e.benched_until <= now]
        # With everything benched, use the one that comes back first rather than stalling.
        pool = active or [min(self.endpoints, key=lambda e: e.benched_until)]
        return min(pool, key=lambda e: e.in_flight)

    async def complete(self, messages: list[dict], sampling: Sampling) -> Reply:
        """One reply, retrying transient failures; raises the last TransientError when retries run out."""
        for attempt in range(self.retries + 1):
            endpoint = self.pick()
            endpoint.in_flight += 1
            endpoint.requests += 1
            try:
                reply = await asyncio.wait_for(endpoint.teacher.complete(messages, sampling), sampling.timeout)
            except (TransientError, asyncio.TimeoutError) as e:
                error = e if isinstance(e, TransientError) else TransientError(
                    f"{endpoint.teacher.endpoint}: no reply within {sampling.timeout:g}s (request cancelled)")
                self._failed(endpoint, error)
                if attempt == self.retries:
                    raise error from None
                delay = min(self.max_backoff, self.backoff * 2**attempt)
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                continue
            finally:
                endpoint.in_flight -= 1
            endpoint.ok += 1
            endpoint.streak = 0
            endpoint.bench_seconds = BENCH_SECONDS
            endpoint.completion_tokens += reply.usage.get("completion_tokens") or 0
            return reply
        raise AssertionError("unreachable")

    def _failed(self, endpoint: Endpoint, error: TransientError) -> None:
        endpoint.failed += 1
        endpoint.streak += 1
        if len(self.endpoints) > 1 and endpoint.streak >= BENCH_AFTER and endpoint.benched_until <= time.monotonic():
            endpoint.benched_until = time.monotonic() + endpoint.bench_seconds
            self.warn(f"warning: {endpoint.teacher.endpoint} failed {endpoint.streak} times in a row ({error}); "
                      f"out of rotation for {endpoint.bench_seconds:g}s")
            endpoint.bench_seconds = min(MAX_BENCH, endpoint.bench_seconds * 2)
            endpoint.streak = 0

    def stats(self) -> dict:
        return {e.teacher.endpoint: e.stats() for e in self.endpoints}
