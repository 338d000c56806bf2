"""Request ids: random uuid4 strings, as `str(uuid.uuid4())` gives, at a fraction of its cost.

`uuid.uuid4()` is a getrandom syscall plus a Python-level UUID object per request; here the
randomness is read in batches and formatted by hand (what that saves: docs/benchmarks.md).
"""

import os
from typing import Final

# Random bytes for request ids are fetched this many ids at a time (one getrandom call).
_ID_BATCH: Final = 256
# The RFC 4122 variant bits (10xx) applied to the first hex digit of a uuid's fourth group.
_UUID_VARIANT: Final = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


class RequestIds:
    def __init__(self) -> None:
        self._pool = b""
        self._offset = 0

    def next(self) -> str:
        if self._offset >= len(self._pool):
            self._pool = os.urandom(16 * _ID_BATCH)
            self._offset = 0
        digits = self._pool[self._offset : self._offset + 16].hex()
        self._offset += 16
        return (
            f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-"
            f"{_UUID_VARIANT[digits[16]]}{digits[17:20]}-{digits[20:]}"
        )
