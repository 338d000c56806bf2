"""The operator's periodic sweeps: one task per concern, not a kopf timer per object."""

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable

import pytest

from federation_operator.controller.config import OperatorConfig
from federation_operator.controller.handlers.periodic import STOP_GRACE, HandlerContext, Periodic, bounded
from federation_operator.controller.registration import wind_down
from federation_operator.controller.runner import build_registry
from federation_operator.controller.scheduler import Scheduler
from federation_operator.domain import api
from federation_operator.domain.ingress.config import IngressConfig
from tests.harness.waiting import async_wait_for

LOG = logging.getLogger(__name__)


def test_no_kopf_timer_is_registered_the_sweeps_start_and_stop_with_the_operator() -> None:
    ingress = IngressConfig(host="fed.example", labels=api.managed_labels(role=api.ROLE_INGRESS))
    registry = build_registry(OperatorConfig(ingress_provider="envoy-gateway", ingress=ingress))
    # A timer handler has an interval; a daemon (the heartbeat's, for now) does not.
    timers = [handler.id for handler in registry._spawning.get_all_handlers() if hasattr(handler, "interval")]
    # A site has a handful of FederationCerts, so their timer stays; peers number thousands.
    assert timers == ["cert-check"], "a kopf timer per peer costs a task and kopf's bookkeeping each"
    activities = {handler.id for handler in registry._activities.get_all_handlers()}
    assert {"peer-credentials-check-start", "ingress-check-start"} <= activities
    assert {"peer-credentials-check-stop", "ingress-check-stop"} <= activities


async def test_a_failing_pass_is_logged_and_the_next_tick_runs(caplog: pytest.LogCaptureFixture) -> None:
    ticks: list[float] = []

    async def tick() -> None:
        ticks.append(time.monotonic())
        if len(ticks) == 1:
            raise RuntimeError("first pass fails")

    periodic = Periodic(name="test-sweep", interval=0.05, tick=tick, logger=LOG)
    periodic.start()
    await async_wait_for(lambda: _true(len(ticks) >= 3), timeout=5, message="three ticks")
    await periodic.stop()
    assert "test-sweep failed" in caplog.text
    assert not [task for task in asyncio.all_tasks() if task.get_name() == "test-sweep"], "stopped"


async def test_stop_lets_a_pass_in_flight_finish_within_the_grace_then_cancels_a_hung_one() -> None:
    finished: list[str] = []
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await release.wait()
        finished.append("slow")

    periodic = Periodic(name="finishing", interval=0.01, tick=slow, logger=LOG)
    periodic.start()
    await asyncio.wait_for(started.wait(), timeout=5)
    stopping = asyncio.create_task(periodic.stop(grace=5))
    release.set()
    await stopping
    assert finished == ["slow"]

    hanging = asyncio.Event()

    async def hang() -> None:
        hanging.set()
        await asyncio.Event().wait()

    hung = Periodic(name="hung", interval=0.01, tick=hang, logger=LOG)
    hung.start()
    await asyncio.wait_for(hanging.wait(), timeout=5)
    began = time.monotonic()
    await hung.stop(grace=0.1)
    assert time.monotonic() - began < 2.0, "a hung pass is cancelled after the grace"


async def test_bounded_runs_every_job_within_the_limit_in_the_borrowed_context() -> None:
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker")
    borrowed = HandlerContext()
    token = marker.set("kopf's")
    borrowed.capture()
    marker.reset(token)
    running = 0
    peak = 0
    seen: list[str] = []

    def job(number: int) -> tuple[str, Callable[[], Awaitable[None]]]:
        async def run() -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1
            seen.append(marker.get("none"))
            if number == 3:
                raise RuntimeError("one job fails")

        return (f"job {number}", run)

    await bounded([job(n) for n in range(10)], limit=3, logger=LOG, context=borrowed)
    assert peak == 3
    assert seen == ["kopf's"] * 10


async def _true(value: bool) -> bool:
    return value


async def test_wind_down_stops_every_sweep_and_the_heartbeat_scheduler_at_once() -> None:
    """What the runner calls as soon as the operator is told to stop (before kopf's cleanup): a
    pass in flight is cancelled after the grace, no sweep ticks again, the scheduler runs nothing."""
    started: list[str] = []

    def long_pass(name: str) -> Callable[[], Awaitable[None]]:
        async def tick() -> None:
            started.append(name)
            await asyncio.Event().wait()  # a pass the API server never answers

        return tick

    credentials = Periodic(name="credentials", interval=0.01, tick=long_pass("credentials"), logger=LOG)
    ingress = Periodic(name="ingress", interval=0.01, tick=long_pass("ingress"), logger=LOG)
    scheduler: Scheduler[str] = Scheduler(workers=2)
    credentials.start()
    ingress.start()
    scheduler.start()

    async def both_in_a_pass() -> bool:
        return {"credentials", "ingress"} <= set(started)

    await async_wait_for(both_in_a_pass, message="both sweeps in a pass")
    begun = time.monotonic()
    memo = {
        "credentials": credentials,
        "ingress": ingress,
        "heartbeat-scheduler": scheduler,
        "other": object(),
    }
    await asyncio.wait_for(wind_down(memo), timeout=10)
    # The two sweeps' graces run side by side, not one after the other.
    assert time.monotonic() - begun < STOP_GRACE * 1.9
    leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    assert all(task.done() for task in leftovers), leftovers
