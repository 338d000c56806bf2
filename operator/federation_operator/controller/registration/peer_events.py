"""One kopf event handler for FederationPeers, handing every event to each concern that watches them.

Three concerns watch every peer event: the credentials (each peer's next deadline, the Secrets it
names), the heartbeat (the peer's latest body) and the edge (whether the namespace's pass has
computed from the peer as it is). kopf's cost is per handler per event (its state, its kwargs, its
log records, its context managers), and a new peer causes several events (its creation, kopf's
finalizer and diff-base patches, each status write): registered as three handlers, that machinery
ran three times per event (docs/benchmarks.md, "A bulk apply").

So each concern's registration adds its watcher here, and one handler calls them in the order
they were added, as kopf called the three handlers. As kopf did for each, an error in one is
logged and does not stop the others.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from federation_operator.domain import api

PEER = (api.GROUP, api.VERSION, api.PEER_PLURAL)
# A watcher gets kopf's keyword arguments of an event handler (`type`, `name`, `body`, `logger` ...).
Watcher = Callable[..., Awaitable[None]]


class PeerEvents:
    """The watchers of FederationPeer events of one operator instance, in the order they run."""

    def __init__(self) -> None:
        self._watchers: list[tuple[str, Watcher]] = []

    def add(self, name: str, watcher: Watcher) -> None:
        self._watchers.append((name, watcher))

    async def dispatch(self, logger: kopf.Logger, **kwargs: Any) -> None:
        """One event to every watcher, in order."""
        for name, watcher in self._watchers:
            try:
                await watcher(logger=logger, **kwargs)
            except Exception as error:
                logger.exception("%s failed on a %s event: %s; ignored", name, kwargs.get("type"), error)

    def register(self, registry: kopf.OperatorRegistry) -> None:
        """Register the one handler."""

        @kopf.on.event(*PEER, registry=registry, id="peer-events")
        async def peer_event(logger: kopf.Logger, **kwargs: Any) -> None:
            await self.dispatch(logger, **kwargs)
