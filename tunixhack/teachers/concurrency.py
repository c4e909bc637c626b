"""How many requests each endpoint has in flight: fixed (`--concurrency N`) or adaptive (`--concurrency auto`).

The adaptive limit starts from what the server reports (LM Studio's `parallel`, a vLLM start; see
teachers/probe.py) or from START_UNKNOWN, then climbs a hill by measurement. Each window of replies started at
one limit gives a throughput by Little's law, X = (requests in flight) x (tokens, or rows, per second of one
request): when more requests in flight only make each one slower (they queue in the server), X stops rising.
Replies started while requests of the previous limit were still in flight are not counted (they would
measure the change, not the limit), nor the very first ones (they find the server idle).
- Slow start: double the limit while X keeps rising by more than GAIN.
- A step up that does not pay goes back to the best limit, which then holds for a number of windows (doubling
  after each unpaid probe), and probes again, one small step down and one up in turn: down is kept when it
  costs under GAIN/2 (fewer requests queue in the server), up when it pays GAIN (the server may have freed up).
- Replies slower per token by SLOWER at the same limit (someone else is using the server) probe down at once.
- 429, 503 and timeouts cut the limit by BACKOFF at once, whatever the measurements say.
- The limit rises only when requests waited in line for it since the last window (`queued`): more room than
  the client fills measures nothing and would only be reported.
The limit never leaves [1, ceiling] (`--max-concurrency`, or the slots the server reports it has: requests
beyond them only queue in the server).
"""

from __future__ import annotations

from dataclasses import dataclass

START_UNKNOWN = 8       # a server that says nothing: twice LM Studio's default 4 slots (extra requests queue there)
GAIN = 0.1              # a step up must raise throughput by 10% to count (a step down may cost 5%)
SLOWER = 1.5            # at the same limit, replies this much slower per token mean congestion: probe down
BACKOFF = 0.7           # the limit after an overload signal, as a share of the limit the request started under
HOLD_WINDOWS = 8        # windows to stay at a settled limit before probing again
MIN_WINDOW = 8          # replies per measurement (at least the limit itself, so each slot is seen)
SLOW_START_WINDOW = 4   # the same while doubling
FULL = 0.8              # a window whose requests saw fewer in flight than this share of the limit says nothing


@dataclass
class Ticket:
    """One request's start: the limit epoch it started under, how many were in flight with it, and whether
    all of those started under the same limit (right after a change, the server still holds requests of the
    old limit: the first replies of a new limit would measure the change, not the limit)."""
    epoch: int
    in_flight: int
    clean: bool = True


@dataclass
class Point:
    limit: int
    throughput: float
    pace: float           # seconds per token (or per row) of one request, the queueing signal


class FixedLimit:
    """`--concurrency N`: today's behaviour, N in flight, whatever happens."""

    adaptive = False

    def __init__(self, limit: int):
        self.limit = limit

    def start(self, in_flight: int) -> Ticket:
        return Ticket(0, in_flight)

    def finished(self, ticket: Ticket, seconds: float, tokens: int | None) -> None:
        pass

    def failed(self, ticket: Ticket, overload: bool) -> None:
        pass

    def queued(self) -> None:
        pass


class AdaptiveLimit:
    adaptive = True

    def __init__(self, start: int, ceiling: int):
        self.ceiling = max(1, ceiling)
        self.limit = min(max(1, start), self.ceiling)
        self.epoch = 0
        self.best: Point | None = None   # the settled limit and what it gave
        self.slow_start = True
        self.hold = self.hold_windows = HOLD_WINDOWS
        self.probe_up = False            # the next probe's direction; they alternate
        self._samples: list[tuple[int, float, int | None]] = []  # (in flight, seconds, tokens) this epoch
        self._in_flight = 0
        self._older = 0                  # requests in flight that started under an earlier limit
        self._filling = self.limit       # the first requests find the server idle: they measure no queue
        self._wanted = False             # a request waited in line since the last window: more room would be used

    def start(self, in_flight: int) -> Ticket:
        self._in_flight += 1
        clean = self._older == 0 and self._filling == 0
        self._filling = max(0, self._filling - 1)
        return Ticket(self.epoch, in_flight, clean)

    def finished(self, ticket: Ticket, seconds: float, tokens: int | None) -> None:
        self._in_flight -= 1
        if ticket.epoch != self.epoch:
            self._older -= 1
            return  # started under another limit: it measures that one
        if not ticket.clean:
            return
        self._samples.append((ticket.in_flight, max(seconds, 1e-6), tokens))
        # While doubling, a step pays twice over or not at all: a reply from half the slots tells.
        if len(self._samples) >= (max(SLOW_START_WINDOW, self.limit // 2) if self.slow_start
                                  else max(MIN_WINDOW, self.limit)):
            now = self._measure()
            if now is not None:
                self._decide(now)
            self._wanted = False

    def queued(self) -> None:
        """A request had to wait for room (the router tells)."""
        self._wanted = True

    def failed(self, ticket: Ticket, overload: bool) -> None:
        """A request that did not finish. overload: 429 / 503 / timeout, the server is past what it can take."""
        self._in_flight -= 1
        if ticket.epoch != self.epoch:
            self._older -= 1
            return  # the cut for that limit was made already
        if not overload:
            return
        self.slow_start, self.best = False, None
        self.hold = self.hold_windows = HOLD_WINDOWS
        self._set(int(self.limit * BACKOFF))

    def _measure(self) -> Point | None:
        samples, self._samples = self._samples, []
        in_flight = sum(s[0] for s in samples) / len(samples)
        if in_flight < FULL * self.limit:
            return None  # the client had too few rows waiting to fill the limit: no news about the server
        tokens = [s[2] for s in samples]
        seconds = sum(s[1] for s in samples)
        work = sum(tokens) if all(tokens) else len(samples)  # tokens when the server counts them, else rows
        return Point(self.limit, in_flight * work / seconds, seconds / work)

    def _decide(self, now: Point) -> None:
        best = self.best
        if best is None or now.limit == best.limit:
            return self._settled(now)
        if now.limit > best.limit:
            gained = now.throughput > best.throughput * (1 + GAIN)
        else:  # lower is better when it costs nothing: fewer requests queue in the server
            gained = now.throughput >= best.throughput * (1 - GAIN / 2)
        if gained:
            self.best, self.hold_windows = now, HOLD_WINDOWS
            going_up = now.limit > best.limit
            return self._set(now.limit * 2 if self.slow_start else now.limit + (1 if going_up else -1) * step(now.limit))
        # the probe did not pay: back to the best limit, and wait longer before the next probe
        self.probe_up = now.limit < best.limit
        self.slow_start = False
        self.hold_windows = min(8 * HOLD_WINDOWS, 2 * self.hold_windows)
        self.hold = self.hold_windows
        self._set(best.limit)

    def _settled(self, now: Point) -> None:
        best = self.best
        if best is not None and now.pace > SLOWER * best.pace and now.throughput <= best.throughput:
            self.best = now  # replies slowed at the same limit: someone else shares the server; try fewer
            self.probe_up, self.hold = False, 0
        else:
            self.best = Point(now.limit, now.throughput, min(now.pace, best.pace) if best else now.pace)
        if self.slow_start:
            return self._set(now.limit * 2)
        self.hold -= 1
        if self.hold > 0:
            return
        self.hold = self.hold_windows
        self._set(now.limit + (1 if self.probe_up else -1) * step(now.limit))
        self.probe_up = not self.probe_up if self.limit == now.limit else self.probe_up  # at a bound: turn

    def _set(self, limit: int) -> None:
        limit = min(max(1, limit), self.ceiling)
        if limit > self.limit and not self._wanted:
            return  # nobody waited for more room: a higher limit would go unused
        if limit != self.limit:  # the same limit goes on measuring: replies in flight still count
            self.limit = limit
            self.epoch += 1
            self._samples = []
            self._older = self._in_flight


def step(limit: int) -> int:
    return max(1, limit // 4)
