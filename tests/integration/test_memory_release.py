"""The operator returns memory it freed to the OS (glibc malloc_trim): the real allocator, a real process."""

import subprocess
import sys
import textwrap

# A burst of allocations above pymalloc's 512-byte limit (glibc's, as API replies and dicts'
# tables are), then most of it freed with every hundredth block kept, so the free memory sits
# between live blocks where glibc's own trimming at the heap's top never reaches it.
PROGRAM = textwrap.dedent(
    """
    from pathlib import Path
    from federation_operator.adapters.memory import release_freed_memory

    def rss_kib():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

    blocks = [bytearray(2048) for _ in range(100_000)]
    kept = blocks[::100]
    del blocks
    before = rss_kib()
    released = release_freed_memory()
    print(before, rss_kib(), released, len(kept))
    """
)


def test_memory_freed_after_a_burst_goes_back_to_the_os() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60, check=True
    )
    before, after, released, _ = result.stdout.split()
    assert released == "True", "glibc's malloc_trim is there (Debian, as in the image)"
    freed_kib = 99_000 * 2048 // 1024
    assert int(before) - int(after) > freed_kib // 2, (
        f"RSS {before} -> {after} KiB: most of the ~{freed_kib} KiB freed should have gone back"
    )


# A multi-MiB block freed (as an API reply is once parsed), then a smaller large block: where glibc
# serves the second, counted by its mapped blocks (`mallinfo2().hblks`).
THRESHOLD_PROGRAM = textwrap.dedent(
    """
    import ctypes, sys
    from federation_operator.adapters.memory import fix_mmap_threshold

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost")]

    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = MallInfo2
    if sys.argv[1] == "fixed":
        fix_mmap_threshold()
    reply = bytearray(8 * 2**20)
    del reply
    before = mallinfo2().hblks
    block = bytearray(2 * 2**20)
    print(mallinfo2().hblks - before)
    """
)


def test_large_blocks_stay_out_of_the_heap_after_a_larger_one_was_freed() -> None:
    """glibc raises its mmap threshold to the size of each mapped block freed, so after one
    8 MiB reply a 2 MiB block comes from the heap (which then keeps it when freed); with the
    operator's fixed threshold it gets a mapping of its own, returned to the OS when freed."""

    def mapped(mode: str) -> int:
        result = subprocess.run(
            [sys.executable, "-c", THRESHOLD_PROGRAM, mode],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return int(result.stdout)

    assert mapped("glibc's default") == 0, "glibc's dynamic threshold (the premise) serves it from the heap"
    assert mapped("fixed") == 1
