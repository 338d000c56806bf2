"""`federation-operator run`: the kopf operator, built per instance so that two can share a process.

Handlers are registered into a fresh `kopf.OperatorRegistry` for every operator, never into
kopf's global registry, and get their configuration and API connection from kopf's `memo`. This
is what lets the tests and the demo run an EU and a US operator side by side, each against its
own API server, and what lets `OperatorThread` start and stop operators at will.
"""

import argparse
import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import kopf
import yaml

from federation_operator import api, certs
from federation_operator.ingress.config import IngressConfig
from federation_operator.logs import configure_logging

if TYPE_CHECKING:
    from federation_operator.server.main import ServerConfig

logger = logging.getLogger(__name__)

KOPF_PREFIX = f"kopf.{api.GROUP}"


@dataclass(frozen=True)
class OperatorConfig:
    kubeconfig: Path | None = None
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    site: str = "federation"
    ingress_provider: str = "none"
    # Where the edge objects point (docs/ingress.md); None: the operator writes no ingress object at all.
    ingress: IngressConfig | None = None
    # The federation server, run in-process beside the operator (`run --with-server`); None: not here.
    server: "ServerConfig | None" = None
    peering: str | None = None
    priority: int = 0
    liveness: str | None = None
    # How often a FederationCert is re-checked (its Secret still there and intact, expiry close).
    cert_check_interval: float = 60.0
    # The operator's own metrics (ping durations, results by factor, states, status writes).
    metrics_host: str = "0.0.0.0"  # noqa: S104 - a pod's listener; the chart's NetworkPolicy narrows it
    metrics_port: int | None = None
    # How often each peer is re-checked for an expired handoff or rotation overlap (seconds).
    peer_check_interval: float = 30.0
    # How often each peer's namespace edge objects are re-checked: pins expire without an event.
    ingress_check_interval: float = 60.0


@dataclass
class OperatorContext:
    """What every handler needs, handed over through kopf's memo."""

    config: OperatorConfig
    kube: Any  # federation_operator.k8s.client.Kube; typed loosely to keep import time low here
    clock: Callable[[], datetime] = certs.utcnow


def context_of(memo: Any) -> OperatorContext:
    context: OperatorContext = memo["context"]
    return context


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


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    from federation_operator import controller

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
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.networking.request_timeout = 30
        # Watching chosen namespaces: no cluster-wide list/watch of namespaces and CRDs, which the
        # chart's namespaced Roles do not grant; kopf then discovers our resources once at start.
        settings.scanning.disabled = bool(config.namespaces)

    if config.kubeconfig is not None:

        @kopf.on.login(registry=registry, id="login")
        def login(**_: Any) -> kopf.ConnectionInfo | None:
            return connection_info(config.kubeconfig)

    controller.register(registry, config)
    return registry


async def run_operator(
    *,
    config: OperatorConfig,
    stop: asyncio.Event | threading.Event,
    ready: asyncio.Event | threading.Event | None = None,
    context: OperatorContext | None = None,
) -> None:
    """Run one operator until `stop` is set."""
    from federation_operator.k8s.client import Kube

    # A caller may hand in a context (a test clock, a shared client); we close only what we opened.
    owned = context is None
    context = context or OperatorContext(config=config, kube=Kube.from_kubeconfig(config.kubeconfig))
    server_stop = asyncio.Event()
    server: asyncio.Task[None] | None = None
    if config.server is not None:
        from federation_operator.server.main import run_server

        server = asyncio.create_task(
            run_server(config=config.server, stop=server_stop), name="federation-server"
        )
    try:
        await kopf.operator(
            registry=build_registry(config),
            memo=kopf.Memo(context=context),
            clusterwide=not config.namespaces,
            namespaces=list(config.namespaces),
            standalone=config.peering is None,
            peering_name=config.peering,
            priority=config.priority,
            liveness_endpoint=config.liveness,
            stop_flag=stop,
            ready_flag=ready,
        )
    finally:
        server_stop.set()
        if server is not None:
            await server
        if owned:
            context.kube.close()


class LoopThread:
    """A coroutine `main(stop, ready)` in its own thread and event loop.

    kopf wants a loop of its own, and tests, the sandbox and the demo run operators and federation
    servers side by side and stop them one by one: `start()` returns once `main` set `ready` (or
    raises what it failed with), `stop()` sets `stop` in that loop and joins.
    """

    def __init__(self, *, name: str) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    async def main(self, *, stop: asyncio.Event, ready: asyncio.Event) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        async def body() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            ready = asyncio.Event()
            task = asyncio.create_task(self.main(stop=self._stop, ready=ready))
            waiter = asyncio.create_task(ready.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            self._ready.set()
            waiter.cancel()
            await task

        try:
            asyncio.run(body())
        except BaseException as error:  # reported to the starting thread
            self._error = error
            self._ready.set()

    def start(self, *, timeout: float = 30.0) -> Self:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"{self._thread.name} did not become ready")
        if self._error is not None or not self._thread.is_alive():
            raise RuntimeError(f"{self._thread.name} failed to start") from self._error
        return self

    def stop(self, *, timeout: float = 30.0) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class OperatorThread(LoopThread):
    """An operator in its own thread and event loop: how tests, the sandbox and the demo run it."""

    def __init__(self, config: OperatorConfig, *, context: OperatorContext | None = None) -> None:
        super().__init__(name="federation-operator")
        self.config = config
        self.context = context

    async def main(self, *, stop: asyncio.Event, ready: asyncio.Event) -> None:
        await run_operator(config=self.config, stop=stop, ready=ready, context=self.context)


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
        choices=["envoy-gateway", "ingress-nginx", "gateway-api", "none"],
        default="none",
        help="which edge objects to write (see docs/ingress.md)",
    )
    parser.add_argument(
        "--with-server", action="store_true", help="also run the federation server in-process"
    )
    from federation_operator.server.main import add_listener_arguments

    add_listener_arguments(parser.add_argument_group("federation server (with --with-server)"))
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
    parser.add_argument("--verbose", "-v", action="store_true")


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


def server_config_from_args(args: argparse.Namespace) -> "ServerConfig":
    from federation_operator.server.main import config_from_args as server_config

    return server_config(args)


def config_from_args(args: argparse.Namespace) -> OperatorConfig:
    return OperatorConfig(
        kubeconfig=args.kubeconfig,
        namespaces=tuple(args.namespace),
        site=args.site,
        ingress_provider=args.ingress_provider,
        ingress=ingress_config_from_env(args.ingress_provider, os.environ),
        server=server_config_from_args(args) if args.with_server else None,
        peering=args.peering,
        priority=args.priority,
        liveness=args.liveness,
        cert_check_interval=args.cert_check_interval,
        peer_check_interval=args.peer_check_interval,
        metrics_port=args.metrics_port,
        ingress_check_interval=args.ingress_check_interval,
    )


def main(args: argparse.Namespace) -> int:
    configure_logging(verbose=args.verbose)
    stop = asyncio.Event()

    async def _run() -> None:
        loop = asyncio.get_running_loop()
        import signal

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_operator(config=config_from_args(args), stop=stop)

    asyncio.run(_run())
    return 0


__all__: Sequence[str] = [
    "OperatorConfig",
    "OperatorContext",
    "OperatorThread",
    "build_registry",
    "run_operator",
]
