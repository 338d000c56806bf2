"""The audit log: one JSON line per inbound call, and one per kind of failure that repeated.

Lines are built here from what the decision found; a token is never in one (the decision never
holds it). The format is what `json.dumps(record, separators=(",", ":"))` writes.

`AuditLog` writes a stream with a file descriptor (a file, stdout) from a background thread: a
write to a file can block on disk writeback, which on the event loop would stall every request in
flight (docs/benchmarks.md). The request path only appends to a deque (thread-safe without a
lock). The thread writes at most every `flush_interval` seconds: at once when it has been idle
that long (a lone call is in the file right away), else at the end of the interval; a crash loses
at most that interval of lines. An in-memory stream never blocks, so it is written in place
(flushed at most every `flush_interval`).
"""

import collections
import logging
import threading
import time
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Final, TextIO

from federation_operator.server.index import AuthResult
from federation_operator.server.repeats import Summary

logger = logging.getLogger(__name__)

# Audit fields a caller chooses are cut to these lengths (a path can be 8 KiB).
_MAX_PATH: Final = 256
_MAX_METHOD: Final = 16


class AuditLog:
    def __init__(self, stream: TextIO, *, flush_interval: float = 0.5) -> None:
        self._stream = stream
        self._flush_interval = flush_interval
        self._flushed = time.monotonic() - flush_interval  # the first line is due at once
        self._pending: collections.deque[str] = collections.deque()
        self._stopped = threading.Event()
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None
        if _has_descriptor(stream):
            self._writer = threading.Thread(target=self._write_periodically, name="audit-log", daemon=True)
            self._writer.start()

    def write_line(self, line: str) -> None:
        """`line` is one complete JSON document ending in a newline."""
        now = time.monotonic()
        due = now - self._flushed >= self._flush_interval
        if due:
            self._flushed = now
        if self._writer is not None:
            self._pending.append(line)
            if due:
                self._wake.set()
            return
        self._stream.write(line)
        if due:
            self._stream.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._stopped.set()
            self._wake.set()
            self._writer.join()
        self._stream.flush()

    def _write_periodically(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            self._write_pending()
        self._write_pending()

    def _write_pending(self) -> None:
        pending = self._pending
        # Only the lines present now: the request path keeps appending meanwhile.
        lines = [pending.popleft() for _ in range(len(pending))]
        if not lines:
            return
        try:
            self._stream.write("".join(lines))
            self._stream.flush()
        except (OSError, ValueError):
            logger.exception("audit log: %d lines could not be written", len(lines))


def _has_descriptor(stream: TextIO) -> bool:
    try:
        stream.fileno()
    except (OSError, ValueError):
        return False
    return True


def audit_time(moment: datetime) -> str:
    """The `time` field: UTC, milliseconds, `Z`. Formatted per line: a cache of the part up to the
    second did not pay measurably (docs/benchmarks.md)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def decision_line(
    *,
    time: str,
    request_id: str,
    route: str,
    outcome: str,
    result: AuthResult,
    remote: str,
    source: str,
    method: str,
    path: str,
) -> str:
    """The line for one call, without building the dict json.dumps would need: time, requestId,
    route and result are ours (digits, hex, fixed words) and need no escaping; every other value
    goes through json's own string escaper (`null` for None), inline because a helper call per
    field costs as much again."""
    esc = encode_basestring_ascii
    factor, name, namespace, thumbprint = result.factor, result.name, result.namespace, result.thumbprint
    return (
        f'{{"time":"{time}","requestId":"{request_id}",'
        f'"route":"{route}","result":"{outcome}",'
        f'"factor":{"null" if factor is None else esc(factor)},'
        f'"message":{esc(result.message)},'
        f'"peer":{"null" if name is None else esc(name)},'
        f'"namespace":{"null" if namespace is None else esc(namespace)},'
        f'"thumbprint":{"null" if thumbprint is None else esc(thumbprint)},'
        f'"remote":{esc(remote)},"source":{esc(source)},'
        f'"method":{esc(method[:_MAX_METHOD])},"path":{esc(path[:_MAX_PATH])}}}\n'
    )


def repeat_line(*, time: str, summary: Summary) -> str:
    """The line for one kind of failure that repeated within its interval, with the count."""
    esc = encode_basestring_ascii
    source, thumbprint, route, outcome, factor = summary.kind
    return (
        f'{{"time":"{time}","route":"{route}","result":"{outcome}",'
        f'"factor":{esc(factor)},"thumbprint":{"null" if thumbprint is None else esc(thumbprint)},'
        f'"source":{esc(source)},"repeated":{summary.count},'
        f'"seconds":{round(summary.seconds, 3)}}}\n'
    )
