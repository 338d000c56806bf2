"""The heartbeat's status write queue: one waiting write per peer, newest wins, one in flight per peer."""

import asyncio
from collections.abc import Callable

import pytest

from federation_operator.controller.write_queue import Write, WriteHooks, WriteQueue


class Recorder:
    """Writes that record their start and wait for the test to release them."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.in_flight: dict[str, int] = {}
        self.most_in_flight: dict[str, int] = {}
        self.changed = asyncio.Event()  # set whenever a write starts

    def write(self, key: str, label: str, *, fail: bool = False) -> Write:
        gate = self.gates.setdefault(label, asyncio.Event())

        async def run() -> None:
            self.started.append(label)
            self.changed.set()
            self.in_flight[key] = self.in_flight.get(key, 0) + 1
            self.most_in_flight[key] = max(self.most_in_flight.get(key, 0), self.in_flight[key])
            try:
                await gate.wait()
                if fail:
                    raise RuntimeError("the API server said no")
                self.finished.append(label)
            finally:
                self.in_flight[key] -= 1

        return run

    def release(self, *labels: str) -> None:
        for label in labels:
            self.gates.setdefault(label, asyncio.Event()).set()

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait (5 s at most) until the writes started make `predicate` true."""
        async with asyncio.timeout(5):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
def counts() -> dict[str, int]:
    """What the queue reported through its hook: its last length."""
    return {"pending": 0}


def queue_with(writers: int, counts: dict[str, int]) -> WriteQueue[str]:
    def pending(value: int) -> None:
        counts["pending"] = value

    return WriteQueue(writers=writers, hooks=WriteHooks(on_pending=pending))


async def test_a_newer_write_replaces_the_waiting_one_of_the_same_peer(counts: dict[str, int]) -> None:
    queue = queue_with(1, counts)
    queue.start()
    rec = Recorder()
    assert not queue.holds("a")
    queue.submit("a", rec.write("a", "a1"))
    assert queue.holds("a")  # waiting
    await rec.until(lambda: rec.started == ["a1"])
    assert queue.holds("a")  # in flight
    # While a1 is in flight, two more writes of the same peer come: only the newest is kept.
    queue.submit("a", rec.write("a", "a2"))
    queue.submit("a", rec.write("a", "a3"))
    assert queue.pending == 1
    assert counts == {"pending": 1}
    rec.release("a1", "a3")
    await queue.idle()
    assert rec.finished == ["a1", "a3"]
    assert "a2" not in rec.started
    assert counts["pending"] == 0
    assert not queue.holds("a")
    await queue.stop()


async def test_one_peer_has_one_write_in_flight_and_others_are_not_held(
    counts: dict[str, int],
) -> None:
    queue = queue_with(3, counts)
    queue.start()
    rec = Recorder()
    queue.submit("a", rec.write("a", "a1"))
    await rec.until(lambda: rec.started == ["a1"])
    queue.submit("a", rec.write("a", "a2"))  # waits for a1, although two writers are free
    queue.submit("b", rec.write("b", "b1"))  # is not held behind a's waiting write
    await rec.until(lambda: "b1" in rec.started)
    assert "a2" not in rec.started
    rec.release("b1", "a1")
    await rec.until(lambda: "a2" in rec.started)
    rec.release("a2")
    await queue.idle()
    assert rec.most_in_flight == {"a": 1, "b": 1}
    assert rec.finished == ["b1", "a1", "a2"]
    await queue.stop()


async def test_writes_run_oldest_first_and_a_replaced_write_keeps_its_place(counts: dict[str, int]) -> None:
    queue = queue_with(1, counts)
    queue.start()
    rec = Recorder()
    queue.submit("blocker", rec.write("blocker", "x"))
    await rec.until(lambda: rec.started == ["x"])
    queue.submit("a", rec.write("a", "a1"))
    queue.submit("b", rec.write("b", "b1"))
    queue.submit("a", rec.write("a", "a2"))  # replaces a1, ahead of b1 still
    rec.release("x", "a2", "b1")
    await queue.idle()
    assert rec.started == ["x", "a2", "b1"]
    await queue.stop()


async def test_a_failed_write_does_not_end_its_writer(counts: dict[str, int]) -> None:
    queue = queue_with(1, counts)
    queue.start()
    rec = Recorder()
    queue.submit("a", rec.write("a", "a1", fail=True))
    queue.submit("b", rec.write("b", "b1"))
    rec.release("a1", "b1")
    await queue.idle()
    assert rec.finished == ["b1"]
    await queue.stop()


async def test_discard_drops_the_waiting_write_and_cancels_the_one_in_flight(counts: dict[str, int]) -> None:
    queue = queue_with(2, counts)
    queue.start()
    rec = Recorder()
    queue.submit("a", rec.write("a", "a1"))
    await rec.until(lambda: rec.started == ["a1"])
    queue.submit("a", rec.write("a", "a2"))
    queue.discard("a")
    await queue.idle()
    assert rec.started == ["a1"]
    assert rec.finished == []  # a1 was cancelled, a2 never ran
    assert counts["pending"] == 0
    # The writers are still there for others.
    queue.submit("b", rec.write("b", "b1"))
    rec.release("b1")
    await queue.idle()
    assert rec.finished == ["b1"]
    await queue.stop()


async def test_stop_cancels_writes_in_flight_and_ignores_later_ones(counts: dict[str, int]) -> None:
    queue = queue_with(1, counts)
    queue.start()
    rec = Recorder()
    queue.submit("a", rec.write("a", "a1"))
    await rec.until(lambda: rec.started == ["a1"])
    queue.submit("b", rec.write("b", "b1"))
    await queue.stop()
    assert rec.in_flight == {"a": 0}  # a1 unwound
    queue.submit("c", rec.write("c", "c1"))
    assert queue.pending == 0
    assert rec.started == ["a1"]
    with pytest.raises(RuntimeError):
        queue.start()


def test_a_queue_needs_a_writer() -> None:
    with pytest.raises(ValueError, match="at least one writer"):
        WriteQueue[str](writers=0)
