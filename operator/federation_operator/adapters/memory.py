"""Giving the memory the operator freed back to the operating system (glibc's `malloc_trim`).

Why: the operator's busiest moment is its start, when every peer is read, judged and written at
once; afterwards it holds far less. CPython returns its own object arenas only when they empty
completely, and glibc's allocator (which holds everything above 512 bytes: dicts' tables, lists,
API replies) keeps freed memory for reuse unless asked to return it. `malloc_trim(0)` returns the
free pages of every glibc arena; docs/benchmarks.md ("Memory per peer") measures what that is
worth after the start. Elsewhere (musl, macOS) there is nothing to call and nothing is done.
"""

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from typing import Final

# A call walks every free chunk while holding each arena's lock (milliseconds for a few hundred MiB).
RELEASE_INTERVAL: Final = 300.0


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        function = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = [ctypes.c_size_t], ctypes.c_int
    trim: Callable[[int], int] = function
    return trim


def release_freed_memory() -> bool:
    """Return the allocator's free pages to the OS; False where there is no `malloc_trim`.

    Blocking (run it off the event loop); safe at any time and from any thread."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
