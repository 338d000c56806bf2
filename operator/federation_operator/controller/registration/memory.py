"""kopf decorators for returning freed memory to the OS: once the start's burst is over, then periodically.

One `Periodic` per operator (started at startup, stopped at cleanup) calls
`adapters.memory.release_freed_memory` in a thread: the first tick after one interval, when the
start's burst (every peer read and judged at once) is over, then every interval, so that what a
later burst (a bulk apply, a restart of the API server) freed is returned too.
"""

import asyncio
import logging
from typing import Any

import kopf

from federation_operator.adapters.memory import RELEASE_INTERVAL, release_freed_memory
from federation_operator.controller.config import OperatorConfig
from federation_operator.controller.handlers.periodic import Periodic

KEY = "memory-release"
_log = logging.getLogger(__name__)


def register(registry: kopf.OperatorRegistry, _config: OperatorConfig) -> None:
    @kopf.on.startup(registry=registry, id="memory-release-start")
    async def release_start(memo: kopf.Memo, **_: Any) -> None:
        async def tick() -> None:
            await asyncio.to_thread(release_freed_memory)

        memo[KEY] = Periodic(name=KEY, interval=RELEASE_INTERVAL, tick=tick, logger=_log)
        memo[KEY].start()

    @kopf.on.cleanup(registry=registry, id="memory-release-stop")
    async def release_stop(memo: kopf.Memo, **_: Any) -> None:
        periodic = memo.get(KEY)
        if isinstance(periodic, Periodic):
            await periodic.stop()
