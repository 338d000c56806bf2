"""Repeated failures from one source, aggregated per interval, so that the audit log cannot be
used to flood the disk (docs/security.md, the audit-log flooding threat).

The first `full_lines` failures of a kind (source, certificate, route, result, factor) in an
interval are written in full (a handful of failures stays fully diagnosable); more of the same
within the interval only count; once the interval has passed, one summary line carries the count.
At most `max_kinds` kinds are tracked (the least recently started are summarised early), so a
flood of distinct sources cannot grow memory.
Pure: the caller passes a monotonic clock value.
"""

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

DEFAULT_INTERVAL_SECONDS: Final = 10.0
DEFAULT_FULL_LINES: Final = 5
DEFAULT_MAX_KINDS: Final = 10_000

Kind = tuple[str, str | None, str, str, str]  # (source, thumbprint, route, result, factor)


@dataclass(slots=True)
class _Open:
    started: float
    written: int = 1
    count: int = 0


@dataclass(frozen=True, slots=True)
class Summary:
    kind: Kind
    count: int  # failures beyond those written in full
    seconds: float


class Repeats:
    def __init__(
        self,
        *,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        full_lines: int = DEFAULT_FULL_LINES,
        max_kinds: int = DEFAULT_MAX_KINDS,
    ) -> None:
        self._interval = interval
        self._full_lines = full_lines
        self._max_kinds = max_kinds
        self._open: OrderedDict[Kind, _Open] = OrderedDict()
        self._ready: list[Summary] = []

    def hold(self, kind: Kind, *, now: float) -> bool:
        """True: this failure only counts (`full_lines` like it were written within the interval)."""
        current = self._open.get(kind)
        if current is not None and now - current.started < self._interval:
            if current.written < self._full_lines:
                current.written += 1
                return False
            current.count += 1
            return True
        if current is not None:
            self._close(kind, current, now)
        self._open[kind] = _Open(started=now)
        while len(self._open) > self._max_kinds:
            oldest, entry = self._open.popitem(last=False)
            if entry.count:
                self._ready.append(Summary(oldest, entry.count, now - entry.started))
        return False

    def due(self, *, now: float) -> list[Summary]:
        """Summaries whose interval has passed (and any closed early), each once."""
        for kind, entry in list(self._open.items()):
            if now - entry.started >= self._interval:
                self._close(kind, entry, now)
        ready, self._ready = self._ready, []
        return ready

    def drain(self, *, now: float) -> list[Summary]:
        """Every pending summary (at shutdown)."""
        for kind, entry in list(self._open.items()):
            self._close(kind, entry, now)
        ready, self._ready = self._ready, []
        return ready

    def _close(self, kind: Kind, entry: _Open, now: float) -> None:
        del self._open[kind]
        if entry.count:
            self._ready.append(Summary(kind, entry.count, now - entry.started))
