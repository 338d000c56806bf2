"""Benchmark the federation server's forward-auth against a bare aiohttp handler, same run, same box.

    python hack/bench_auth.py [--duration 10] [--rounds 3] [--connections 200] [--peers 1000]
                              [--open-loop-fraction 0.5] [--pin]

Each server runs in its own process on 127.0.0.1 (plain HTTP, as behind a proxy). The federation
server is configured as behind Envoy: XFCC `Hash=` from a trusted 127.0.0.1, `Authorization:
Bearer`, an index of --peers peers, audit log to a file, metrics on. The baseline is a bare
aiohttp handler returning 200 on the same path, served by the same runner settings, sent the SAME
requests (it ignores the headers); a second baseline without those headers shows what they cost.

Two load models, both with --connections persistent keep-alive connections:

1. Closed loop (what issue 4 asks): `wrk -t1 -c200 --latency`. Every connection sends its next
   request as soon as the previous reply arrives, so the server is saturated and, by Little's law,
   latency ~= connections / throughput: it measures capacity, and its latency is queueing.
   Throughput ratio = federation req/s / bare req/s. The servers are measured alternately,
   --rounds times each, so that drift in the machine's background load hits both alike.
2. Open loop at a fixed rate: --open-loop-fraction of the federation server's median closed-loop
   throughput, the same rate for both servers. wrk cannot send at a fixed rate (wrk2 is not in
   Debian), so the client is this script (`--open-loop-client`, asyncio protocols, its own
   process): connection k sends requests on the timetable t0 + (k + connections * j) / rate and
   latency is measured from the SCHEDULED time, so a slow reply that delays the next send counts
   against the server (no coordinated omission). The client reports its own timer lag on idle
   connections, so a saturated client would show.

With --pin (needs >= 2 CPUs) the server runs on CPU 0 and the client (wrk or the open-loop client)
on CPU 1 (`taskset`), so that they never take turns on one core. Off by default: on a machine
shared with other work, a pinned server cannot move away from a busy core and loses more to the
background load than it gains.

Targets (issue 4): throughput ratio >= 0.5 and p99 < 5 ms; the script prints which load model
meets which target.
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web

from federation_operator.domain import api, tokens
from federation_operator.domain.certs import issue_certificate
from federation_operator.server.app import AppConfig, create_app, make_runner
from federation_operator.server.audit import AuditLog
from federation_operator.server.clientcert import CertSource, CertSourceConfig, parse_networks
from federation_operator.server.index import PeerIndex

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_WARMUP_SECONDS = 2
# Open-loop replies scheduled in the first second are not counted (connections ramping up).
_OPEN_LOOP_SETTLE_SECONDS = 1.0
_SERVER_CPU = "0"
_CLIENT_CPU = "1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _index(peers: int, token: tokens.SecretText) -> tuple[PeerIndex, str]:
    """`peers` peers pinned by thumbprint; the last one's thumbprint and token are the client's."""
    index = PeerIndex()
    now = datetime.now(tz=UTC)
    thumbprint = issue_certificate(subject="bench", validity=timedelta(days=1), now=now).info.thumbprint
    for number in range(peers):
        name = f"peer-{number}"
        pin = thumbprint if number == peers - 1 else "sha256:" + f"{number:064x}"
        peer_token = token if number == peers - 1 else tokens.generate_token()
        index.upsert_peer(
            {
                "metadata": {"namespace": "bench", "name": name},
                "spec": {"remoteCertificates": [{"thumbprint": pin}]},
                "status": {"inbound": {"acceptedHashes": [{"hash": tokens.hash_token(peer_token)}]}},
            }
        )
    index.mark_synced()
    return index, thumbprint


async def _serve(app: web.Application, port: int) -> None:
    runner = make_runner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


def serve_federation(port: int, peers: int, token_text: str, audit_path: str) -> None:
    index, thumbprint = _index(peers, tokens.SecretText(token_text))
    sources = CertSourceConfig(
        sources=frozenset({CertSource.XFCC}), trusted_proxies=parse_networks(["127.0.0.1"])
    )
    with open(audit_path, "a", encoding="utf-8") as audit:
        app = create_app(
            index=index,
            config=AppConfig(site="bench", cert_sources=sources, rate_limit_burst=1_000_000),
            audit=AuditLog(audit),
        )
        print(thumbprint, flush=True)
        asyncio.run(_serve(app, port))


def serve_bare(port: int) -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(status=200)

    app = web.Application()
    app.router.add_route("*", api.FORWARD_AUTH_PATH, ok)
    asyncio.run(_serve(app, port))


# --- closed loop: wrk ------------------------------------------------------------------------
def _wrk(
    url: str, *, headers: dict[str, str], duration: int, connections: int, pin: bool
) -> dict[str, float]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    if pin:
        argv = ["taskset", "-c", _CLIENT_CPU, *argv]
    output = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}  # type: ignore[union-attr]
    for label in ("50", "99"):
        value, unit = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
        result[f"p{label}_ms"] = float(value) * _UNITS[unit]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    result["non2xx"] = float(non2xx.group(1)) if non2xx else 0.0
    return result


# --- open loop: our own fixed-rate client -------------------------------------------------------
class _Connection(asyncio.Protocol):
    """One keep-alive connection sending `request` at its scheduled times, one at a time."""

    def __init__(self, *, request: bytes, times: list[float], record_from: float, done: asyncio.Future[None]):
        self._request = request
        self._times = times
        self._next = 0
        self._record_from = record_from
        self._done = done
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._scheduled = 0.0
        self.latencies: list[float] = []
        self.lags: list[float] = []
        self.failures = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._send_next()

    def _send_next(self) -> None:
        if self._next >= len(self._times):
            if not self._done.done():
                self._done.set_result(None)
            return
        self._scheduled = self._times[self._next]
        self._next += 1
        loop = asyncio.get_running_loop()
        if self._scheduled > loop.time():
            loop.call_at(self._scheduled, self._send, True)
        else:
            self._send(False)

    def _send(self, idle: bool) -> None:
        assert self._transport is not None
        if idle and self._scheduled >= self._record_from:
            # How late our own timer fired: the client's share of any latency we report.
            self.lags.append(asyncio.get_running_loop().time() - self._scheduled)
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self._buffer[:end].decode("latin-1")
            match = re.search(r"(?im)^content-length:\s*(\d+)", head)
            total = end + 4 + (int(match.group(1)) if match else 0)
            if len(self._buffer) < total:
                return
            self._buffer = self._buffer[total:]
            now = asyncio.get_running_loop().time()
            if self._scheduled >= self._record_from:
                self.latencies.append(now - self._scheduled)
                if not head.startswith("HTTP/1.1 2"):
                    self.failures += 1
            self._send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            self._done.set_exception(ConnectionError(f"connection lost: {exc}"))


async def _open_loop(
    *, port: int, headers: dict[str, str], rate: float, duration: float, connections: int
) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    lines = [f"GET {api.FORWARD_AUTH_PATH} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    total = int(rate * duration)
    start = loop.time() + 0.5  # connections are set up before the timetable starts
    record_from = start + _OPEN_LOOP_SETTLE_SECONDS
    protocols: list[_Connection] = []
    waits: list[asyncio.Future[None]] = []
    for number in range(connections):
        times = [start + index / rate for index in range(number, total, connections)]
        done: asyncio.Future[None] = loop.create_future()
        protocol = _Connection(request=request, times=times, record_from=record_from, done=done)
        await loop.create_connection(lambda p=protocol: p, "127.0.0.1", port)  # type: ignore[misc]
        protocols.append(protocol)
        waits.append(done)
    await asyncio.gather(*waits)
    elapsed = loop.time() - record_from
    latencies = sorted(value for protocol in protocols for value in protocol.latencies)
    lags = sorted(value for protocol in protocols for value in protocol.lags)

    def quantile(values: Sequence[float], fraction: float) -> float:
        return values[min(len(values) - 1, int(fraction * len(values)))] * 1000.0 if values else 0.0

    return {
        "rate": rate,
        "achieved": len(latencies) / elapsed,
        "p50_ms": quantile(latencies, 0.50),
        "p99_ms": quantile(latencies, 0.99),
        "p999_ms": quantile(latencies, 0.999),
        "max_ms": latencies[-1] * 1000.0 if latencies else 0.0,
        "client_lag_p99_ms": quantile(lags, 0.99),
        "non2xx": float(sum(protocol.failures for protocol in protocols)),
    }


def _run_open_loop(
    *, port: int, headers: dict[str, str], rate: float, duration: int, connections: int, pin: bool
) -> dict[str, float]:
    argv = [
        sys.executable,
        __file__,
        "--open-loop-client",
        json.dumps([port, headers, rate, duration, connections]),
    ]
    if pin:
        argv = ["taskset", "-c", _CLIENT_CPU, *argv]
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    result: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return result


# --- orchestration ---------------------------------------------------------------------------
class _Server:
    def __init__(self, argv: list[str], *, pin: bool) -> None:
        command = [sys.executable, __file__, *argv]
        if pin:
            command = ["taskset", "-c", _SERVER_CPU, *command]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.lines: list[str] = []
        while (line := self.process.stdout.readline().strip()) != "ready":
            if not line and self.process.poll() is not None:
                raise SystemExit(f"server {argv} exited")
            self.lines.append(line)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (taskset execs, same pid)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def _median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def bench(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    pin = args.pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    token = tokens.generate_token()
    closed: dict[str, list[dict[str, float]]] = {"federation": [], "bare": [], "bare, no headers": []}
    opened: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as directory:
        audit = Path(directory) / "audit.jsonl"
        fed_port, bare_port = _free_port(), _free_port()
        federation = _Server(
            ["--serve-federation", str(fed_port), str(args.peers), token.reveal(), str(audit)], pin=pin
        )
        try:
            bare = _Server(["--serve-bare", str(bare_port)], pin=pin)
        except BaseException:
            federation.stop()
            raise
        try:
            hexes = federation.lines[-1].removeprefix("sha256:")
            headers = {
                "x-forwarded-client-cert": f"Hash={hexes}",
                "Authorization": f"Bearer {token.reveal()}",
            }
            targets = {
                "federation": (federation, fed_port, headers),
                "bare": (bare, bare_port, headers),
                "bare, no headers": (bare, bare_port, {}),
            }
            for _, port, sent in targets.values():  # warm-up
                url = f"http://127.0.0.1:{port}{api.FORWARD_AUTH_PATH}"
                _wrk(url, headers=sent, duration=_WARMUP_SECONDS, connections=args.connections, pin=pin)
            for _ in range(args.rounds):
                for label, (server, port, sent) in targets.items():
                    url = f"http://127.0.0.1:{port}{api.FORWARD_AUTH_PATH}"
                    cpu = server.cpu_seconds()
                    row = _wrk(
                        url, headers=sent, duration=args.duration, connections=args.connections, pin=pin
                    )
                    # Server CPU per reply: less sensitive to background load than req/s, which
                    # also counts the time the server waited for a core.
                    row["cpu_us"] = (server.cpu_seconds() - cpu) / (row["rps"] * args.duration) * 1e6
                    closed[label].append(row)
            rate = round(args.open_loop_fraction * _median(closed["federation"], "rps"), -2)
            for label in ("federation", "bare"):
                _, port, sent = targets[label]
                opened[label] = _run_open_loop(
                    port=port,
                    headers=sent,
                    rate=rate,
                    duration=args.duration,
                    connections=args.connections,
                    pin=pin,
                )
        finally:
            federation.stop()
            bare.stop()
        audit_lines = len(audit.read_text(encoding="utf-8").splitlines())
    return _report(args, closed=closed, opened=opened, pin=pin, audit_lines=audit_lines)


def _report(
    args: argparse.Namespace,
    *,
    closed: dict[str, list[dict[str, float]]],
    opened: dict[str, dict[str, float]],
    pin: bool,
    audit_lines: int,
) -> int:
    load = os.getloadavg()[0]
    print(
        f"loopback, {args.connections} connections, {args.rounds} x {args.duration}s per server, "
        f"{os.cpu_count()} CPUs, {args.peers} peers, "
        f"pinned {'server CPU 0 / client CPU 1' if pin else 'no'}, "
        f"load average {load:.1f}"
    )
    print(f"1. closed loop (wrk -t1 -c{args.connections}), per round and median:")
    for label, rows in closed.items():
        runs = "  ".join(f"{row['rps']:.0f}" for row in rows)
        print(
            f"   {label:17s} req/s {runs:26s} median {_median(rows, 'rps'):7.0f}   "
            f"p50 {_median(rows, 'p50_ms'):6.2f} ms  p99 {_median(rows, 'p99_ms'):6.2f} ms  "
            f"server CPU {_median(rows, 'cpu_us'):5.1f} us/req  "
            f"non-2xx {sum(row['non2xx'] for row in rows):.0f}"
        )
    fed_rps = _median(closed["federation"], "rps")
    ratio = fed_rps / _median(closed["bare"], "rps")
    ratio_bare_headers = fed_rps / _median(closed["bare, no headers"], "rps")
    per_round = "  ".join(
        f"{fed['rps'] / bare['rps']:.2f}"
        for fed, bare in zip(closed["federation"], closed["bare"], strict=True)
    )
    closed_p99 = _median(closed["federation"], "p99_ms")
    cpu_ratio = _median(closed["bare"], "cpu_us") / _median(closed["federation"], "cpu_us")
    print(
        f"   throughput ratio {ratio:.2f} (per round {per_round}; {ratio_bare_headers:.2f} against the "
        f"bare handler sent no headers)   federation p99 {closed_p99:.2f} ms"
    )
    print(f"   server CPU per reply, bare/federation: {cpu_ratio:.2f}")
    rate = opened["federation"]["rate"]
    print(
        f"2. open loop at a fixed {rate:.0f} req/s ({args.open_loop_fraction:.0%} of the federation median):"
    )
    for label, row in opened.items():
        print(
            f"   {label:17s} achieved {row['achieved']:7.0f} req/s  p50 {row['p50_ms']:6.2f} ms  "
            f"p99 {row['p99_ms']:6.2f} ms  p99.9 {row['p999_ms']:6.2f} ms  max {row['max_ms']:6.2f} ms  "
            f"client timer lag p99 {row['client_lag_p99_ms']:.2f} ms  non-2xx {row['non2xx']:.0f}"
        )
    open_p99 = opened["federation"]["p99_ms"]
    bare_p99 = opened["bare"]["p99_ms"]
    print(
        f"   p99 federation/bare {open_p99:.2f}/{bare_p99:.2f} ms = {open_p99 / bare_p99:.2f}x   "
        f"audit lines {audit_lines}"
    )
    failures = sum(row["non2xx"] for row in closed["federation"]) + opened["federation"]["non2xx"]
    verdicts = [
        ("throughput ratio >= 0.5 (closed loop)", ratio >= 0.5),
        ("p99 < 5 ms, closed loop 200 connections", closed_p99 < 5.0),
        (f"p99 < 5 ms, open loop {rate:.0f} req/s", open_p99 < 5.0),
        ("every federation reply 2xx", failures == 0),
    ]
    for label, met in verdicts:
        print(f"   {'MET ' if met else 'MISS'} {label}")
    ok = ratio >= 0.5 and open_p99 < 5.0 and failures == 0
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="closed-loop runs per server")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--open-loop-fraction", type=float, default=0.5)
    parser.add_argument("--pin", action="store_true", help="server on CPU 0, client on CPU 1 (taskset)")
    parser.add_argument("--serve-federation", nargs=4, metavar=("PORT", "PEERS", "TOKEN", "AUDIT"))
    parser.add_argument("--serve-bare", type=int, metavar="PORT")
    parser.add_argument("--open-loop-client", metavar="JSON")
    args = parser.parse_args()
    if args.serve_federation:
        port, peers, token_text, audit_path = args.serve_federation
        serve_federation(int(port), int(peers), token_text, audit_path)
        return 0
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return 0
    if args.open_loop_client:
        port, headers, rate, duration, connections = json.loads(args.open_loop_client)
        result = asyncio.run(
            _open_loop(port=port, headers=headers, rate=rate, duration=duration, connections=connections)
        )
        print(json.dumps(result))
        return 0
    started = time.monotonic()
    code = bench(args)
    print(f"took {time.monotonic() - started:.0f}s")
    return code


if __name__ == "__main__":
    sys.exit(main())
