"""kopf's HTTP session to the API server, with a bound on the requests in flight.

kopf opens one aiohttp session without a connection limit and gives every request a total timeout
(`settings.networking.request_timeout`). Started over thousands of objects, it sends a PATCH for
each at once (the finalizer, then its diff-base annotation). An API server that cannot answer them
all within the timeout sees each one time out and come back as a retry, on top of the queue that
made it late: at 10,000 peers on the sandbox, two in three of kopf's first PATCHes were retried and
the start took 15 minutes (docs/benchmarks.md, "Scale").

`GatedSession` holds a request until fewer than `limit` (`--api-max-in-flight`) are in flight,
and only then hands it to aiohttp, whose timeout starts there: a request waits its turn without
timing out, and what reaches the API server is at most `limit` requests at once, the way
client-go's rate limiter holds a request before its deadline starts. Watch requests are not
held: each stays open for minutes, and its headers come at once.

The bound is one `RequestGate` per operator, shared by every session kopf opens (it logs in again
when its credentials expire), and read by the operator's metrics: requests waiting at the gate
mean the API server, not the operator, sets the pace.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import kopf
from multidict import CIMultiDict


class RequestGate:
    """At most `limit` requests in flight; `waiting` and `in_flight` say where they are now."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)
        self.waiting = 0
        self.in_flight = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._slots.release()


class GatedSession:
    """The part of `aiohttp.ClientSession` kopf uses (`request`, `headers`, `closed`, `close`)."""

    def __init__(self, session: aiohttp.ClientSession, gate: RequestGate) -> None:
        self._session = session
        self.gate = gate

    @property
    def headers(self) -> "CIMultiDict[str]":
        return self._session.headers

    @property
    def closed(self) -> bool:
        return self._session.closed

    async def close(self) -> None:
        await self._session.close()

    async def request(self, method: str, url: str, **kwargs: Any) -> aiohttp.ClientResponse:
        if _is_watch(url):
            return await self._session.request(method, url, **kwargs)
        async with self.gate.slot():
            # The response's headers are in; kopf reads the body next, from a connection the
            # server has finished with (it sends headers once the object is written).
            return await self._session.request(method, url, **kwargs)


def _is_watch(url: str) -> bool:
    _, _, query = url.partition("?")
    return "watch=true" in query.split("&")


def gated_session(info: kopf.ConnectionInfo, *, gate: RequestGate) -> kopf.AiohttpSession:
    """kopf's own session for `info` (kopf's `auth.APIContext` builds the same), behind the gate."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),  # basic auth too: kopf deprecated as_aiohttp_basic_auth
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        priority=info.priority,
        expiration=info.expiration,
        # kopf calls only the members GatedSession has (kopf/_cogs/clients/auth.py, api.py).
        aiohttp_session=GatedSession(session, gate),  # type: ignore[arg-type]
    )
