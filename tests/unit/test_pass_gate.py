"""The credentials passes' gate: at most N passes at once, and it knows which peers wait for a slot."""

import asyncio

import pytest

from federation_operator.controller.handlers.pass_gate import PassGate


async def test_passes_beyond_the_limit_wait_and_say_so() -> None:
    gate = PassGate(1)
    first_in = asyncio.Event()
    release = asyncio.Event()
    order: list[str] = []

    async def run(key: str) -> None:
        async with gate.slot(("ns", key)):
            order.append(key)
            first_in.set()
            await release.wait()

    first = asyncio.create_task(run("a"))
    await first_in.wait()
    second = asyncio.create_task(run("b"))
    await asyncio.sleep(0)  # one turn of the loop: b runs up to the gate
    assert gate.waiting(("ns", "b"))
    assert not gate.waiting(("ns", "a")), "a holds the slot: it does not wait"
    assert order == ["a"]
    release.set()
    await asyncio.gather(first, second)
    assert order == ["a", "b"]
    assert not gate.waiting(("ns", "b"))


async def test_a_cancelled_wait_is_not_left_counted() -> None:
    gate = PassGate(1)
    async with gate.slot("a"):
        waiter = asyncio.create_task(gate.slot("b").__aenter__())
        await asyncio.sleep(0)  # one turn of the loop: b runs up to the gate
        assert gate.waiting("b")
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert not gate.waiting("b")


def test_a_gate_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        PassGate(0)
