"""Giving the memory the operator freed back to the operating system (glibc's `malloc_trim`).

Why: the operator's busiest moment is its start, when every peer is read, judged and written at
once; afterwards it holds far less. CPython returns its own object arenas only when they empty
completely, and glibc's allocator (which holds everything above 512 bytes: dicts' tables, lists,
API replies) keeps freed memory for reuse unless asked to return it. `malloc_trim(0)` returns the
free pages of every glibc arena; docs/benchmarks.md ("Memory per peer") measures what that is
worth after the start. Elsewhere (musl, macOS) there is nothing to call and nothing is done.

Large blocks are kept out of the heap (`fix_mmap_threshold`): glibc serves a block of at least
its mmap threshold (128 KiB at first) from a mapping of its own, unmapped when freed, but it
raises that threshold to the size of every such block freed (up to 32 MiB), and the heap's
trim threshold to twice that. After the first API reply of a few MiB was freed, every later one
came from the heap, and the heap kept that much free: with real pings at 2,000 peers the RSS
rose by steps of ~12 MiB a minute, which a fixed threshold removes (docs/benchmarks.md, "Memory
with real pings").
"""

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from typing import Final

# A call walks every free chunk while holding each arena's lock (milliseconds for a few hundred MiB).
# Every minute, not every five: with real pings glibc's free share grows by steps of ~12 MiB a
# minute at 2,000 peers (TLS handshakes, API replies), and what a five-minute period let pile up
# sat in the RSS in between (docs/benchmarks.md, "Memory with real pings").
RELEASE_INTERVAL: Final = 60.0


# A block this large or larger gets a mapping of its own (glibc's default start, 128 KiB, would
# also map the 256 KiB buffer asyncio gives every TLS connection, i.e. every ping).
MMAP_THRESHOLD: Final = 1024 * 1024
_M_MMAP_THRESHOLD: Final = -3  # mallopt's parameter number (malloc.h)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    function = getattr(_libc(), "malloc_trim", None)
    if function is None:
        return None
    function.argtypes, function.restype = [ctypes.c_size_t], ctypes.c_int
    trim: Callable[[int], int] = function
    return trim


def fix_mmap_threshold() -> bool:
    """Serve every block of MMAP_THRESHOLD or more from its own mapping, for the process's life
    (glibc's threshold no longer follows the blocks freed); False where there is no `mallopt`."""
    function = getattr(_libc(), "mallopt", None)
    if function is None:
        return False
    function.argtypes, function.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(function(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def release_freed_memory() -> bool:
    """Return the allocator's free pages to the OS; False where there is no `malloc_trim`.

    Blocking (run it off the event loop); safe at any time and from any thread."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
