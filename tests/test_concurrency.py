"""tunixhack/teachers/concurrency.py: the adaptive limit against a simulated server (S slots, a fixed time per reply,
requests beyond S wait in line), in simulated time: where it settles, that it never passes its ceiling, and
how it backs off. The same limit against a real server over HTTP is in tests/test_generate_scale.py."""

from __future__ import annotations

import heapq

import pytest

from tunixhack.teachers.concurrency import BACKOFF, START_UNKNOWN, AdaptiveLimit, FixedLimit


def simulate(limit, slots, replies: int, latency: float = 0.2, tokens: int = 100, on_reply=None, demand=None):
    """Keep limit.limit requests in flight against the server (the client has `demand` rows ready to send,
    or always more than the limit); returns (limits seen, reply times)."""
    now, running, done = 0.0, [], []   # running: heap of (finish time, id, ticket, started)
    waiting, in_flight, seen, next_id = [], 0, [], 0
    while len(done) < replies:
        while in_flight < min(limit.limit, demand or limit.limit):  # the client fills its limit
            ticket = limit.start(in_flight + 1)
            waiting.append((next_id, ticket, now))
            next_id, in_flight = next_id + 1, in_flight + 1
        if demand is None or demand > limit.limit:
            limit.queued()  # rows wait in the client for room
        while waiting and len(running) < slots:  # the server takes what its slots allow, first come first served
            rid, ticket, started = waiting.pop(0)
            heapq.heappush(running, (now + latency, rid, ticket, started))
        now, rid, ticket, started = heapq.heappop(running)
        in_flight -= 1
        limit.finished(ticket, now - started, tokens)
        done.append(now)
        seen.append(limit.limit)
        if on_reply:
            slots = on_reply(len(done), slots)
    return seen, done


def rate(done: list[float], last: int) -> float:
    return (last - 1) / (done[-1] - done[-last])


@pytest.mark.parametrize("slots", [1, 4, 16, 64])
def test_settles_where_the_server_stops_gaining(slots):
    limit = AdaptiveLimit(START_UNKNOWN, ceiling=256)
    seen, done = simulate(limit, slots, replies=60 * slots + 400)
    settled = max(set(seen[len(seen) // 2:]), key=seen[len(seen) // 2:].count)  # most of the time, probes aside
    assert settled == slots, seen[::50]
    assert rate(done, 20 * slots + 100) >= 0.95 * slots / 0.2  # the slots stay busy once settled


def test_never_passes_its_ceiling():
    limit = AdaptiveLimit(START_UNKNOWN, ceiling=24)
    seen, done = simulate(limit, slots=200, replies=3000)
    assert max(seen) == 24 and seen[-1] == 24


def test_starts_from_what_the_server_reports_within_the_ceiling():
    assert AdaptiveLimit(5, ceiling=256).limit == 5
    assert AdaptiveLimit(64, ceiling=16).limit == 16
    assert AdaptiveLimit(0, ceiling=16).limit == 1


def test_overload_cuts_the_limit_at_once_and_once_per_limit():
    limit = AdaptiveLimit(20, ceiling=256)
    tickets = [limit.start(i + 1) for i in range(20)]
    limit.failed(tickets[0], overload=True)
    assert limit.limit == int(20 * BACKOFF) == 14
    limit.failed(tickets[1], overload=True)  # started under the old limit: that cut is made
    assert limit.limit == 14
    limit.failed(limit.start(14), overload=False)  # a failure that says nothing of capacity
    assert limit.limit == 14
    limit.failed(limit.start(14), overload=True)
    assert limit.limit == int(14 * BACKOFF)


def test_comes_down_when_the_server_gets_busier():
    # 64 free slots, then someone else takes 48 of them: replies slow down and the limit follows.
    limit = AdaptiveLimit(START_UNKNOWN, ceiling=256)
    seen, _ = simulate(limit, slots=64, replies=12000, on_reply=lambda n, slots: 16 if n > 3000 else slots)
    assert 64 <= seen[2999] <= 128
    assert seen[-1] <= 32, seen[3000::500]


def test_fixed_is_fixed():
    limit = FixedLimit(7)
    seen, _ = simulate(limit, slots=2, replies=200)
    limit.failed(limit.start(1), overload=True)
    assert set(seen) == {7} and limit.limit == 7


def test_auto_does_not_rise_past_what_the_client_sends():
    # Issue 16: "settled at 128 (peak 64 in flight)". A client with 6 rows ready never fills a limit of 8, so
    # the limit has nothing to measure above 6 and must not climb (nor be reported above what ran).
    limit = AdaptiveLimit(START_UNKNOWN, ceiling=256)
    seen, _ = simulate(limit, slots=64, replies=400, demand=6)
    assert max(seen) == START_UNKNOWN


def test_auto_never_climbs_past_the_slots_a_server_reports():
    limit = AdaptiveLimit(8, ceiling=8)   # the engine's ceiling when the server says it has 8 slots
    seen, _ = simulate(limit, slots=8, replies=2000)
    assert max(seen) == 8 and seen[-1] >= 6
