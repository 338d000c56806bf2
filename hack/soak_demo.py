#!/usr/bin/env python3
"""Run the README's main job (or the demo's integration test) many times under CPU load.

The demo once failed one run in three on a busy machine (a race between two threads sharing an
event loop). This soak keeps every core busy with spinning processes while it runs
`federation-operator demo` (or `pytest tests/integration/test_demo.py`) again and again, and
prints how many runs passed and how long the slowest took. Exit status 1 if any run failed.

    python hack/soak_demo.py --runs 30                 # the demo, 30 times, all cores busy
    python hack/soak_demo.py --runs 10 --target test   # the integration test, 10 times
"""

import argparse
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def spin(stop: "multiprocessing.synchronize.Event") -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def command(target: str) -> list[str]:
    if target == "demo":
        return [sys.executable, "-m", "federation_operator", "demo", "--no-color"]
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/integration/test_demo.py"]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=30, help="how many consecutive runs (default 30)")
    parser.add_argument(
        "--target", choices=("demo", "test"), default="demo", help="what to run (default demo)"
    )
    parser.add_argument(
        "--burners", type=int, default=os.cpu_count() or 2, help="spinning processes (default: one per core)"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one run may take (default 600)")
    args = parser.parse_args()

    stop = multiprocessing.Event()
    burners = [multiprocessing.Process(target=spin, args=(stop,), daemon=True) for _ in range(args.burners)]
    for burner in burners:
        burner.start()
    passed, durations, failures = 0, [], []
    try:
        for run in range(1, args.runs + 1):
            started = time.monotonic()
            try:
                result = subprocess.run(
                    command(args.target), cwd=ROOT, capture_output=True, text=True, timeout=args.timeout
                )
                ok, tail = result.returncode == 0, (result.stdout + result.stderr).strip().splitlines()[-5:]
            except subprocess.TimeoutExpired:
                ok, tail = False, [f"timed out after {args.timeout:.0f}s"]
            elapsed = time.monotonic() - started
            durations.append(elapsed)
            if ok:
                passed += 1
            else:
                failures.append((run, tail))
            print(f"run {run:3d}/{args.runs}: {'pass' if ok else 'FAIL'} in {elapsed:6.1f}s", flush=True)
    finally:
        stop.set()
        for burner in burners:
            burner.join(5)
    for run, tail in failures:
        print(f"\nrun {run} failed; last lines:\n  " + "\n  ".join(tail))
    print(
        f"\n{args.target}: {passed}/{args.runs} passed with {args.burners} busy cores; "
        f"slowest run {max(durations):.1f}s, median {sorted(durations)[len(durations) // 2]:.1f}s"
    )
    return 0 if passed == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
