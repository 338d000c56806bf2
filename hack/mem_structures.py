"""Live bytes per peer of the operator's per-peer structures, measured in-process with tracemalloc.

Why: an RSS at N peers (`hack/bench_scale.py --memory`) moves by more between two runs than one
structure's cut, because the start's peak leaves the allocators holding free blocks. This builds
each structure alone, the way the operator fills it at N peers with generated credentials, and
reports what stays allocated, in seconds:

- kopf's per-object memory for a peer's 4 objects (the peer and its 3 Secrets), with the memo
  the operator hands kopf (`runner.OperatorMemo` when the checkout has it, else `kopf.Memo`);
- `SecretWatchers` (which peers a Secret event wakes);
- one outbound Secret as `CredentialCache` keeps it (`objects.kept_for_reading`).

Strings the caches intern add to the interpreter's string table, whose growth lands in whichever
measurement makes it resize: the cached Secret's figure moves by ~1 KiB per peer with that.
To compare two checkouts, run it once per checkout:
`PYTHONPATH=<other checkout>/operator python hack/mem_structures.py`.
"""

import argparse
import asyncio
import base64
import gc
import tracemalloc
from collections.abc import Callable
from typing import Any

import kopf
from kopf._cogs.structs.ephemera import AnyMemo
from kopf._core.reactor.inventory import ResourceMemories

from federation_operator.adapters.k8s import ping_credentials
from federation_operator.controller import runner
from federation_operator.controller.handlers.peers import SecretWatchers, watched_secret_names
from federation_operator.domain import api, objects, tokens


def allocated(build: Callable[[], Any]) -> int:
    """Bytes still allocated once `build` returned (its result kept alive)."""
    gc.collect()
    tracemalloc.start()
    kept = build()
    gc.collect()
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return size


def names(peers: int) -> list[tuple[str, str]]:
    # Built before measuring: kopf's bodies hold these strings either way.
    return [(f"tenant-{number % 200:03d}", f"peer-{number:05d}") for number in range(peers)]


def kopf_memories(peers: int) -> ResourceMemories:
    memo_class: type[kopf.Memo] = getattr(runner, "OperatorMemo", kopf.Memo)
    memobase = AnyMemo(memo_class({"context": object(), "exiting": object()}))
    memories = ResourceMemories()

    async def recall_all() -> None:
        for number in range(4 * peers):
            await memories.recall({"metadata": {"uid": f"uid-{number:08d}"}}, memobase=memobase)

    asyncio.run(recall_all())
    return memories


def watchers(peers: list[tuple[str, str]]) -> SecretWatchers:
    found = SecretWatchers()
    for namespace, name in peers:
        found.watch(namespace, name, watched_secret_names(name, {}))
    return found


def outbound_secret(namespace: str, name: str, number: int) -> dict[str, Any]:
    token = base64.b64encode(tokens.generate_token().reveal().encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": f"{name}-outbound",
            "namespace": namespace,
            "uid": f"6b1f0c7e-0000-4000-8000-{number:012d}",
            "resourceVersion": str(100_000 + number),
            "creationTimestamp": "2026-12-02T03:00:00Z",
            "labels": api.managed_labels(role=api.ROLE_OUTBOUND) | {api.LABEL_PEER: name},
            "ownerReferences": [
                {
                    "apiVersion": api.API_VERSION,
                    "kind": api.PEER_KIND,
                    "name": name,
                    "uid": f"0f1e2d3c-0000-4000-8000-{number:012d}",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": {api.OUTBOUND_TOKEN_KEY: token},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=2000)
    peers = parser.parse_args().peers
    known = names(peers)
    bodies = [outbound_secret(namespace, name, number) for number, (namespace, name) in enumerate(known)]
    kept_fields = {"metadata": ping_credentials._META_KEPT, "fields": ping_credentials._FIELDS_KEPT}
    figures = {
        "kopf per-object memory (4 objects)": allocated(lambda: kopf_memories(peers)),
        "SecretWatchers": allocated(lambda: watchers(known)),
        "a cached outbound Secret": allocated(
            lambda: [objects.kept_for_reading(body, **kept_fields) for body in bodies]
        ),
    }
    for what, size in figures.items():
        print(f"{what}: {size / peers / 1024:.2f} KiB per peer ({peers} peers)", flush=True)


if __name__ == "__main__":
    main()
