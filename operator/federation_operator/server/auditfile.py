"""The audit log file, rotated by size: `PATH` grows to `max_bytes`, then becomes `PATH.1` (and
`PATH.1` becomes `PATH.2`, ... up to `backups`, the oldest dropped), so a flood of calls can fill
at most (backups + 1) x max_bytes of disk. Written by the audit log's writer thread only.
"""

import io
import os
from pathlib import Path


class RotatingFile(io.TextIOBase):
    def __init__(self, path: Path, *, max_bytes: int, backups: int) -> None:
        super().__init__()
        self._path = path
        self._max_bytes = max_bytes
        self._backups = backups
        self._stream = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def fileno(self) -> int:
        return self._stream.fileno()

    def write(self, text: str) -> int:
        # Line by line: the writer thread hands over many lines at once, and a file must rotate
        # before the line that would take it past max_bytes, not after the whole chunk.
        for line in text.splitlines(keepends=True):
            size = len(line.encode("utf-8"))
            if self._stream.tell() and self._stream.tell() + size > self._max_bytes:
                self._rotate()
            self._stream.write(line)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self._stream.close()
        super().close()

    def _rotate(self) -> None:
        self._stream.close()
        if self._backups > 0:
            for number in range(self._backups - 1, 0, -1):
                older = Path(f"{self._path}.{number}")
                if older.exists():
                    os.replace(older, f"{self._path}.{number + 1}")
            os.replace(self._path, f"{self._path}.1")
        else:
            self._path.unlink(missing_ok=True)
        self._stream = open(self._path, "a", encoding="utf-8")  # noqa: SIM115
