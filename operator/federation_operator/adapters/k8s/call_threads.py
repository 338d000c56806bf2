"""Worker threads for the blocking Kubernetes client's calls that never hold up the process's exit.

`concurrent.futures.ThreadPoolExecutor` joins its threads when the interpreter exits, and a thread
cannot be interrupted in a socket read: after SIGTERM the operator's process waited for every call
already on the wire to be answered or to time out, and for urllib3's own retries of a read that
timed out (a stuck API server at 10,000 peers: 72-145 s; a test holding 12 peers' calls on a
hanging API: 88 s after kopf had stopped, docs/benchmarks.md "Shutdown"). These threads are
daemons: once the pool is closed, a call still on the wire is abandoned when the process exits,
as it would be by a killed Pod. A write is one request, so the API server either applied it or
did not; the handlers' multi-step writes are ordered so that a restart converges from either
(docs/operations.md, "Stopping").

Closing refuses new calls and fails those queued but not started with `PoolClosed` (not a
cancellation: the task awaiting one is not being cancelled): once the operator stops, nothing it
has not sent yet is sent.
"""

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class PoolClosed(RuntimeError):
    """A call submitted after `close()`: it was never sent."""


class CallThreads:
    """Up to `workers` daemon threads running submitted calls first come, first served."""

    def __init__(self, *, workers: int, name: str) -> None:
        self._workers = workers
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, call: Callable[[], Any]) -> "Future[Any]":
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise PoolClosed(f"{self._name}: closed, the call was not sent")
            self._jobs.put((future, call))
            # A thread more only when none is idle, as ThreadPoolExecutor grows.
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._workers:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}_{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return future

    def close(self) -> None:
        """Refuse new calls, fail the queued ones; calls in flight finish in their threads."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                # A call whose caller gave up (cancelled) is only marked done; the others fail.
                if job is not None and job[0].set_running_or_notify_cancel():
                    job[0].set_exception(PoolClosed(f"{self._name}: closed before the call was sent"))
            for _ in self._threads:
                self._jobs.put(None)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, call = job
            if future.set_running_or_notify_cancel():
                try:
                    result = call()
                except BaseException as error:  # handed to the caller, who judges it
                    future.set_exception(error)
                else:
                    future.set_result(result)
                del future, call, job  # nothing of a finished call stays alive in an idle thread
            if self._closed:
                return
            self._idle.release()
