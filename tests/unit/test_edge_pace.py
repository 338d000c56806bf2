"""A namespace's edge passes rest between runs as long as the previous one ran (at most PASS_REST)."""

import asyncio

import pytest

from federation_operator.controller.handlers import ingress
from federation_operator.controller.handlers.ingress import NamespaceLocks


async def test_a_namespaces_first_pass_does_not_wait() -> None:
    locks = NamespaceLocks()
    loop = asyncio.get_running_loop()
    before = loop.time()
    await locks.pace("eu")
    assert loop.time() - before < ingress.PASS_REST


async def test_a_pass_rests_as_long_as_the_previous_one_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    locks = NamespaceLocks()
    loop = asyncio.get_running_loop()
    locks.last_pass["eu"] = (loop.time(), 0.2)
    before = loop.time()
    await locks.pace("eu")
    assert loop.time() - before >= 0.19
    # Another namespace's pass is not held by this one's.
    before = loop.time()
    await locks.pace("us")
    assert loop.time() - before < 0.19


async def test_the_rest_is_capped_and_counts_from_the_previous_pass_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ingress, "PASS_REST", 0.2)
    locks = NamespaceLocks()
    loop = asyncio.get_running_loop()
    # A pass the API server held for a minute: the next one waits PASS_REST, not a minute.
    locks.last_pass["eu"] = (loop.time(), 60.0)
    before = loop.time()
    await locks.pace("eu")
    assert 0.19 <= loop.time() - before < 5.0
    # A pass that ended long enough ago does not wait at all.
    locks.last_pass["eu"] = (loop.time() - 10.0, 1.0)
    before = loop.time()
    await locks.pace("eu")
    assert loop.time() - before < 0.19
