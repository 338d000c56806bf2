"""`Kube.lane`: a caller with a lane of its own never waits for a thread behind the others' calls.

The heartbeat's reads and status writes go through a lane, so that thousands of reconciles after a
restart (all queued on the main pool, first come first served) do not starve the first pings.
The stand-in below replaces only the kubernetes client's HTTP call, which is where a real API
server would hold a thread.
"""

import asyncio
import threading
from typing import Any, ClassVar

from federation_operator.adapters.k8s.client import Kube
from federation_operator.adapters.k8s.resources import SECRETS


class _Response:
    status = 200
    headers: ClassVar[dict[str, str]] = {}

    def read(self) -> bytes:
        return b'{"kind": "Secret"}'


class _HeldApi:
    """An ApiClient whose calls to a Secret named `held` hang until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.closed = False
        self.user_agent = ""

    def param_serialize(self, *, method: str, resource_path: str, **_: Any) -> tuple[Any, ...]:
        return method, resource_path, {}, None, None

    def call_api(self, method: str, url: str, **_: Any) -> _Response:
        if url.endswith("/held"):
            assert self.release.wait(10), "the test never released the held call"
        return _Response()

    def close(self) -> None:
        self.closed = True


def test_a_lane_call_completes_while_every_thread_of_the_main_pool_is_held() -> None:
    api = _HeldApi()
    kube = Kube(api, workers=2)  # type: ignore[arg-type]
    lane = kube.lane("heartbeat", workers=1)

    async def scenario() -> None:
        held = [asyncio.ensure_future(kube.get(SECRETS, "ns", "held")) for _ in range(2)]
        queued = asyncio.ensure_future(kube.get(SECRETS, "ns", "fast"))
        # Every main thread is held and a call waits behind them; the lane is not behind it.
        assert await asyncio.wait_for(lane.get(SECRETS, "ns", "fast"), timeout=5) == {"kind": "Secret"}
        assert not queued.done()
        api.release.set()
        await asyncio.wait_for(asyncio.gather(*held, queued), timeout=5)

    try:
        asyncio.run(scenario())
    finally:
        api.release.set()
        lane.close()
        assert not api.closed  # closing a lane leaves the connection to its owner
        kube.close()
    assert api.closed


def test_writes_through_a_lane_are_counted_with_the_connection() -> None:
    api = _HeldApi()
    kube = Kube(api, workers=1)  # type: ignore[arg-type]
    lane = kube.lane("heartbeat", workers=1)

    async def scenario() -> None:
        await lane.create(SECRETS, "ns", {"metadata": {"name": "a"}})
        await kube.create(SECRETS, "ns", {"metadata": {"name": "b"}})
        await lane.get(SECRETS, "ns", "a")

    try:
        asyncio.run(scenario())
    finally:
        lane.close()
        kube.close()
    assert kube.writes == 2
    assert lane.writes == 2


def test_a_lane_of_a_wrapped_connection_keeps_the_wrapper() -> None:
    """A connection's subclass (a benchmark's counting wrapper, an instrumented client) still sees
    the calls made through its lanes."""
    seen: list[str] = []

    class Recording(Kube):
        async def get(self, resource: Any, namespace: str | None, name: str) -> Any:
            seen.append(name)
            return await super().get(resource, namespace, name)

    api = _HeldApi()
    kube = Recording(api, workers=1)  # type: ignore[arg-type]
    lane = kube.lane("heartbeat", workers=1)
    try:
        asyncio.run(lane.get(SECRETS, "ns", "through-the-lane"))
    finally:
        lane.close()
        kube.close()
    assert seen == ["through-the-lane"]
