"""kopf decorators for one `Periodic` per operator: made and started at startup, stopped at cleanup.

The credentials check, the ingress check and the memory release each run one such task; this is
their one wiring. The task lives in kopf's memo under its key, and the two activities are named
`<key>-start` and `<key>-stop`.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from federation_operator.controller.handlers.periodic import Periodic

Tick = Callable[[], Awaitable[None]]


def register_periodic(
    registry: kopf.OperatorRegistry,
    *,
    key: str,
    interval: float,
    make_tick: Callable[[kopf.Memo], Awaitable[Tick]],
    logger: logging.Logger,
) -> None:
    """`make_tick(memo)` runs once at startup (it may prepare state first) and returns the tick."""

    @kopf.on.startup(registry=registry, id=f"{key}-start")
    async def periodic_start(memo: kopf.Memo, **_: Any) -> None:
        memo[key] = Periodic(name=key, interval=interval, tick=await make_tick(memo), logger=logger)
        memo[key].start()

    @kopf.on.cleanup(registry=registry, id=f"{key}-stop")
    async def periodic_stop(memo: kopf.Memo, **_: Any) -> None:
        periodic = memo.get(key)
        if isinstance(periodic, Periodic):
            await periodic.stop()
