"""Server CPU per authenticated reply over real mTLS, at 10 peers against N: the auth decision as a
caller experiences it.

    python hack/bench_replies.py [--peers 10000] [--requests 2000] [--rounds 2] [--status-writes 30]

Two sandboxes, one holding 10 FederationPeers and one N, each peer pinning a real client
certificate by PEM (ECDSA P-256, as the operator issues them) with its own token's hash accepted
in status (written through the status subresource, as the operator writes it). Over each,
`federation-operator serve` in direct mTLS, as a subprocess. Clients in this process (`--workers`
threads) send `GET /api/federation/ping` with `Authorization: Bearer`, each on a new TLS
connection with its caller's certificate (a heartbeat every 30 s outlives any keep-alive),
rotating over the callers in a scattered order: the 10-peer server over its 10, the N-peer server
over 10, 1,024 and all N, taking turns. The figure is the server process's CPU time
(/proc/PID/stat utime + stime, 10 ms ticks: use enough requests) per green reply: handshake,
request, decision, audit line, metrics. Every caller comes from 127.0.0.1, so the server runs
without its per-source connection limits (real peers come from their own addresses).

`--status-writes R`: then once more per server, while a thread writes a peer's status R times a
second at N peers (scaled down for 10: R x 10 / N), rotating over the peers, as the operator's
heartbeat does; 30 a second is about the heartbeat's routine write bound at 10,000 peers (1,817
a minute, docs/benchmarks.md). Each such write reaches the server's index through its watch.
Also printed: start to /readyz, RSS, and the first handshake's time and CPU (it loads every
pinned PEM into the trust store).
"""

import argparse
import concurrent.futures
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from federation_devkit.localsite import LOOPBACK, free_port, write_server_identity
from federation_devkit.sandbox.server import SandboxThread
from federation_operator.domain import api, tokens
from federation_operator.domain.certs import issue_certificate
from procfs import answers_ok, process_cpu_seconds, rss_kib

NAMESPACE: Final = "default"
PING: Final = "/api/federation/ping"
SMALL: Final = 10
STEP: Final = 7919  # coprime with every size used: k -> k * STEP % count visits each caller once


@dataclass(frozen=True)
class Caller:
    number: int
    cert_file: Path
    key_file: Path
    token: str


def _callers(count: int, directory: Path) -> list[Caller]:
    """`count` real client identities (ECDSA P-256, as the operator issues them), on disk for
    `load_cert_chain`, each with its own token."""
    now = datetime.now(UTC)
    callers = []
    for number in range(count):
        issued = issue_certificate(subject=f"bench-{number}", validity=timedelta(days=1), now=now)
        cert_file = directory / f"c{number}.crt"
        key_file = directory / f"c{number}.key"
        cert_file.write_text(issued.info.pem)
        key_file.write_bytes(issued.key_pem.reveal())
        callers.append(Caller(number, cert_file, key_file, tokens.generate_token().reveal()))
    return callers


def _peer(caller: Caller) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.PEER_KIND,
        "metadata": {"namespace": NAMESPACE, "name": f"peer-{caller.number:05d}"},
        "spec": {
            "endpoint": "https://127.0.0.1:9",
            "remoteCertificates": [{"pem": caller.cert_file.read_text()}],
        },
        "status": {
            "reachability": "Degraded",
            "inbound": {"acceptedHashes": [{"hash": tokens.hash_token(tokens.SecretText(caller.token))}]},
        },
    }


@dataclass
class Served:
    pid: int
    port: int
    callers: list[Caller]
    ready_s: float
    kubeconfig: Path


@contextmanager
def served(peers: int, *, directory: Path, workers: int = 8, timeout: float = 600.0) -> Iterator[Served]:
    """A sandbox holding `peers` peers, each pinning a real client certificate by PEM, and
    `federation-operator serve` in direct mTLS over it."""
    callers = _callers(peers, directory)
    with SandboxThread() as sandbox:
        kubeconfig = sandbox.write_kubeconfig(directory / "bench.kubeconfig")
        custom = k8s_client.CustomObjectsApi(
            k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        )

        def create(caller: Caller) -> None:
            body = _peer(caller)
            custom.create_namespaced_custom_object(api.GROUP, api.VERSION, NAMESPACE, api.PEER_PLURAL, body)
            # As the operator writes it: through the status subresource (a create drops status).
            custom.patch_namespaced_custom_object_status(
                api.GROUP,
                api.VERSION,
                NAMESPACE,
                api.PEER_PLURAL,
                body["metadata"]["name"],
                {"status": body["status"]},
            )

        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(create, callers))
        write_server_identity(directory, "bench")
        port, metrics = free_port(), free_port()
        command = [sys.executable, "-m", "federation_operator", "serve", "--kubeconfig", str(kubeconfig)]
        command += ["--site", "bench", "--host", LOOPBACK, "--port", str(port), "--http-port", "0"]
        command += ["--tls-cert", str(directory / "bench-federation-tls.crt")]
        command += ["--tls-key", str(directory / "bench-federation-tls.key")]
        command += ["--metrics-port", str(metrics), "--audit-log", str(directory / "audit.jsonl")]
        # Every caller here comes from 127.0.0.1, where real peers come from their own addresses:
        # no per-source limit on new connections.
        command += ["--connection-rate", "0", "--max-handshakes-per-source", "128"]
        log = (directory / "server.log").open("w")
        started = time.monotonic()
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            while not answers_ok(f"http://{LOOPBACK}:{metrics}/readyz"):
                if server.poll() is not None or time.monotonic() > started + timeout:
                    raise SystemExit(f"the server at {peers} peers did not get ready")
                time.sleep(0.05)
            yield Served(server.pid, port, callers, time.monotonic() - started, kubeconfig)
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()


def ping(port: int, caller: Caller) -> int:
    """One ping on a new connection with the caller's certificate and token; the HTTP status."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the server's identity is not what is measured here
    context.load_cert_chain(caller.cert_file, caller.key_file)
    request = (
        f"GET {PING} HTTP/1.1\r\nHost: {LOOPBACK}\r\nAuthorization: Bearer {caller.token}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii")
    with socket.create_connection((LOOPBACK, port), timeout=60) as raw, context.wrap_socket(raw) as tls:
        tls.sendall(request)
        reply = b""
        while chunk := tls.recv(65536):
            reply += chunk
    return int(reply.split(b" ", 2)[1])


def cpu_per_reply(
    target: Served, *, callers: int, requests: int, workers: int, budget: float = 120.0
) -> tuple[float, float, int]:
    """(server CPU ms per green reply, wall ms per reply, replies) over up to `requests` pings
    rotating over `callers` of the served callers, `workers` at a time, for at most `budget` s."""
    count = min(callers, len(target.callers))
    peers = len(target.callers)
    numbers = iter(range(requests))
    lock = threading.Lock()
    statuses: list[int] = []
    before, started = process_cpu_seconds(target.pid), time.monotonic()

    def work() -> None:
        while time.monotonic() < started + budget:
            with lock:
                k = next(numbers, None)
            if k is None:
                return
            status = ping(target.port, target.callers[k * STEP % count * STEP % peers])
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu, wall = process_cpu_seconds(target.pid) - before, time.monotonic() - started
    assert set(statuses) <= {200}, set(statuses)
    replies = len(statuses)
    return cpu / max(replies, 1) * 1e3, wall / max(replies, 1) * 1e3, replies


@contextmanager
def status_writes_at(*, kubeconfig: Path, peers: int, per_second: float) -> Iterator[list[int]]:
    """A thread writing one peer's status `per_second` times a second, rotating over the peers,
    as the operator's heartbeat does (lastProbeTime); yields the count written so far."""
    written = [0]
    if per_second <= 0:
        yield written
        return
    custom = k8s_client.CustomObjectsApi(
        k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    )
    stop = threading.Event()

    def write() -> None:
        number = 0
        while not stop.wait(1 / per_second):
            patch = {"status": {"lastProbeTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}}
            custom.patch_namespaced_custom_object_status(
                api.GROUP, api.VERSION, NAMESPACE, api.PEER_PLURAL, f"peer-{number % peers:05d}", patch
            )
            number += STEP
            written[0] += 1

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        yield written
    finally:
        stop.set()
        thread.join()


def run(*, peers: int, requests: int, rounds: int, workers: int, status_writes: float) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="bench-replies-") as small_dir,
        tempfile.TemporaryDirectory(prefix="bench-replies-") as big_dir,
        served(SMALL, directory=Path(small_dir)) as small,
        served(peers, directory=Path(big_dir)) as big,
    ):
        for target in (small, big):
            started, before = time.monotonic(), process_cpu_seconds(target.pid)
            status = ping(target.port, target.callers[0])
            seconds, cpu = time.monotonic() - started, process_cpu_seconds(target.pid) - before
            print(
                f"peers={len(target.callers)} ready_s={target.ready_s:.2f} "
                f"first_ping_s={seconds:.2f} first_ping_cpu_s={cpu:.2f} "
                f"status={status} rss_mib={rss_kib(target.pid) / 1024:.1f}",
                flush=True,
            )
        for round_ in range(rounds):
            for mix in dict.fromkeys(min(size, peers) for size in (SMALL, 1024, peers)):
                s_cpu, s_wall, _ = cpu_per_reply(small, callers=SMALL, requests=requests, workers=workers)
                b_cpu, b_wall, replies = cpu_per_reply(big, callers=mix, requests=requests, workers=workers)
                print(
                    f"round={round_} callers={mix} "
                    f"peers={SMALL} cpu_ms={s_cpu:.3f} wall_ms={s_wall:.3f} "
                    f"peers={peers} cpu_ms={b_cpu:.3f} wall_ms={b_wall:.3f} replies={replies} "
                    f"ratio={b_cpu / s_cpu:.2f}",
                    flush=True,
                )
        if status_writes > 0:
            for target in (small, big):
                count = len(target.callers)
                rate = status_writes * count / peers
                with status_writes_at(kubeconfig=target.kubeconfig, peers=count, per_second=rate) as written:
                    cpu, wall, replies = cpu_per_reply(
                        target, callers=count, requests=requests, workers=workers, budget=60.0
                    )
                print(
                    f"status_writes peers={count} writes_per_s={rate:.2f} "
                    f"cpu_ms={cpu:.3f} wall_ms={wall:.3f} "
                    f"replies={replies} writes={written[0]}",
                    flush=True,
                )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--peers", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2000, help="per server, mix and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4, help="client threads")
    parser.add_argument("--status-writes", type=float, default=30.0, help="per second at N peers; 0 = none")
    args = parser.parse_args()
    run(
        peers=args.peers,
        requests=args.requests,
        rounds=args.rounds,
        workers=args.workers,
        status_writes=args.status_writes,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
