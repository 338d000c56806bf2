"""kopf decorators for returning freed memory to the OS, every `RELEASE_INTERVAL` (a minute).

One `Periodic` per operator (started at startup, stopped at cleanup) calls
`adapters.memory.release_freed_memory` in a thread every interval, the first after one interval:
what the start's burst (every peer read and judged at once), a later burst (a bulk apply, a
restart of the API server) or the steady pings freed is returned within a minute.
"""

import asyncio
import logging

import kopf

from federation_operator.adapters.memory import RELEASE_INTERVAL, release_freed_memory
from federation_operator.controller.config import OperatorConfig
from federation_operator.controller.registration.periodic import Tick, register_periodic

KEY = "memory-release"
_log = logging.getLogger(__name__)


def register(registry: kopf.OperatorRegistry, _config: OperatorConfig) -> None:
    async def make_tick(_memo: kopf.Memo) -> Tick:
        async def tick() -> None:
            await asyncio.to_thread(release_freed_memory)

        return tick

    register_periodic(registry, key=KEY, interval=RELEASE_INTERVAL, make_tick=make_tick, logger=_log)
