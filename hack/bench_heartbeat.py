"""Benchmark the heartbeat under saturation: API writes, Slow, echo, CPU per ping and memory, time
compressed.

Setup (all on 127.0.0.1): a sandbox API (subprocess `federation-operator sandbox --no-operator`),
the real federation server (subprocess `federation-operator serve`, direct mTLS, index fed by
watches on that API) and, in this process, the operator with its heartbeat scheduler. Every peer
pings the server and is accepted by it: each peer pins our FederationCert and accepts its own
outbound token (`spec.inbound.secretHash`), so the server finds the peer by pin + token.

Both sides of every link: the server answers a peer's ping with its view of that same
FederationPeer (`link` in the reply: its reachability, latency, last success), which becomes
the peer's `status.remote`. So each status write of ours changes what the next reply says about
us: a write forced by a change of `status.remote`'s view would come back as a write on every ping
(the echo, with no delay and nothing to damp it). Writes are tallied by what forced them, and
those forced by `remote` are the echo.

Saturation, whatever the machine's background load: this process (the operator) is pinned to
`--operator-cpus` CPUs (default 1; the sandbox and the server keep every CPU), and the default
load asks for more pings than one core can send: 2,000 peers every 3 s wall = 667 pings/s, where
the operator needs ~2.5 ms of CPU a ping (~400/s on a core of a quiet machine). The run counts as
saturated when the operator sent at most 90 % of the pings due in the window (the server's audit
lines against peers x window / interval: a measure from outside the operator). Otherwise it prints
NOT SATURATED and exits with 3, so its figures are never quoted for the saturated case.

Time compression: the operator's clock (`OperatorContext.clock`, which stamps status times and
decides the 5-minute rules) runs `--speedup` times faster than wall time, and `spec.heartbeat`
says `--interval` wall seconds, so one ping is `speedup * interval` seconds of operator time
(30 s by default, the production interval).

Measured, in a steady-state window after every peer's last ping was green:
- heartbeat status writes per peer-hour (operator time), against writing on every ping sent, by
  count and by each peer's spacing of writes; 409s apart; what forced each write;
- peers written `Slow` (every remote is the same healthy local server: a `Slow` is the
  operator's own lag) in the window and since the start, and reachability transitions written;
- the operator's saturation as it shows it: the share of one-second samples of its /metrics with
  `federation_heartbeat_saturated` 1, and its `HeartbeatSaturated` Events by the kind of object
  they are about (the operator's Pod, never a peer);
- this process's CPU seconds per 1,000 pings (the operator: heartbeat, kopf, API client), against
  a bare httpx loop in the same process doing the same network work: mTLS GET of the ping with
  a fresh connection and handshake each time; the server's and the sandbox's CPU in the window;
- this process's RSS.

Run: `python hack/bench_heartbeat.py` (defaults: 2,000 peers, 3 s wall interval, speedup 10, window
180 s wall = 30 min operator time, the operator on one CPU; about 7 minutes). `--operator-cpus 0`
leaves the operator unpinned (the pre-2026-12-02 setup: `--peers 1000 --interval 6 --speedup 5
--window 120 --operator-cpus 0`, which a quiet machine no longer saturates).
"""

import argparse
import asyncio
import base64
import collections
import ipaddress
import logging
import os
import random
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from federation_operator.adapters.k8s.client import Conflict, Kube
from federation_operator.adapters.k8s.resources import (
    CONFIGMAPS,
    EVENTS,
    FEDERATION_CERTS,
    FEDERATION_PEERS,
    SECRETS,
    Resource,
)
from federation_operator.controller.config import OperatorConfig, OperatorContext
from federation_operator.controller.threads import OperatorThread
from federation_operator.domain import api, tokens
from procfs import process_cpu_seconds

NAMESPACE = "bench"


class CountingKube(Kube):
    """Counts the heartbeat's status writes (status patches that set reachability), the accepted
    ones and the ones refused for a stale resourceVersion (409) apart, and notes when (operator
    time) each peer's were made."""

    heartbeat_writes: ClassVar[int] = 0
    # Peers whose heartbeat wrote `Slow` (every remote here is the same healthy local server, so a
    # Slow is the operator's own lag showing through), counted while `watching_slow` is set.
    watching_slow: ClassVar[bool] = False
    slow_peers: ClassVar[set[str]] = set()
    conflicts: ClassVar[int] = 0
    clock: ClassVar[Callable[[], datetime]] = staticmethod(lambda: datetime.now(tz=UTC))
    written_at: ClassVar[collections.defaultdict[str, list[datetime]]] = collections.defaultdict(list)
    # The latency each peer's last accepted write carried, and (old, new) for every write in the
    # window that changed it: what the latency writes were made of.
    latency_written: ClassVar[dict[str, int]] = {}
    latency_moves: ClassVar[list[tuple[int, int]]] = []
    # Peers written `Slow` at any time since the start (the ramp to green included).
    slow_ever: ClassVar[set[str]] = set()
    # Each peer's last written reachability, and (old, new) for every write in the window that
    # changed it.
    state_written: ClassVar[dict[str, str]] = {}
    transitions: ClassVar[collections.Counter[tuple[str, str]]] = collections.Counter()
    # Each peer's last written `status.remote` without the remote's clock, and the writes in the
    # window that carried a different one (the remote's view of the link riding along).
    remote_written: ClassVar[dict[str, object]] = {}
    remote_carried: ClassVar[int] = 0

    async def patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        body: object,
        **kwargs: Any,
    ) -> dict[str, Any]:
        heartbeat = (
            resource is FEDERATION_PEERS
            and kwargs.get("subresource") == "status"
            and isinstance(body, dict)
            and "reachability" in (body.get("status") or {})
        )
        try:
            result = await super().patch(resource, namespace, name, body, **kwargs)
        except Conflict:
            if heartbeat:
                CountingKube.conflicts += 1
            raise
        if heartbeat:
            CountingKube.heartbeat_writes += 1
            CountingKube.written_at[name].append(CountingKube.clock())
            status = body["status"]  # type: ignore[index]
            state = str(status.get("reachability"))
            if state == "Slow":
                CountingKube.slow_ever.add(name)
                if CountingKube.watching_slow:
                    CountingKube.slow_peers.add(name)
            old_state = CountingKube.state_written.get(name)
            if CountingKube.watching_slow and old_state is not None and old_state != state:
                CountingKube.transitions[(old_state, state)] += 1
            CountingKube.state_written[name] = state
            remote = status.get("remote")
            if isinstance(remote, dict):
                view = {key: value for key, value in remote.items() if key != "time"}
                if CountingKube.watching_slow and CountingKube.remote_written.get(name, view) != view:
                    CountingKube.remote_carried += 1
                CountingKube.remote_written[name] = view
            latency = status.get("latencyMilliseconds")
            if isinstance(latency, int):
                old = CountingKube.latency_written.get(name)
                if CountingKube.watching_slow and old is not None and old != latency:
                    CountingKube.latency_moves.append((old, latency))
                CountingKube.latency_written[name] = latency
        return result


def describe_moves(moves: list[tuple[int, int]]) -> str:
    """How far the written latency moved, as the factor between old and new (the larger over the
    smaller), and the ranges it moved between."""
    if not moves:
        return "none"
    factors = collections.Counter[str]()
    for old, new in moves:
        factor = max(old, new) / max(1, min(old, new))
        label = "<1.5x" if factor < 1.5 else "1.5-2x" if factor < 2 else "2-4x" if factor < 4 else ">=4x"
        factors[label] += 1
    olds = sorted(old for old, _ in moves)
    news = sorted(new for _, new in moves)

    def quartiles(values: list[int]) -> str:
        return "/".join(str(values[int(q * (len(values) - 1))]) for q in (0.1, 0.5, 0.9))

    return (
        f"{len(moves)} writes changed it; by factor {dict(sorted(factors.items()))}; "
        f"old ms p10/p50/p90 {quartiles(olds)}, new ms {quartiles(news)}"
    )


def steady_rate(written_at: dict[str, list[datetime]], *, since: datetime, until: datetime) -> float | None:
    """Writes per peer-hour from the spacing of each peer's own writes inside the window:
    (writes - 1) over the time from its first to its last, summed over peers. Unlike a count
    over the window, it does not depend on where the window cuts the refresh cycle (peers that
    went green together refresh together, so a count sees one wave more or less)."""
    gaps, span = 0, 0.0
    for times in written_at.values():
        inside = [moment for moment in times if since <= moment <= until]
        if len(inside) >= 2:
            gaps += len(inside) - 1
            span += (inside[-1] - inside[0]).total_seconds()
    return gaps / (span / 3600) if span else None


class WriteReasons(logging.Handler):
    """Tallies the heartbeat's debug line "heartbeat status written: <what changed>"."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.reasons: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("heartbeat status written: "):
            self.reasons[message.removeprefix("heartbeat status written: ")] += 1


def server_keys(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 it signed."""
    now = datetime.now(tz=UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")])
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.crt", directory / "server.crt", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    paths[2].chmod(0o600)
    return paths


def wait(predicate: Callable[[], object], *, timeout: float, what: str, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pin_operator(count: int) -> tuple[set[int], set[int]]:
    """Pin every thread of this process (the operator's) to the last `count` CPUs; (the operator's
    CPUs, all CPUs). 0, or as many as there are, pins nothing. Threads started later inherit it."""
    every = os.sched_getaffinity(0)
    if count <= 0 or count >= len(every):
        return every, every
    chosen = set(sorted(every)[-count:])
    for thread_id in os.listdir("/proc/self/task"):
        os.sched_setaffinity(int(thread_id), chosen)
    return chosen, every


def count_lines(path: Path) -> int:
    with path.open("rb") as stream:
        return sum(1 for _ in stream)


class Compressed:
    """Operator time: wall time since the start, `speedup` times faster."""

    def __init__(self, speedup: float) -> None:
        self.speedup = speedup
        self.wall_start = datetime.now(tz=UTC)
        self.mono_start = time.monotonic()

    def now(self) -> datetime:
        return self.wall_start + timedelta(seconds=(time.monotonic() - self.mono_start) * self.speedup)


def client_context(*, ca: Path, cert_pem: str, key_pem: bytes) -> ssl.SSLContext:
    directory = Path(tempfile.mkdtemp(prefix="bench-"))
    bundle = directory / "client.pem"
    bundle.write_bytes(cert_pem.encode() + key_pem)
    bundle.chmod(0o600)
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(bundle)
    shutil.rmtree(directory)
    return context


async def bare_loop(*, url: str, context: ssl.SSLContext, token: str, count: int) -> float:
    """The floor as a loop: the same mTLS GET, a fresh connection each time, 16 at a time, nothing
    else. CPU seconds for `count` GETs."""
    limits = httpx.Limits(max_keepalive_connections=0)
    semaphore = asyncio.Semaphore(16)
    async with httpx.AsyncClient(verify=context, limits=limits, trust_env=False) as client:

        async def one() -> None:
            async with semaphore:
                response = await client.get(url, headers={"Authorization": "Bearer " + token})
                assert response.status_code == 200, response.text

        started = cpu_seconds()
        await asyncio.gather(*(one() for _ in range(count)))
        return cpu_seconds() - started


async def bare_schedule(
    *, url: str, context: ssl.SSLContext, token: str, peers: int, interval: float, window: float
) -> tuple[float, int]:
    """The floor on the heartbeat's schedule: the same GET, `peers` tasks each every `interval`
    (jittered start), nothing else. (CPU seconds, GETs) over `window`. Spread-out requests cost
    more each than a tight loop (every step is its own event-loop wakeup), so this is the
    like-for-like reference for the operator."""
    limits = httpx.Limits(max_keepalive_connections=0)
    done = 0
    async with httpx.AsyncClient(verify=context, limits=limits, trust_env=False) as client:

        async def peer() -> None:
            nonlocal done
            loop = asyncio.get_running_loop()
            slot = loop.time() + random.uniform(0, interval)
            while True:
                await asyncio.sleep(max(0.0, slot - loop.time()))
                await client.get(url, headers={"Authorization": "Bearer " + token})
                done += 1
                slot += interval

        tasks = [asyncio.create_task(peer()) for _ in range(peers)]
        await asyncio.sleep(2 * interval)
        started, before = cpu_seconds(), done
        await asyncio.sleep(window)
        result = cpu_seconds() - started, done - before
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return result


class Saturation:
    """Samples the operator's own /metrics every second: its saturation gauge and pending cycles
    (absent before the scheduler existed: then reported as 0), and its lag histogram at the end."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.samples: list[dict[str, float]] = []

    def scrape(self) -> dict[str, float]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return {}
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def sample_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.samples.append(self.scrape())
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        self.samples.append(self.scrape())

    @property
    def saturated_share(self) -> float:
        flags = [sample.get("federation_heartbeat_saturated", 0.0) for sample in self.samples]
        return sum(flags) / len(flags) if flags else 0.0

    @property
    def max_pending(self) -> float:
        pending = [sample.get("federation_heartbeat_pending_cycles", 0.0) for sample in self.samples]
        return max(pending, default=0.0)

    def window_quantiles(self, metric: str, label: str, quantiles: tuple[float, ...]) -> str:
        """Quantiles of a histogram's observations inside the window (last sample minus first), as
        the bucket bound each falls under."""
        if len(self.samples) < 2:
            return "n/a"
        first, last = self.samples[0], self.samples[-1]
        buckets = sorted(
            (float(name.split('le="')[1].split('"')[0]), count - first.get(name, 0.0))
            for name, count in last.items()
            if name.startswith(metric + "_bucket") and label in name
        )
        total = buckets[-1][1] if buckets else 0.0
        if not total:
            return "n/a"
        bounds = (
            next(bound for bound, count in buckets if count >= quantile * total) for quantile in quantiles
        )
        return ", ".join(
            f"p{quantile * 100:g} <= {bound:g}s" for quantile, bound in zip(quantiles, bounds, strict=True)
        )

    def lag_quantile(self, quantile: float) -> str:
        """The histogram bucket the quantile falls in, as "<= Xs"."""
        last = self.samples[-1] if self.samples else {}
        total = last.get("federation_heartbeat_lag_seconds_count", 0.0)
        if not total:
            return "n/a"
        buckets = sorted(
            (float(name.split('le="')[1].rstrip('"}')), count)
            for name, count in last.items()
            if name.startswith("federation_heartbeat_lag_seconds_bucket")
        )
        for bound, count in buckets:
            if count >= quantile * total:
                return f"<= {bound:g}s"
        return "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--peers", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=3.0, help="wall seconds between pings of one peer")
    parser.add_argument("--speedup", type=float, default=10.0, help="operator time per wall second")
    parser.add_argument("--window", type=float, default=180.0, help="steady-state window, wall seconds")
    parser.add_argument("--baseline-pings", type=int, default=2000)
    parser.add_argument(
        "--operator-cpus",
        type=int,
        default=1,
        help="CPUs this process (the operator) may use; 0: all (the sandbox and the server use all)",
    )
    parser.add_argument(
        "--saturated-below",
        type=float,
        default=0.9,
        help="the run is saturated when the pings sent in the window are at most this share of those due",
    )
    args = parser.parse_args()
    operator_cpus, every_cpu = pin_operator(args.operator_cpus)

    def unpinned() -> None:
        os.sched_setaffinity(0, every_cpu)

    tool = shutil.which("federation-operator") or sys.exit("bench: federation-operator not on PATH")
    directory = Path(tempfile.mkdtemp(prefix="bench-heartbeat-"))
    ca, server_cert, server_key = server_keys(directory)
    kubeconfig = directory / "kubeconfig"
    audit = directory / "audit.jsonl"
    server_log = directory / "server.log"
    processes: list[subprocess.Popen[bytes]] = []
    thread: OperatorThread | None = None
    try:
        processes.append(
            subprocess.Popen(
                [tool, "sandbox", "--kubeconfig", str(kubeconfig), "--no-operator", "--namespace", NAMESPACE],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=unpinned,
            )
        )
        sandbox = processes[-1]
        wait(kubeconfig.exists, timeout=30, what="sandbox kubeconfig")
        clock = Compressed(args.speedup)
        CountingKube.clock = clock.now
        kube = CountingKube.from_kubeconfig(kubeconfig)
        metrics_port = free_port()
        config = OperatorConfig(
            kubeconfig=kubeconfig,
            namespaces=(NAMESPACE,),
            site="bench",
            # The credentials handler's periodic check is not what is measured here.
            peer_check_interval=3600.0,
            metrics_host="127.0.0.1",
            metrics_port=metrics_port,
        )
        thread = OperatorThread(
            config, context=OperatorContext(config=config, kube=kube, clock=clock.now)
        ).start()
        loop = asyncio.new_event_loop()
        admin = Kube.from_kubeconfig(kubeconfig)

        def run(coroutine: Any) -> Any:
            return loop.run_until_complete(coroutine)

        run(
            admin.create(
                FEDERATION_CERTS,
                NAMESPACE,
                {
                    "apiVersion": api.API_VERSION,
                    "kind": api.CERT_KIND,
                    "metadata": {"name": "bench-client"},
                    "spec": {"subject": "bench"},
                },
            )
        )
        wait(
            lambda: (
                (run(admin.get(FEDERATION_CERTS, NAMESPACE, "bench-client")) or {})
                .get("status", {})
                .get("certificate")
            ),
            timeout=30,
            what="FederationCert issued",
        )
        pem = run(admin.get(FEDERATION_CERTS, NAMESPACE, "bench-client"))["status"]["certificate"]
        run(
            admin.create(
                CONFIGMAPS,
                NAMESPACE,
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "bench-ca"},
                    "data": {"ca.crt": ca.read_text()},
                },
            )
        )
        port = free_port()
        processes.append(
            subprocess.Popen(
                [
                    tool,
                    "serve",
                    "--kubeconfig",
                    str(kubeconfig),
                    "--site",
                    "remote",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--tls-cert",
                    str(server_cert),
                    "--tls-key",
                    str(server_key),
                    "--http-port",
                    "0",
                    # Every simulated remote peer connects from 127.0.0.1: the server's per-source
                    # admission limits (docs/server.md) would see them as one caller and refuse most.
                    "--connection-rate",
                    "0",
                    "--max-handshakes-per-source",
                    "128",
                    "--metrics-port",
                    "0",
                    "--audit-log",
                    str(audit),
                ],
                stdout=subprocess.DEVNULL,
                stderr=server_log.open("wb"),
                preexec_fn=unpinned,
            )
        )
        server = processes[-1]

        def server_down() -> None:
            if server.poll() is not None:
                log = server_log.read_text(errors="replace")[-2000:]
                raise SystemExit(f"bench: the federation server exited with {server.returncode}:\n{log}")

        wait(lambda: audit.exists() or server.poll() is not None, timeout=30, what="federation server")
        server_down()
        endpoint = f"https://127.0.0.1:{port}"
        timeout = min(args.interval / 2, 10.0)
        heartbeat = {
            "interval": f"{args.interval:g}s",
            "timeout": f"{timeout:g}s",
            "slowThreshold": f"{timeout / 2:g}s",
        }
        first_token = None

        async def create_peers() -> None:
            nonlocal first_token
            semaphore = asyncio.Semaphore(16)

            async def one(index: int) -> None:
                nonlocal first_token
                token = tokens.generate_token()
                if index == 0:
                    first_token = token
                name = f"p{index:05d}"
                async with semaphore:
                    await admin.create(
                        SECRETS,
                        NAMESPACE,
                        {
                            "apiVersion": "v1",
                            "kind": "Secret",
                            "metadata": {"name": f"{name}-out"},
                            "data": {"token": base64.b64encode(token.reveal().encode()).decode()},
                        },
                    )
                    await admin.create(
                        FEDERATION_PEERS,
                        NAMESPACE,
                        {
                            "apiVersion": api.API_VERSION,
                            "kind": api.PEER_KIND,
                            "metadata": {"name": name},
                            "spec": {
                                "endpoint": endpoint,
                                "remoteCertificates": [{"pem": pem}],
                                "clientCertificateRef": {"name": "bench-client"},
                                "inbound": {"secretHash": tokens.hash_token(token)},
                                "outbound": {"secretRef": {"name": f"{name}-out", "key": "token"}},
                                "heartbeat": heartbeat,
                                "serverTrust": {"caBundleRef": {"kind": "ConfigMap", "name": "bench-ca"}},
                            },
                        },
                    )

            await asyncio.gather(*(one(index) for index in range(args.peers)))

        created = time.monotonic()
        run(create_peers())
        print(f"created {args.peers} peers in {time.monotonic() - created:.1f}s; waiting for all green")

        def all_green() -> bool:
            """Every peer's last ping was green (Reachable, or Slow on a host busy with other work)."""
            peers = run(admin.list(FEDERATION_PEERS, NAMESPACE))
            states = [(peer.get("status") or {}).get("reachability") for peer in peers]
            green = sum(1 for state in states if state in {"Reachable", "Slow"})
            print(f"  {green}/{args.peers} green ({states.count('Slow')} of them Slow)", flush=True)
            server_down()
            return bool(green == args.peers)

        wait(
            all_green,
            timeout=max(300.0, args.interval * 20),
            what="all peers green",
            every=args.interval,
        )
        # Settle past the first writes (Unknown -> Reachable, the remote's view catching up).
        time.sleep(3 * args.interval)

        load_before = f"{os.getloadavg()[0]:.2f}"
        reasons = WriteReasons()
        objects_logger = logging.getLogger("kopf.objects")
        objects_logger.addHandler(reasons)
        objects_logger.setLevel(logging.DEBUG)
        writes0, conflicts0 = CountingKube.heartbeat_writes, CountingKube.conflicts
        CountingKube.watching_slow = True
        saturation = Saturation(metrics_port)
        carried0 = CountingKube.remote_carried
        pings0, cpu0, since = count_lines(audit), cpu_seconds(), clock.now()
        server_cpu0, sandbox_cpu0 = process_cpu_seconds(server.pid), process_cpu_seconds(sandbox.pid)
        saturation.sample_for(args.window)
        server_cpu = process_cpu_seconds(server.pid) - server_cpu0
        sandbox_cpu = process_cpu_seconds(sandbox.pid) - sandbox_cpu0
        carried = CountingKube.remote_carried - carried0
        steady = steady_rate(CountingKube.written_at, since=since, until=clock.now())
        writes = CountingKube.heartbeat_writes - writes0
        conflicts = CountingKube.conflicts - conflicts0
        objects_logger.removeHandler(reasons)
        pings = count_lines(audit) - pings0
        cpu = cpu_seconds() - cpu0
        rss = rss_mib()
        thread.stop()
        thread = None
        events = run(admin.list(EVENTS, NAMESPACE))
        saturation_events = collections.Counter(
            (str((event.get("involvedObject") or {}).get("kind")), str(event.get("reason")))
            for event in events
            if event.get("reason") in {"HeartbeatSaturated", "HeartbeatCaughtUp"}
        )
        slow_events = sum(1 for event in events if event.get("reason") == "Slow")

        key_secret = run(admin.get(SECRETS, NAMESPACE, "bench-client-tls"))
        assert key_secret is not None
        assert first_token is not None
        key_pem = base64.b64decode(key_secret["data"][api.TLS_KEY_KEY])
        context = client_context(ca=ca, cert_pem=pem, key_pem=key_pem)
        url, token = endpoint + api.PING_PATH, first_token.reveal()
        bare_cpu = run(bare_loop(url=url, context=context, token=token, count=args.baseline_pings))
        schedule_cpu, schedule_pings = run(
            bare_schedule(
                url=url,
                context=context,
                token=token,
                peers=args.peers,
                interval=args.interval,
                window=min(args.window, 60.0),
            )
        )
        peer_hours = args.peers * args.window * args.speedup / 3600
        writes_per_peer_hour = writes / peer_hours
        pings_per_peer_hour = pings / peer_hours
        fewer = pings_per_peer_hour / writes_per_peer_hour if writes else float("inf")
        by_spacing = pings_per_peer_hour / steady if steady else None
        due = args.peers * args.window / args.interval
        sent_share = pings / due
        saturated = sent_share <= args.saturated_below
        echoes = sum(count for reason, count in reasons.reasons.items() if "remote" in reason.split(", "))
        ours = cpu / pings * 1000 if pings else float("nan")
        bare = bare_cpu / args.baseline_pings * 1000
        schedule = schedule_cpu / schedule_pings * 1000
        operator_interval = args.interval * args.speedup
        print()
        print(
            f"peers {args.peers}; interval {args.interval:g} s wall = {operator_interval:g} s operator time; "
            f"window {args.window:g} s wall = {args.window * args.speedup / 60:g} min operator time; "
            f"operator on CPUs {sorted(operator_cpus)} of {sorted(every_cpu)}; load average before the "
            f"window {load_before}, after {os.getloadavg()[0]:.2f}"
        )
        print(
            f"pings due in window: {due:.0f} ({due / args.window:.1f}/s); sent: {pings} "
            f"({pings / args.window:.1f}/s, {sent_share:.0%} of due); heartbeat status writes: {writes}"
        )
        print(f"  by what changed: {dict(reasons.reasons.most_common())}")
        print(f"  refused with 409 (re-read, decided again; not counted above): {conflicts}")
        print(f"  reachability transitions written: {dict(CountingKube.transitions.most_common())}")
        print(
            f"  status.remote: writes forced by it (the echo): {echoes}; writes that carried a changed "
            f"view of the remote along: {carried}"
        )
        print(
            f"API writes per peer-hour (count over the window): {writes_per_peer_hour:.2f}; "
            f"write-every-ping baseline {pings_per_peer_hour:.1f}; {fewer:.1f}x fewer"
        )
        if steady is not None and by_spacing is not None:
            print(
                f"API writes per peer-hour (from each peer's spacing of writes): {steady:.2f}; "
                f"{by_spacing:.1f}x fewer"
            )
        else:
            print("  (no peer wrote twice in the window: make it longer than 6 min of operator time)")
        print(f"CPU s per 1,000 pings: operator {ours:.3f}")
        print(f"  bare httpx mTLS loop (16 at a time): {bare:.3f}  -> ratio {ours / bare:.2f}")
        print(f"  bare httpx GETs on the heartbeat schedule: {schedule:.3f}  -> ratio {ours / schedule:.2f}")
        print(
            f"CPU s in the window: operator {cpu:.1f}, federation server {server_cpu:.1f}, "
            f"sandbox API {sandbox_cpu:.1f} (of {args.window:g} s wall)"
        )
        print(f"operator process RSS: {rss:.0f} MiB")
        print(
            f"saturation in the window: saturated {saturation.saturated_share:.0%} of samples; "
            f"cycles waiting for a worker: max {saturation.max_pending:.0f}; "
            f"lag p50 {saturation.lag_quantile(0.5)}, p99 {saturation.lag_quantile(0.99)} "
            f"(all cycles since start)"
        )
        print(
            f"saturation Events (kind of object, reason: count): {dict(saturation_events)}; "
            f"`Slow` Events on peers: {slow_events}"
        )
        print(
            f"peers written Slow: {len(CountingKube.slow_peers)} in the window, "
            f"{len(CountingKube.slow_ever)} since the start"
        )
        print(f"written latency moves in the window: {describe_moves(CountingKube.latency_moves)}")
        durations = saturation.window_quantiles(
            "federation_heartbeat_ping_duration_seconds", 'result="ok"', (0.5, 0.9, 0.99)
        )
        print(f"green ping durations in the window (the operator's histogram): {durations}")
        print()
        on_pod = sum(count for (kind, reason), count in saturation_events.items() if kind == "Pod")
        on_others = sum(saturation_events.values()) - on_pod
        verdicts = [
            ("peers written Slow (0)", not CountingKube.slow_ever),
            ("writes >= 10x below write-every-ping, by count", fewer >= 10),
            ("writes >= 10x below write-every-ping, by spacing", by_spacing is not None and by_spacing >= 10),
            ("no write forced by status.remote (no echo)", echoes == 0),
            ("saturation metric set in >= 90 % of the samples", saturation.saturated_share >= 0.9),
            ("HeartbeatSaturated Event on the operator's Pod, none on peers", on_pod > 0 and on_others == 0),
        ]
        for what, met in verdicts:
            print(f"{'met' if met else 'NOT MET'}: {what}")
        if not saturated:
            print(
                f"NOT SATURATED: the operator sent {sent_share:.0%} of the pings due (saturated: at most "
                f"{args.saturated_below:.0%}); these figures are not the saturated case. More --peers, a "
                "shorter --interval or fewer --operator-cpus"
            )
            return 3
        print(f"SATURATED: the operator sent {sent_share:.0%} of the pings due in the window")
        return 0
    finally:
        if thread is not None:
            thread.stop()
        for process in processes:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    raise SystemExit(main())
