"""Where the operator's memory goes: `federation-operator ARGS` in this process, with a census on a signal.

    python hack/mem_census.py --out FILE [--trace FRAMES] -- run --kubeconfig K

Why a wrapper and not a flag of the operator: the census is development tooling (tracemalloc
roughly doubles the process's memory and slows every allocation) and must not ship. Signals:
- SIGUSR1 appends a census to FILE: VmRSS / VmHWM, glibc's own view (`mallinfo2`: the heap from
  brk and mmap, what is in use, what is free but kept), CPython's object allocator (arenas and
  what is in them, from `sys._debugmallocstats`), a count of the gc-tracked objects by type with
  their shallow sizes, and with `--trace` the top allocation sites (tracemalloc, grouped by line
  and by file) of what is alive now, and who holds a sample of the live dicts and lists the JSON
  decoder made (API replies and watch events kept past their handling);
- SIGUSR2 calls glibc's `malloc_trim(0)` and appends VmRSS before and after, and how long the
  call took: how much of the RSS is memory freed by Python but kept by the allocator.
The census runs on the signal in the main thread, so the operator's event loop stands still for
its duration (seconds at 2,000 peers); take it after convergence, not while measuring times.
"""

import argparse
import contextlib
import ctypes
import gc
import io
import os
import signal
import sys
import tempfile
import time
import tracemalloc
import types
from collections import Counter
from pathlib import Path
from types import FrameType

from federation_operator import cli


class MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


_libc = ctypes.CDLL(None)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _mallinfo() -> str:
    try:
        function = _libc.mallinfo2
    except AttributeError:
        return "mallinfo2: not available (not glibc >= 2.33)"
    function.restype = MallInfo2
    info = function()
    mib = 2**20
    return (
        f"glibc heap: brk arena {info.arena / mib:.1f} MiB, mmapped {info.hblkhd / mib:.1f} MiB "
        f"({info.hblks} blocks), in use {info.uordblks / mib:.1f} MiB, free but kept "
        f"{info.fordblks / mib:.1f} MiB, trimmable at the top {info.keepcost / mib:.1f} MiB"
    )


def _pymalloc() -> str:
    """The summary lines of `sys._debugmallocstats` (it writes to the C stderr, fd 2)."""
    with tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(captured.fileno(), 2)
            sys._debugmallocstats()
            _libc.fflush(None)  # C stdio buffers what it writes to a file
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        text = captured.read().decode(errors="replace")
    keep = ("# arenas", "bytes in allocated blocks", "bytes in available blocks", "unused pools", "Total")
    return "\n".join(line for line in text.splitlines() if any(word in line for word in keep))


def _census_by_type(limit: int = 40) -> str:
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for obj in gc.get_objects():
        name = type(obj).__qualname__
        module = type(obj).__module__
        key = name if module == "builtins" else f"{module}.{name}"
        counts[key] += 1
        sizes[key] += sys.getsizeof(obj)
    lines = [f"gc-tracked objects: {sum(counts.values())}, shallow {sum(sizes.values()) / 2**20:.1f} MiB"]
    for key, size in sizes.most_common(limit):
        lines.append(f"  {size / 2**20:8.2f} MiB {counts[key]:9d}  {key}")
    return "\n".join(lines)


# Who holds what, in this order: each object is counted once, for the first owner that reaches it.
# (type name as `module.qualname`, label). Shared objects (the operator's context, loggers, kopf's
# settings, classes, modules, functions) are boundaries, never counted.
OWNERS = (
    (
        "federation_operator.controller.handlers.heartbeat.PeerHeartbeat",
        "heartbeat: PeerHeartbeat (body, memory, ...)",
    ),
    ("federation_operator.controller.scheduler.Scheduler", "heartbeat: Scheduler (heap, queue, peers)"),
    ("federation_operator.adapters.k8s.ping_credentials.CredentialCache", "heartbeat: CredentialCache"),
    ("federation_operator.adapters.metrics.HeartbeatMetrics", "heartbeat: metrics"),
    ("federation_operator.controller.handlers.secret_cache.SecretCache", "credentials: SecretCache"),
    ("federation_operator.domain.claims.SharedClaims", "credentials: SharedClaims"),
    ("federation_operator.controller.handlers.peers.SecretWatchers", "credentials: SecretWatchers"),
    ("federation_operator.controller.handlers.peers.PeerLocks", "credentials: PeerLocks"),
    ("federation_operator.controller.handlers.ingress.NamespaceLocks", "ingress: NamespaceLocks"),
    ("kopf._core.reactor.inventory.ResourceMemories", "kopf: ResourceMemories (per-object memory)"),
    ("_asyncio.Task", "asyncio tasks (coroutines and frames)"),
)
_BOUNDARY_NAMES = frozenset(
    {
        "federation_operator.controller.config.OperatorContext",
        "federation_operator.controller.handlers.heartbeat.Shared",
        "federation_operator.adapters.k8s.client.Kube",
        "kopf._cogs.configs.configuration.OperatorSettings",
        "kopf._cogs.structs.ephemera.Memo",
        "logging.Logger",
        "logging.RootLogger",
        "asyncio.unix_events._UnixSelectorEventLoop",
    }
)


def _name(obj: object) -> str:
    kind = type(obj)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _deep_size(root: object, seen: set[int], boundary: set[int]) -> tuple[int, int]:
    """(bytes, objects) reachable from `root` not yet in `seen`, stopping at shared things."""
    size = count = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or id(obj) in boundary:
            continue
        if isinstance(
            obj, (type, types.ModuleType, types.FunctionType, types.CodeType, types.BuiltinFunctionType)
        ):
            continue
        if _name(obj) in _BOUNDARY_NAMES:
            continue
        seen.add(id(obj))
        size += sys.getsizeof(obj)
        count += 1
        stack.extend(gc.get_referents(obj))
    return size, count


def _owners() -> str:
    by_name: dict[str, list[object]] = {name: [] for name, _ in OWNERS}
    for obj in gc.get_objects():
        found = by_name.get(_name(obj))
        if found is not None:
            found.append(obj)
    boundary = {id(obj) for found in by_name.values() for obj in found}
    seen: set[int] = set()
    lines = ["owners (deep size, each object counted once, for the first owner listed that reaches it):"]
    for name, label in OWNERS:
        total = objects = 0
        for root in by_name[name]:
            boundary.discard(id(root))
            size, count = _deep_size(root, seen, boundary)
            total, objects = total + size, objects + count
        lines.append(f"  {total / 2**20:8.2f} MiB {objects:9d} objects  {len(by_name[name]):6d} x {label}")
    return "\n".join(lines)


def _traced(limit: int = 40) -> str:
    if not tracemalloc.is_tracing():
        return "tracemalloc: off (--trace FRAMES to turn it on)"
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        ]
    )
    traced, peak = tracemalloc.get_traced_memory()
    out = io.StringIO()
    out.write(f"tracemalloc: {traced / 2**20:.1f} MiB alive, peak {peak / 2**20:.1f} MiB\n")
    for group in ("filename", "lineno"):
        out.write(f"top by {group}:\n")
        for stat in snapshot.statistics(group)[:limit]:
            frame = stat.traceback[0]
            where = f"{frame.filename}:{frame.lineno}" if group == "lineno" else frame.filename
            out.write(f"  {stat.size / 2**20:8.2f} MiB {stat.count:9d}  {where}\n")
    if tracemalloc.get_traceback_limit() > 1:
        out.write("top by traceback (callers first):\n")
        for stat in snapshot.statistics("traceback")[:15]:
            out.write(f"  {stat.size / 2**20:8.2f} MiB {stat.count:9d}\n")
            for line in stat.traceback.format(most_recent_first=True)[::2][:8]:
                out.write(f"      {line.strip()}\n")
    return out.getvalue()


def _holders(site: str = "json/decoder.py", sample: int = 150) -> str:
    """Who holds the live objects allocated at `site` (with --trace): for a sample of them, walk the
    referrers up through plain containers (dict, list, tuple, set) to the first other object, and
    count those by type (one level of names: `Type.attribute` where a dict is an instance's)."""
    if not tracemalloc.is_tracing():
        return ""
    found = [
        obj
        for obj in gc.get_objects()
        if type(obj) in (dict, list)
        and (trace := tracemalloc.get_object_traceback(obj)) is not None
        and trace[0].filename.endswith(site)
    ]
    containers = (dict, list, tuple, set, frozenset)
    holders: Counter[str] = Counter()
    sampled = found[:: max(1, len(found) // sample)]
    ignore = {id(found), id(sampled)}
    for obj in sampled:
        current, depth, seen = obj, 0, {id(obj)}
        label = "unreached"
        while depth < 12:
            referrers = [
                ref
                for ref in gc.get_referrers(current)
                if id(ref) not in ignore and id(ref) not in seen and not isinstance(ref, types.FrameType)
            ]
            if not referrers:
                label = f"no referrer above {type(current).__name__}"
                break
            holder = referrers[0]
            del referrers  # else the next call finds this list among the holder's referrers
            seen.add(id(holder))
            if isinstance(holder, types.FunctionType):
                label = f"closure {holder.__module__}.{holder.__qualname__}"
                break
            if not isinstance(holder, (*containers, types.CellType)):
                label = _name(holder)
                break
            if isinstance(holder, dict):
                owners = [ref for ref in gc.get_referrers(holder) if getattr(ref, "__dict__", None) is holder]
                if owners:
                    key = next((k for k, v in holder.items() if v is current), "?")
                    label = f"{_name(owners[0])}.{key}"
                    break
            current, depth = holder, depth + 1
        else:
            label = f"deeper than 12 ({type(current).__name__})"
        holders[label] += 1
    lines = [f"holders of {len(found)} dicts/lists allocated at {site} (a sample):"]
    lines += [f"  {count:6d}  {label}" for label, count in holders.most_common(25)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="append each census here")
    parser.add_argument("--trace", type=int, default=0, help="tracemalloc with this many frames (0: off)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then federation-operator's arguments")
    args = parser.parse_args()
    operator_args = args.args[1:] if args.args[:1] == ["--"] else args.args
    if args.trace:
        tracemalloc.start(args.trace)

    def census(_signum: int, _frame: FrameType | None) -> None:
        started = time.monotonic()
        parts = [
            f"== census at {time.strftime('%H:%M:%S')}: VmRSS {_status_kib('VmRSS') / 1024:.1f} MiB, "
            f"VmHWM {_status_kib('VmHWM') / 1024:.1f} MiB",
            _mallinfo(),
            _pymalloc(),
            _census_by_type(),
            _owners(),
            _traced(),
            _holders(),
        ]
        parts.append(f"(census took {time.monotonic() - started:.1f} s)\n")
        with args.out.open("a") as out:
            out.write("\n".join(parts) + "\n")

    def trim(_signum: int, _frame: FrameType | None) -> None:
        before = _status_kib("VmRSS")
        started = time.perf_counter()
        with contextlib.suppress(AttributeError):
            _libc.malloc_trim(0)
        took_ms = (time.perf_counter() - started) * 1000
        with args.out.open("a") as out:
            out.write(
                f"== malloc_trim(0): VmRSS {before / 1024:.1f} -> {_status_kib('VmRSS') / 1024:.1f} MiB "
                f"in {took_ms:.1f} ms\n"
            )

    signal.signal(signal.SIGUSR1, census)
    signal.signal(signal.SIGUSR2, trim)
    return cli.main(operator_args)


if __name__ == "__main__":
    raise SystemExit(main())
