"""Progress of a run on stderr: a tqdm bar on a terminal; one plain line about every PLAIN_EVERY seconds
when stderr is a file or a pipe (a bar there is one line of carriage returns, megabytes long).
TQDM_DISABLE=1 in the environment silences both.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from tqdm import tqdm

PLAIN_EVERY = 10.0     # seconds between plain progress lines
POSTFIX_EVERY = 0.5    # seconds between refreshes of the bar's counts


def duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    def __init__(self, total: int, done_before: int, describe: Callable[[], str], stream=None,
                 every: float = PLAIN_EVERY, started: float | None = None):
        """`describe()` gives the counts after the row totals: 'ok 12 rej 3 err 0 | 800 tok/s | concurrency 16'.
        `started`: the run's clock (time.monotonic()), which the summary's rows/s is measured from too."""
        self.stream = stream or sys.stderr
        self.every = every
        self.total, self.done_before, self.count = total, done_before, 0
        self.describe = describe
        self.started = time.monotonic() if started is None else started
        self._last = time.monotonic()
        disabled = os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false")
        self.bar = None
        self.plain = not disabled and not self.stream.isatty()
        if not disabled and not self.plain:
            self.bar = tqdm(total=total, initial=done_before, unit="row", dynamic_ncols=True, smoothing=0.05,
                            file=self.stream)

    def update(self, n: int = 1) -> None:
        self.count += n
        if self.bar is not None:
            self.bar.update(n)
        self.tick()

    def tick(self) -> None:
        """Refresh what is shown, when it is time (called per row and once a second)."""
        now = time.monotonic()
        if self.bar is not None and now - self._last >= POSTFIX_EVERY:
            self._last = now
            self.bar.set_postfix_str(self.describe(), refresh=False)
        elif self.plain and now - self._last >= self.every:
            self._last = now
            self._line(now)

    def write(self, message: str) -> None:
        """A warning that does not break the bar."""
        tqdm.write(message, file=self.stream)

    def close(self, now: float | None = None) -> None:
        """The last line, at `now` (the moment the summary is taken): the summary's rows and rows/s."""
        now = time.monotonic() if now is None else now
        if self.bar is not None:
            self.bar.set_postfix_str(self.describe(), refresh=False)
            self.bar.close()
        elif self.plain and self.count:
            self._line(now)

    def _line(self, now: float) -> None:
        done = self.done_before + self.count
        elapsed = now - self.started
        rate = self.count / elapsed if elapsed > 0 else 0.0
        share = f" ({100 * done / self.total:.1f}%)" if self.total else ""
        eta = f" | eta {duration((self.total - done) / rate)}" if rate > 0 and self.total > done else ""
        print(f"progress: {done:,}/{self.total:,} rows{share} | {self.describe()} | {rate:.2f} rows/s{eta}",
              file=self.stream, flush=True)
