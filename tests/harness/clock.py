"""The clock a test controls, handed to the code under test wherever it takes a `clock` / `now`.

Time-dependent behaviour (the 5-minute Unreachable rule, audit repeats, expiry) is driven by
stepping this clock, not by waiting: `Clock()` follows the wall clock plus an offset the test
advances (for code that also waits on real timers, such as a running operator), `Clock(start)`
stands still at `start` until the test moves it (for pure code and in-process apps).
"""

import threading
from datetime import UTC, datetime, timedelta


class Clock:
    """Callable as `clock()`; `now()` is the same, for APIs that take a bound method."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start
        self._offset = timedelta()
        # Operators read the clock from their own threads while the test advances it.
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            base = self._start if self._start is not None else datetime.now(tz=UTC)
            return base + self._offset

    __call__ = now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._offset += delta

    def set(self, moment: datetime) -> None:
        """Stand at exactly `moment`, its timezone included (a frozen clock only: a following
        clock moves on its own)."""
        assert self._start is not None, "set() is for a clock made with a start"
        with self._lock:
            self._start, self._offset = moment, timedelta()
