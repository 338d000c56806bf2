"""Every version of the operator's objects, as watches deliver them while a test runs.

For properties of the whole history rather than of the end state: every status written follows
kstatus (test_kstatus.py); no status write shows the edge's verdict before the credentials'
(test_pins_handover.py).
"""

import threading
from typing import Any

from kubernetes import watch

from federation_operator.domain import api
from tests.harness.site import Site


class Recorder:
    """Every object version the watches deliver, per (plural, name)."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._watch, args=(plural,), daemon=True)
            for plural in (api.CERT_PLURAL, api.PEER_PLURAL)
        ]

    def _watch(self, plural: str) -> None:
        resource_version = None
        while not self.stopping.is_set():
            stream = watch.Watch()
            kwargs: dict[str, Any] = {"timeout_seconds": 1}
            if resource_version:
                kwargs["resource_version"] = resource_version
            for event in stream.stream(
                self.site.custom.list_namespaced_custom_object,
                api.GROUP,
                api.VERSION,
                self.site.namespace,
                plural,
                **kwargs,
            ):
                obj = event["object"]
                resource_version = obj["metadata"]["resourceVersion"]
                self.seen.append((plural, obj))
                if self.stopping.is_set():
                    stream.stop()

    def __enter__(self) -> "Recorder":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=10)

    def versions(self, plural: str, name: str) -> list[dict[str, Any]]:
        """The versions of one object seen so far, oldest first."""
        return [obj for seen, obj in list(self.seen) if seen == plural and obj["metadata"]["name"] == name]
