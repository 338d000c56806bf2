"""`Kube.close`: a stopping operator sends nothing more and never waits for the API server.

After SIGTERM the operator's process used to wait for every call its client had on the wire (a
stuck API server at 10,000 peers: 72-145 s). Closing now refuses new calls, fails the queued ones
unsent, retries no transient answer, and leaves a call on the wire to die with the process. The
stand-in replaces only the kubernetes client's HTTP call, where a real API server holds a thread.
"""

import asyncio
import subprocess
import sys
import textwrap
import threading
from typing import Any, ClassVar

import pytest

from federation_operator.adapters.k8s.client import ApiError, Kube, Stopped
from federation_operator.adapters.k8s.resources import SECRETS
from tests.harness.waiting import async_wait_for


class _Response:
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, status: int) -> None:
        self.status = status

    def read(self) -> bytes:
        return b'{"kind": "Secret"}' if self.status == 200 else b'{"reason": "ServiceUnavailable"}'


class _Api:
    """An ApiClient whose calls to a Secret named `held` hang until released; records every call."""

    def __init__(self, *, status: int = 200) -> None:
        self.release = threading.Event()
        self.status = status
        self.sent: list[str] = []
        self.on_call: Any = None
        self.user_agent = ""

    def param_serialize(self, *, method: str, resource_path: str, **_: Any) -> tuple[Any, ...]:
        return method, resource_path, {}, None, None

    def call_api(self, method: str, url: str, **_: Any) -> _Response:
        self.sent.append(url.rsplit("/", 1)[-1])
        if self.on_call is not None:
            self.on_call()
        if url.endswith("/held"):
            assert self.release.wait(10), "the test never released the held call"
        return _Response(self.status)

    def close(self) -> None:
        pass


def test_closing_fails_the_queued_calls_unsent_and_refuses_new_ones() -> None:
    api = _Api()
    kube = Kube(api, workers=1)  # type: ignore[arg-type]

    async def scenario() -> None:
        held = asyncio.ensure_future(kube.get(SECRETS, "ns", "held"))
        queued = asyncio.ensure_future(kube.get(SECRETS, "ns", "queued"))

        async def held_on_the_wire() -> bool:  # the only thread is in the held call; the other waits
            return api.sent == ["held"]

        await async_wait_for(held_on_the_wire, message="the held call is sent")
        kube.close()
        with pytest.raises(Stopped):
            await asyncio.wait_for(queued, timeout=5)
        with pytest.raises(Stopped):
            await kube.create(SECRETS, "ns", {"metadata": {"name": "after"}})
        api.release.set()
        assert await asyncio.wait_for(held, timeout=5) == {"kind": "Secret"}  # on the wire: answered

    try:
        asyncio.run(scenario())
    finally:
        api.release.set()
        kube.close()
    assert api.sent == ["held"]


def test_closing_the_connection_closes_its_lanes() -> None:
    api = _Api()
    kube = Kube(api, workers=1)  # type: ignore[arg-type]
    lane = kube.lane("heartbeat", workers=1)
    kube.close()
    with pytest.raises(Stopped):
        asyncio.run(lane.get(SECRETS, "ns", "after"))
    assert api.sent == []


def test_a_closed_connection_retries_no_transient_answer() -> None:
    """A 503 is retried (three times, up to seconds apart) while the operator runs; once it stops,
    the first answer is final."""
    api = _Api(status=503)
    kube = Kube(api, workers=1)  # type: ignore[arg-type]
    api.on_call = kube.close  # the operator stops while the first attempt is on the wire
    with pytest.raises(ApiError) as raised:
        asyncio.run(kube.get(SECRETS, "ns", "busy"))
    assert raised.value.status == 503
    assert api.sent == ["busy"]


def test_a_call_the_api_server_never_answers_does_not_hold_the_process_exit() -> None:
    """A real interpreter exits while one of its client's threads waits for an answer that never
    comes (with a ThreadPoolExecutor it waited for that thread at exit: forever, here)."""
    program = textwrap.dedent(
        """
        import asyncio, threading
        from federation_operator.adapters.k8s.client import Kube
        from federation_operator.adapters.k8s.resources import SECRETS

        class Api:
            user_agent = ""
            on_the_wire = threading.Event()
            def param_serialize(self, *, method, resource_path, **_):
                return method, resource_path, {}, None, None
            def call_api(self, method, url, **_):
                self.on_the_wire.set()
                threading.Event().wait()  # an answer that never comes
            def close(self):
                pass

        async def main():
            api = Api()
            kube = Kube(api, workers=1)
            call = asyncio.ensure_future(kube.get(SECRETS, "ns", "stuck"))
            while not api.on_the_wire.is_set():
                await asyncio.sleep(0.01)
            call.cancel()
            kube.close()
            print("closed", flush=True)

        asyncio.run(main())
        """
    )
    finished = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout == "closed\n"
