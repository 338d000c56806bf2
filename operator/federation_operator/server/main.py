"""`federation-operator serve`: the federation server (ping + forward-auth), pin + secret enforced.

Listeners: `--port` terminates mTLS itself (direct mode; needs --tls-cert/--tls-key), `--http-port`
serves plain HTTP behind a proxy (forward-auth and the header modes); both serve /healthz.
`--metrics-port` serves /metrics, /readyz and /healthz for in-cluster use only. Peers and inbound
hashes come from list+watch streams, never per request.
Audit lines (JSON) go to --audit-log (stdout by default); diagnostics go to stderr.
"""

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO, cast

from aiohttp import web

from federation_operator.server.admission import AdmittedTLSSite
from federation_operator.server.app import (
    AppConfig,
    create_app,
    create_ops_app,
    make_ops_runner,
    make_runner,
)
from federation_operator.server.audit import AuditLog
from federation_operator.server.auditfile import RotatingFile
from federation_operator.server.clientcert import CertSource, CertSourceConfig, parse_networks
from federation_operator.server.index import PeerIndex
from federation_operator.server.protocol import ConnectionLimits, limit_tls_read_buffer
from federation_operator.server.tls import PinnedTLS
from federation_operator.server.watch import IndexWatcher, load_connection

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerConfig:
    site: str
    kubeconfig: Path | None = None
    namespaces: tuple[str, ...] = ()
    host: str = "0.0.0.0"  # noqa: S104 - a server's listener; NetworkPolicy narrows it in the chart
    port: int = 8443
    tls_cert: Path | None = None
    tls_key: Path | None = None
    http_port: int | None = 8080
    # /metrics, /readyz, /healthz: a port the NetworkPolicy keeps in-cluster (None: not served).
    metrics_port: int | None = None
    cert_sources: CertSourceConfig = field(default_factory=CertSourceConfig)
    audit_log: str | None = "-"
    audit_max_bytes: int = 64 * 1024 * 1024
    audit_backups: int = 3
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig", type=Path, help="kubeconfig file (default: in-cluster, then $KUBECONFIG)"
    )
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable; default: all)",
    )
    parser.add_argument(
        "--site", default=os.environ.get("FEDERATION_SITE"), help="our site name, sent in ping replies"
    )
    add_listener_arguments(parser)
    # Not a listener argument: `run` has its own --metrics-port (the operator's metrics).
    parser.add_argument(
        "--metrics-port",
        dest="server_metrics_port",
        type=int,
        default=9090,
        help="/metrics, /readyz, /healthz on their own plain-HTTP port, for in-cluster use (0 = none)",
    )


def add_listener_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Listener and client-certificate options; `run --with-server` takes the same ones."""
    parser.add_argument("--host", default="0.0.0.0", help="listen address")  # noqa: S104
    parser.add_argument(
        "--port", type=int, default=8443, help="direct mTLS port (needs --tls-cert/--tls-key)"
    )
    parser.add_argument("--tls-cert", type=Path, help="server certificate (PEM) for direct mTLS")
    parser.add_argument("--tls-key", type=Path, help="server private key (PEM) for direct mTLS")
    parser.add_argument("--http-port", type=int, default=8080, help="plain HTTP port (0 = none)")
    parser.add_argument(
        "--client-cert-source",
        action="append",
        choices=[source.value for source in CertSource],
        default=[],
        help="where the client certificate comes from (repeatable; default: direct)",
    )
    parser.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        help="CIDR whose forwarded certificate headers are believed (repeatable)",
    )
    parser.add_argument(
        "--combine-cert-headers",
        action="store_true",
        help="allow several header --client-cert-source modes at once (a request carrying two is refused)",
    )
    parser.add_argument("--audit-log", default="-", help="audit JSON lines: a file path, or - for stdout")
    parser.add_argument(
        "--audit-max-bytes",
        type=int,
        default=64 * 1024 * 1024,
        help="an audit file is rotated at this size (PATH -> PATH.1 ...)",
    )
    parser.add_argument("--audit-backups", type=int, default=3, help="rotated audit files kept")
    defaults = ConnectionLimits()
    parser.add_argument(
        "--max-request-bytes",
        type=int,
        default=defaults.max_request_bytes,
        help="bytes of one request (line, headers, body) before it is refused with 431",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=defaults.header_timeout,
        help="seconds from a request's first byte to the end of its headers",
    )
    parser.add_argument(
        "--keepalive-timeout",
        type=float,
        default=defaults.keepalive_timeout,
        help="seconds an idle connection is kept open (also before its first request)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=defaults.max_connections,
        help="open connections per listener process; at the cap the oldest idle one is closed",
    )
    parser.add_argument(
        "--handshake-timeout",
        type=float,
        default=defaults.handshake_timeout,
        help="seconds a TLS handshake may take on the direct mTLS port before it is aborted",
    )
    parser.add_argument(
        "--max-handshakes",
        type=int,
        default=defaults.max_handshakes,
        help="TLS handshakes in progress at once; a connection beyond is closed before any TLS",
    )
    parser.add_argument(
        "--max-handshakes-per-source",
        type=int,
        default=defaults.max_handshakes_per_source,
        help="TLS handshakes in progress at once from one source address (an IPv6 /64)",
    )
    parser.add_argument(
        "--connection-rate",
        type=float,
        default=defaults.connection_rate,
        help="new connections per second per source address on the mTLS port (0 = unlimited)",
    )
    parser.add_argument(
        "--connection-burst",
        type=int,
        default=defaults.connection_burst,
        help="connections a source may open at once before --connection-rate applies",
    )


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    if not args.site:
        raise SystemExit("serve: --site (or $FEDERATION_SITE) is required")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise SystemExit("serve: --tls-cert and --tls-key go together")
    sources = frozenset(CertSource(value) for value in args.client_cert_source) or frozenset(
        {CertSource.DIRECT}
    )
    try:
        networks = parse_networks(args.trusted_proxy)
    except ValueError as error:
        raise SystemExit(f"serve: --trusted-proxy: {error}") from error
    if sources - {CertSource.DIRECT} and not networks:
        raise SystemExit("serve: header client-certificate sources need at least one --trusted-proxy")
    try:
        cert_sources = CertSourceConfig(
            sources=sources, trusted_proxies=networks, combine_headers=args.combine_cert_headers
        )
    except ValueError as error:
        raise SystemExit(f"serve: {error} (--combine-cert-headers)") from error
    return ServerConfig(
        site=args.site,
        kubeconfig=args.kubeconfig,
        namespaces=tuple(args.namespace),
        host=args.host,
        port=args.port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        http_port=args.http_port or None,
        metrics_port=getattr(args, "server_metrics_port", None) or None,
        cert_sources=cert_sources,
        audit_log=args.audit_log,
        audit_max_bytes=args.audit_max_bytes,
        audit_backups=args.audit_backups,
        limits=ConnectionLimits(
            max_request_bytes=args.max_request_bytes,
            header_timeout=args.header_timeout,
            keepalive_timeout=args.keepalive_timeout,
            max_connections=args.max_connections,
            handshake_timeout=args.handshake_timeout,
            max_handshakes=args.max_handshakes,
            max_handshakes_per_source=args.max_handshakes_per_source,
            connection_rate=args.connection_rate,
            connection_burst=args.connection_burst,
        ),
    )


@contextlib.contextmanager
def _audit_stream(config: "ServerConfig") -> Iterator[TextIO | None]:
    target = config.audit_log
    if target is None:
        yield None
    elif target == "-":
        yield sys.stdout  # the container runtime rotates it
    else:
        stream = RotatingFile(Path(target), max_bytes=config.audit_max_bytes, backups=config.audit_backups)
        try:
            yield cast(TextIO, stream)  # a text stream with a descriptor, as AuditLog wants
        finally:
            stream.close()


async def run_server(
    *,
    config: ServerConfig,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
    index: PeerIndex | None = None,
) -> None:
    """Serve until `stop` is set. Without `index`, one is built and fed from the API's watches;
    with one, the caller feeds it (tests, the sandbox) and marks it synced."""
    watcher_task: asyncio.Task[None] | None = None
    if index is None:
        index = PeerIndex()
        connection = load_connection(config.kubeconfig)
        watcher = IndexWatcher(connection=connection, index=index, namespaces=list(config.namespaces) or None)
        watcher_task = asyncio.create_task(watcher.run(), name="federation-index-watch")
    with _audit_stream(config) as stream:
        audit = AuditLog(stream) if stream is not None else None
        app = create_app(
            index=index, config=AppConfig(site=config.site, cert_sources=config.cert_sources), audit=audit
        )
        runner = make_runner(app, limits=config.limits)
        await runner.setup()
        ops_runner = make_ops_runner(create_ops_app(app))
        await ops_runner.setup()
        try:
            if config.metrics_port is not None:
                await web.TCPSite(ops_runner, config.host, config.metrics_port).start()
                logger.info(
                    "federation server: metrics and readiness on %s:%d", config.host, config.metrics_port
                )
            if config.tls_cert is not None and config.tls_key is not None:
                tls = PinnedTLS(index=index, cert_file=config.tls_cert, key_file=config.tls_key)
                await AdmittedTLSSite(
                    runner, config.host, config.port, ssl_context=tls.context, limits=config.limits
                ).start()
                logger.info("federation server: mTLS on %s:%d", config.host, config.port)
            if config.http_port is not None:
                await web.TCPSite(runner, config.host, config.http_port).start()
                logger.info("federation server: HTTP on %s:%d", config.host, config.http_port)
            if ready is not None:
                ready.set()
            await stop.wait()
        finally:
            if watcher_task is not None:
                watcher_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher_task
            await runner.cleanup()
            await ops_runner.cleanup()
            if audit is not None:
                audit.close()


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    config = config_from_args(args)
    limit_tls_read_buffer()

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_server(config=config, stop=stop)

    asyncio.run(serve())
    return 0
