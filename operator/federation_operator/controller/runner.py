"""The kopf operator, built per instance so that two can share a process (`federation-operator run`).

Handlers are registered into a fresh `kopf.OperatorRegistry` for every operator, never into
kopf's global registry, and get their configuration and API connection from kopf's `memo`. This
is what lets the tests and the demo run an EU and a US operator side by side, each against its
own API server, and what lets `OperatorThread` start and stop operators at will.
"""

import argparse
import asyncio
import logging
import os
import threading
from collections.abc import Collection, Mapping, Sequence, Set
from pathlib import Path
from typing import Any

import kopf
import yaml

from federation_operator.adapters.k8s.client import Kube
from federation_operator.adapters.k8s.kopf_session import RequestGate, gated_session
from federation_operator.controller import registration
from federation_operator.controller.config import API_GATE_KEY, EXITING_KEY, OperatorConfig, OperatorContext
from federation_operator.domain import api
from federation_operator.domain.ingress.config import IngressConfig
from federation_operator.domain.ingress.providers import PROVIDERS

logger = logging.getLogger(__name__)

KOPF_PREFIX = f"kopf.{api.GROUP}"
# How long kopf waits for the watch event of its own patch of an object before it takes an older
# event of that object as the object's state (kopf's default: 5 s). A new peer's credentials write
# their status while kopf handles its creation, so the event kopf sees next is that write, which
# lacks kopf's diff-base annotation: read as the object's state, it is the creation again (our
# create handler, with its fresh read, and kopf's diff-base patch run twice).
# kopf's watcher reads a bulk apply's events late: it yields the event loop once for every object
# it starts a worker for, and on a busy loop each yield costs a full turn of it, so at 2,000 new
# peers its own patches came back 8-13 s after their reply (docs/benchmarks.md, "kopf's own
# patches come back late"). The wait ends as soon as the patched version arrives, so a longer bound
# costs time only when it never does (a watch that restarts from a fresh list after 410 Gone).
CONSISTENCY_TIMEOUT = 60.0


def connection_info(kubeconfig: Path | None) -> kopf.ConnectionInfo | None:
    """kopf credentials from a kubeconfig file (token or client certificate; what our sandbox writes)."""
    if kubeconfig is None:
        return None
    config = yaml.safe_load(kubeconfig.read_text())
    context_name = config.get("current-context")
    context = next(item["context"] for item in config["contexts"] if item["name"] == context_name)
    cluster = next(item["cluster"] for item in config["clusters"] if item["name"] == context["cluster"])
    user: dict[str, Any] = next(
        (item["user"] for item in config.get("users", []) if item["name"] == context.get("user")), {}
    )
    return kopf.ConnectionInfo(
        server=cluster["server"],
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        ca_path=cluster.get("certificate-authority"),
        scheme="Bearer" if user.get("token") else None,
        token=user.get("token"),
        certificate_path=user.get("client-certificate"),
        private_key_path=user.get("client-key"),
        default_namespace=context.get("namespace"),
    )


class OperatorMemo(kopf.Memo):
    """kopf's memo, one for the operator instead of a copy for every object.

    kopf gives each object it sees (every peer, every Secret in the watched namespaces) a shallow
    copy of the memo it was started with, and keeps it for the object's life: ~280 bytes each
    (docs/benchmarks.md, "Memory per peer"). What our handlers keep there is the operator's
    (its context, caches, metrics), never an object's own, so one shared memo is what they
    read either way, and a key set later is seen by every object.
    """

    def __copy__(self) -> "OperatorMemo":
        return self


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry, id="configure")
    def configure_kopf(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = api.FINALIZER
        # kopf's bookkeeping under a prefix of its own: kopf leaves every annotation under its
        # storage prefix out of the diff, so with our API group as the prefix a user's
        # `federation.ampora.io/reissue` or `/rotate` request would trigger no update handler.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=KOPF_PREFIX, key="last-handled-configuration"
        )
        settings.posting.level = logging.INFO
        settings.persistence.consistency_timeout = CONSISTENCY_TIMEOUT
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.networking.request_timeout = 30
        # On stop, kopf lets each object's worker handle the events still queued for it before it
        # cancels the worker (2 s by default): at 10,000 peers that is thousands of handler runs
        # and API calls against an API server that may be the reason for the stop. Nothing they
        # would write is needed: the next start lists every object and judges it afresh, and a
        # handler cancelled mid-way leaves what a killed process leaves (docs/operations.md,
        # "Stopping"). So the workers are cancelled at once.
        settings.queueing.exit_timeout = 0
        # Watching chosen namespaces: no cluster-wide list/watch of namespaces and CRDs, which the
        # chart's namespaced Roles do not grant; kopf then discovers our resources once at start.
        settings.scanning.disabled = bool(config.namespaces)

    @kopf.on.login(registry=registry, id="login")
    async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
        # kopf's own login (in-cluster service account, then $KUBECONFIG) unless a kubeconfig is
        # given; either way kopf's requests go through the in-flight gate (adapters/k8s/kopf_session.py).
        info = connection_info(config.kubeconfig) or kopf.login_via_client(**kwargs)
        if info is None:
            return None
        # The operator's one gate (run_operator puts it in the memo), whichever login this is.
        return gated_session(info, gate=kwargs["memo"][API_GATE_KEY])

    registration.register(registry, config)
    return registry


async def run_operator(
    *,
    config: OperatorConfig,
    stop: asyncio.Event,
    ready: asyncio.Event | threading.Event | None = None,
    context: OperatorContext | None = None,
) -> None:
    """Run one operator until `stop` is set."""
    # A caller may hand in a context (a test clock, a shared client); we close only what we opened.
    owned = context is None
    context = context or OperatorContext(config=config, kube=Kube.from_kubeconfig(config.kubeconfig))
    # `stop` reaches kopf through `exiting` first: daemons and timers are filtered out from then on
    # (config.running says why), so none is spawned while kopf winds down.
    exiting, kopf_stop = asyncio.Event(), asyncio.Event()
    memo = OperatorMemo(
        {"context": context, EXITING_KEY: exiting, API_GATE_KEY: RequestGate(config.api_max_in_flight)}
    )
    # kopf.operator() is spawn_tasks + run_tasks; they are called apart here for the reaper.
    existing = asyncio.all_tasks()
    relay: asyncio.Task[None] | None = None
    try:
        root_tasks = await kopf.spawn_tasks(
            registry=build_registry(config),
            memo=memo,
            clusterwide=not config.namespaces,
            namespaces=list(config.namespaces),
            standalone=config.peering is None,
            peering_name=config.peering,
            priority=config.priority,
            liveness_endpoint=config.liveness,
            stop_flag=kopf_stop,
            ready_flag=ready,
            # kopf's default runs one handler per cycle and stores each one's progress in an
            # annotation before the next: with a peer's two handlers (credentials, ingress) that
            # is two PATCHes and two more watch events per peer on every resume, create and
            # update. All at once, in registration order: handlers that finish in the cycle leave
            # nothing to store, so a restart over converged peers writes nothing to them (issue 17).
            lifecycle=kopf.lifecycles.all_at_once,
        )
        relay = asyncio.create_task(
            relay_stop(stop, root_tasks, exiting=exiting, kopf_stop=kopf_stop, memo=memo),
            name="operator stop relay",
        )
        reaper = asyncio.create_task(reap_leftovers(root_tasks, kept=existing), name="operator reaper")
        try:
            await kopf.run_tasks(root_tasks, ignored=existing | {reaper, relay})
        finally:
            reaper.cancel()
    finally:
        if relay is not None:
            relay.cancel()
        if owned:
            context.kube.close()


async def relay_stop(
    stop: asyncio.Event,
    root_tasks: Collection[asyncio.Task[Any]],
    *,
    exiting: asyncio.Event,
    kopf_stop: asyncio.Event,
    memo: kopf.Memo,
) -> None:
    """Once the operator is to stop, tell kopf and stop our own periodic work at once.

    Either sign counts: `stop` set by our caller, or kopf's first root task ending (SIGTERM in the
    main thread reaches kopf's own handler, which replaces the caller's, so `stop` stays unset).
    The heartbeat and the periodic sweeps would otherwise go on pinging and writing until kopf
    reaches its cleanup handlers, after all its watchers and workers are gone (registration.wind_down).
    """
    asked = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({asked, *root_tasks}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        asked.cancel()
    exiting.set()
    kopf_stop.set()
    await registration.wind_down(memo)


KOPF_SOURCES = str(Path(kopf.__file__).parent)


async def reap_leftovers(root_tasks: Collection[asyncio.Task[Any]], *, kept: Set[asyncio.Task[Any]]) -> None:
    """Cancel kopf's own tasks that outlive its root tasks.

    By then the daemons are stopped and the workers are done; what is left of kopf's is litter: a
    discovery request of an operator stopped while starting, the pause-waiter of a watch stream
    closed mid-event. kopf waits a fixed 5 s for such "hung" tasks on every stop before it cancels
    them itself; they do no work, so they are cancelled at once. Tasks of others in the same loop
    (the federation server of `run --with-server`) are left to kopf's rule.
    """
    await asyncio.wait(root_tasks)
    current = asyncio.current_task()
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if task is not current and task not in kept and code and code.co_filename.startswith(KOPF_SOURCES):
            task.cancel()


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig", type=Path, help="kubeconfig file (default: in-cluster, then $KUBECONFIG)"
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace", "-n", action="append", default=[], help="watch this namespace (repeatable)"
    )
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch all namespaces (default)")
    parser.add_argument(
        "--site", default="federation", help="this site's name, told to remotes in ping replies"
    )
    parser.add_argument(
        "--ingress-provider",
        choices=list(PROVIDERS),
        default="none",
        help="which edge objects to write (see docs/ingress.md)",
    )
    parser.add_argument(
        "--peering", help="kopf peering name: a second replica with a lower priority stands by"
    )
    parser.add_argument(
        "--priority", type=int, default=0, help="kopf peering priority (replicas must differ)"
    )
    parser.add_argument("--liveness", help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument(
        "--cert-check-interval", type=float, default=60.0, help="seconds between certificate checks"
    )
    parser.add_argument("--metrics-port", type=int, help="serve the operator's /metrics on this port")
    parser.add_argument(
        "--peer-check-interval", type=float, default=30.0, help="seconds between credential checks per peer"
    )
    parser.add_argument(
        "--ingress-check-interval", type=float, default=60.0, help="seconds between edge checks per namespace"
    )
    parser.add_argument(
        "--heartbeat-workers",
        type=int,
        help="pings in flight at most (default: 64 per usable CPU, between 32 and 256; docs/operations.md)",
    )
    parser.add_argument(
        "--reconcile-concurrency",
        type=_positive,
        default=OperatorConfig.reconcile_concurrency,
        help="credentials passes of changed peers in flight at most (a start over many peers; "
        'docs/operations.md, "Many peers")',
    )
    parser.add_argument(
        "--api-max-in-flight",
        type=_positive,
        default=OperatorConfig.api_max_in_flight,
        help="kopf API requests in flight at most; more wait before their timeout (docs/operations.md)",
    )
    parser.add_argument("--verbose", "-v", action="store_true")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def ingress_config_from_env(provider: str, environ: Mapping[str, str]) -> IngressConfig:
    """The edge wiring from the chart's environment (docs/ingress.md, "Operator settings").

    A provider that publishes a route needs the public host: without it the route would match
    any host, and client-certificate verification is per host, so the operator refuses to start.
    """
    host = environ.get("FEDERATION_HOST", "")
    if provider != "none" and not host:
        raise SystemExit(f"--ingress-provider {provider} needs FEDERATION_HOST (the federation host)")
    gateway_namespace, _, gateway_name = environ.get("FEDERATION_GATEWAY", "").rpartition("/")
    return IngressConfig(
        host=host,
        labels=api.managed_labels(role=api.ROLE_INGRESS),
        gateway_name=gateway_name or "federation",
        gateway_namespace=gateway_namespace or None,
        server_service=environ.get("FEDERATION_SERVER_SERVICE") or "federation-server",
        # The chart runs the federation server's Service beside the operator.
        server_namespace=environ.get("POD_NAMESPACE") or None,
        ingress_class_name=environ.get("FEDERATION_INGRESS_CLASS") or "nginx",
    )


def config_from_args(args: argparse.Namespace) -> OperatorConfig:
    return OperatorConfig(
        kubeconfig=args.kubeconfig,
        namespaces=tuple(args.namespace),
        site=args.site,
        ingress_provider=args.ingress_provider,
        ingress=ingress_config_from_env(args.ingress_provider, os.environ),
        peering=args.peering,
        priority=args.priority,
        liveness=args.liveness,
        cert_check_interval=args.cert_check_interval,
        peer_check_interval=args.peer_check_interval,
        metrics_port=args.metrics_port,
        ingress_check_interval=args.ingress_check_interval,
        heartbeat_workers=args.heartbeat_workers,
        reconcile_concurrency=args.reconcile_concurrency,
        api_max_in_flight=args.api_max_in_flight,
        pod_name=os.environ.get("POD_NAME") or None,
        pod_namespace=os.environ.get("POD_NAMESPACE") or None,
    )


__all__: Sequence[str] = ["OperatorMemo", "build_registry", "config_from_args", "configure", "run_operator"]
