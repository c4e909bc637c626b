"""Spread requests over several teacher endpoints, within each one's concurrency limit, and retry the ones
that can succeed on retry.

Each request goes to the endpoint with the most free room under its limit (tunixhack/teachers/concurrency.py: fixed or
adaptive); when every endpoint is full, requests wait in line, first come first served. A slot is held only
while a request is on the wire, never during a retry's backoff. An endpoint that fails several times in a row is
benched for a while (with a warning) while the others carry on; the bench time doubles each time it is benched
again. Only TransientError is retried, with capped exponential backoff and jitter.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from dataclasses import dataclass, field

from .concurrency import FixedLimit
from ..errors import TransientError
from .base import Reply, Sampling

BENCH_AFTER = 5          # consecutive failures before an endpoint is benched
BENCH_SECONDS = 30.0     # first bench; doubles each time, up to MAX_BENCH
MAX_BENCH = 600.0
OVERLOAD = ("HTTP 429", "HTTP 503", "no reply within")  # what says the server is past its capacity
UNLIMITED = 1 << 30


@dataclass
class RetryPolicy:
    retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0


@dataclass
class Endpoint:
    teacher: object
    limit: object = field(default_factory=lambda: FixedLimit(UNLIMITED))
    in_flight: int = 0
    peak: int = 0            # most requests in flight at once
    requests: int = 0
    ok: int = 0
    failed: int = 0
    streak: int = 0          # consecutive failures
    benched_until: float = 0.0
    bench_seconds: float = BENCH_SECONDS
    completion_tokens: int = 0

    @property
    def room(self) -> int:
        return self.limit.limit - self.in_flight

    def stats(self) -> dict:
        limit = None if self.limit.limit >= UNLIMITED else self.limit.limit
        if limit is not None and self.limit.adaptive and self.peak:
            limit = min(limit, self.peak)  # where auto settled is what ran at once, never a limit no request used
        return {"requests": self.requests, "ok": self.ok, "failed": self.failed,
                "completion_tokens": self.completion_tokens,
                "concurrency": limit,
                "concurrency_mode": "auto" if self.limit.adaptive else "fixed", "peak_in_flight": self.peak}


class Router:
    def __init__(self, teachers: list, retries: int = 5, backoff: float = 1.0, warn=print, limits: list | None = None):
        """`limits`: one FixedLimit or AdaptiveLimit per teacher; None: no limit here (the caller bounds it)."""
        self.endpoints = [Endpoint(t) if limits is None else Endpoint(t, limit)
                          for t, limit in zip(teachers, limits or [None] * len(teachers))]
        self.policy = RetryPolicy(retries, backoff)
        self.warn = warn
        self._waiting: deque[asyncio.Future] = deque()

    @property
    def retries(self) -> int:
        return self.policy.retries

    def capacity(self) -> int:
        """Requests all endpoints take at once now (for sizing how many rows to have ready)."""
        return sum(e.limit.limit for e in self.endpoints)

    def settled(self) -> str:
        """The concurrency of each endpoint, for the progress line: '16' or '16+8'."""
        return "+".join(str(e.limit.limit) for e in self.endpoints)

    async def complete(self, messages: list[dict], sampling: Sampling) -> Reply:
        """One reply, retrying transient failures; raises the last TransientError when retries run out."""
        for attempt in range(self.policy.retries + 1):
            endpoint = await self._acquire()
            ticket = endpoint.limit.start(endpoint.in_flight)
            started = time.monotonic()
            try:
                async with asyncio.timeout(sampling.timeout):  # cancels the request in place: no extra task
                    reply = await endpoint.teacher.complete(messages, sampling)
            except (TransientError, asyncio.TimeoutError) as e:
                error = e if isinstance(e, TransientError) else TransientError(
                    f"{endpoint.teacher.endpoint}: no reply within {sampling.timeout:g}s (request cancelled)")
                endpoint.limit.failed(ticket, overload=any(sign in str(error) for sign in OVERLOAD))
                self._failed(endpoint, error)
                self._release(endpoint)
                if attempt == self.policy.retries:
                    raise error from None
                delay = min(self.policy.max_backoff, self.policy.backoff * 2**attempt)
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                continue
            except BaseException:
                endpoint.limit.failed(ticket, overload=False)
                self._release(endpoint)
                raise
            tokens = reply.usage.get("completion_tokens") or 0
            endpoint.limit.finished(ticket, time.monotonic() - started, tokens)
            self._release(endpoint)
            endpoint.ok += 1
            endpoint.streak = 0
            endpoint.bench_seconds = BENCH_SECONDS
            endpoint.completion_tokens += tokens
            return reply
        raise AssertionError("unreachable")

    def _pick(self) -> Endpoint | None:
        """The endpoint with the most room, benched ones last; None when all are full."""
        now = time.monotonic()
        active = [e for e in self.endpoints if e.benched_until <= now]
        # With everything benched, use the one that comes back first rather than stalling.
        pool = active or [min(self.endpoints, key=lambda e: e.benched_until)]
        endpoint = max(pool, key=lambda e: e.room)
        return endpoint if endpoint.room > 0 else None

    async def _acquire(self) -> Endpoint:
        endpoint = None if self._waiting else self._pick()
        if endpoint is None:
            for e in self.endpoints:
                e.limit.queued()
            ticket = asyncio.get_running_loop().create_future()
            self._waiting.append(ticket)
            try:
                endpoint = await ticket
            except asyncio.CancelledError:
                if ticket.done() and not ticket.cancelled():  # handed a slot just as it was cancelled
                    self._release(ticket.result())
                raise
            return endpoint  # _wake counted it in already
        self._take(endpoint)
        return endpoint

    def _take(self, endpoint: Endpoint) -> None:
        endpoint.in_flight += 1
        endpoint.requests += 1
        endpoint.peak = max(endpoint.peak, endpoint.in_flight)

    def _release(self, endpoint: Endpoint) -> None:
        endpoint.in_flight -= 1
        # Hand free slots to those in line (a slot freed, or an adaptive limit that rose).
        while self._waiting:
            if self._waiting[0].done():  # its request was cancelled while waiting
                self._waiting.popleft()
                continue
            free = self._pick()
            if free is None:
                return
            self._take(free)
            self._waiting.popleft().set_result(free)

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
