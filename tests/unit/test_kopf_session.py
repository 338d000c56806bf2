"""kopf's session behind the in-flight gate, against a real HTTP server on a real socket.

The requests are made the way kopf makes them (kopf/_cogs/clients/api.py: keyword arguments and a
per-request `aiohttp.ClientTimeout`).
"""

import argparse
import asyncio
from collections.abc import AsyncIterator

import aiohttp
import kopf
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from federation_operator.adapters.k8s.kopf_session import GatedSession, RequestGate, gated_session
from federation_operator.adapters.metrics import ApiGateMetrics
from federation_operator.controller.config import OperatorConfig
from federation_operator.controller.runner import configure

ANSWER_SECONDS = 0.05  # the server's time per request, well inside each request's timeout
TIMEOUT = aiohttp.ClientTimeout(total=2.0)


class CountingServer:
    """Answers each request after ANSWER_SECONDS; counts what is in flight at once."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.watch_open = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") == "true":
            response = web.StreamResponse()
            await response.prepare(request)
            self.watch_open.set()
            await response.write(b'{"type": "BOOKMARK"}\n')
            return response
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(ANSWER_SECONDS)
            return web.json_response({"kind": "Status", "status": "Success"})
        finally:
            self.in_flight -= 1


@pytest.fixture
async def server() -> AsyncIterator[tuple[CountingServer, str]]:
    counting = CountingServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", counting.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield counting, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _patch(session: GatedSession | aiohttp.ClientSession, url: str) -> int:
    response = await session.request(
        method="patch", url=f"{url}/apis/x/v1/things/a", json={}, headers={}, timeout=TIMEOUT
    )
    async with response:
        await response.read()
        return response.status


async def test_requests_beyond_the_limit_wait_their_turn_without_timing_out(
    server: tuple[CountingServer, str],
) -> None:
    counting, url = server
    # 60 requests one at a time take 3 s: past each request's 2 s timeout unless the wait for the
    # gate is outside it.
    session = GatedSession(aiohttp.ClientSession(), RequestGate(1))
    try:
        statuses = await asyncio.gather(*(_patch(session, url) for _ in range(60)))
    finally:
        await session.close()
    assert statuses == [200] * 60
    assert counting.most == 1
    assert session.gate.waiting == 0
    assert session.gate.in_flight == 0
    assert session.closed


async def test_without_the_gate_the_same_burst_times_out(server: tuple[CountingServer, str]) -> None:
    """The failure the gate prevents: aiohttp's own pool wait counts toward the timeout."""
    _, url = server
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        results = await asyncio.gather(*(_patch(session, url) for _ in range(60)), return_exceptions=True)
    assert any(isinstance(result, TimeoutError) for result in results)


async def test_a_watch_passes_a_full_gate(server: tuple[CountingServer, str]) -> None:
    counting, url = server
    session = GatedSession(aiohttp.ClientSession(), RequestGate(1))
    try:
        burst = [asyncio.create_task(_patch(session, url)) for _ in range(20)]
        await asyncio.sleep(0)  # let the burst take the gate
        watch = await asyncio.wait_for(
            session.request(
                method="get",
                url=f"{url}/apis/x/v1/things?watch=true&allowWatchBookmarks=true",
                timeout=aiohttp.ClientTimeout(total=None),
            ),
            timeout=5.0,
        )
        async with watch:
            assert watch.status == 200
            assert counting.watch_open.is_set()
            assert session.gate.waiting > 0  # the burst was still queued when the watch got through
            assert session.gate.in_flight == 1
        assert await asyncio.gather(*burst) == [200] * 20
    finally:
        await session.close()


async def test_kopf_gets_a_session_with_the_connection_and_credentials() -> None:
    info = kopf.ConnectionInfo(
        server="https://api.example:6443", scheme="Bearer", token="t0ken", default_namespace="ns", priority=7
    )
    gate = RequestGate(3)
    context = gated_session(info, gate=gate)
    session = context.aiohttp_session
    try:
        assert isinstance(session, GatedSession)
        assert session.gate is gate
        assert session.headers["Authorization"] == "Bearer t0ken"
        assert (context.server, context.default_namespace, context.priority) == (
            "https://api.example:6443",
            "ns",
            7,
        )
    finally:
        await session.close()


def test_the_flag_default_is_the_gate_default() -> None:
    parser = argparse.ArgumentParser()
    configure(parser)
    assert parser.parse_args([]).api_max_in_flight == OperatorConfig().api_max_in_flight == 32


def test_a_gate_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RequestGate(0)


async def test_the_metrics_read_the_gate_at_each_scrape() -> None:
    registry = CollectorRegistry()
    gate = RequestGate(1)
    ApiGateMetrics(registry, gate)

    def reading() -> tuple[float | None, float | None]:
        return (
            registry.get_sample_value("federation_operator_api_requests_waiting"),
            registry.get_sample_value("federation_operator_api_requests_in_flight"),
        )

    assert reading() == (0, 0)
    held, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with gate.slot():
            held.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await held.wait()
    waiter = asyncio.create_task(hold())
    await asyncio.sleep(0)  # the waiter runs up to the gate, which is taken
    assert reading() == (1, 1)
    release.set()
    await asyncio.gather(holder, waiter)
    assert reading() == (0, 0)
