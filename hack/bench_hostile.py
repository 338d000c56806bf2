"""Unauthenticated callers against the federation server: memory and a real peer's latency.

    python hack/bench_hostile.py [--connections 200] [--attack-seconds 20] [--pings 300]

Three processes on 127.0.0.1, all loopback: the federation server (direct mTLS listener, default
`ConnectionLimits`, one peer indexed), an attacker, and this script as the real peer. The attacker
keeps --connections TLS connections without a client certificate open for --attack-seconds, a
third each of:

- max headers: a request line, then up to 60 headers of 32,000 bytes, never the final CRLF (the
  review's attack, which took the server from 88 to 260 MiB);
- slowloris: a request line, then one header byte every 0.5 s;
- idle: a handshake, then nothing.

Whenever the server ends one, the attacker opens a new one of the same kind at once (every loop
is bounded by the attack's deadline). The real peer pings (`GET /api/federation/ping`, a fresh
mTLS handshake per ping, as the heartbeat does) one after another: --pings without attack, then
during the attack. Server RSS (VmRSS of its process) is sampled every 50 ms: baseline after the
unattacked pings, peak during the attack, and after the attacker closed everything and the
server's connections drained.

Targets (issue #13): peak - baseline < 64 MiB, memory returned after close (within 16 MiB of the
baseline), ping p99 during the attack < 2x the p99 without.
"""

import argparse
import asyncio
import contextlib
import json
import logging
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web

from federation_devkit.localsite import free_port, write_server_identity
from federation_operator.domain import api, tokens
from federation_operator.domain.certs import issue_certificate
from federation_operator.server.app import AppConfig, create_app, make_runner
from federation_operator.server.index import PeerIndex
from federation_operator.server.protocol import limit_tls_read_buffer
from federation_operator.server.tls import PinnedTLS

PING = api.PING_PATH.encode()
_MIB = 1024 * 1024


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


# ---- the server process -------------------------------------------------------------------------
def serve(directory: Path, port: int) -> None:
    limit_tls_read_buffer()  # as `federation-operator serve` does
    now = datetime.now(tz=UTC)
    issued = issue_certificate(subject="peer", validity=timedelta(days=1), now=now)
    token = tokens.generate_token()
    (directory / "peer.crt").write_text(issued.info.pem)
    (directory / "peer.key").write_bytes(issued.key_pem.reveal())
    (directory / "peer.token").write_text(token.reveal())
    write_server_identity(directory, "bench")
    index = PeerIndex()
    index.upsert_peer(
        {
            "metadata": {"namespace": "bench", "name": "peer"},
            "spec": {"remoteCertificates": [{"pem": issued.info.pem}]},
            "status": {"inbound": {"acceptedHashes": [{"hash": tokens.hash_token(token)}]}},
        }
    )
    index.mark_synced()

    async def main() -> None:
        runner = make_runner(create_app(index=index, config=AppConfig(site="bench")))
        await runner.setup()
        tls = PinnedTLS(
            index=index,
            cert_file=directory / "bench-federation-tls.crt",
            key_file=directory / "bench-federation-tls.key",
        )
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls.context, backlog=1024).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


# ---- the attacker process -----------------------------------------------------------------------
async def _hostile(kind: str, port: int, context: ssl.SSLContext, deadline: float) -> int:
    """Keep one connection of `kind` open until `deadline`; returns how many were opened."""
    opened = 0
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"),
                timeout=max(0.1, deadline - loop.time()),
            )
        except (OSError, TimeoutError):
            continue
        opened += 1
        try:
            if kind == "headers":
                writer.write(b"GET " + PING + b" HTTP/1.1\r\nHost: bench\r\n")
                for number in range(60):
                    if loop.time() >= deadline:
                        break
                    writer.write(b"X-Fill-%d: %s\r\n" % (number, b"a" * 32_000))
                    await writer.drain()
                await asyncio.wait_for(reader.read(), timeout=max(0.1, deadline - loop.time()))
            elif kind == "slowloris":
                writer.write(b"GET " + PING + b" HTTP/1.1\r\nHost: bench\r\nX-Slow: ")
                while loop.time() < deadline and not reader.at_eof():
                    writer.write(b"a")
                    await writer.drain()
                    await asyncio.sleep(0.5)
            else:
                await asyncio.wait_for(reader.read(), timeout=max(0.1, deadline - loop.time()))
        except (OSError, TimeoutError, ssl.SSLError):
            pass
        finally:
            writer.close()
    return opened


def attack(port: int, ca: Path, connections: int, seconds: float) -> None:
    # A write to a connection the server just cut is expected here, thousands of times.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    context = ssl.create_default_context(cafile=str(ca))
    kinds = ("headers", "slowloris", "idle")

    async def main() -> None:
        deadline = asyncio.get_running_loop().time() + seconds
        counts = await asyncio.gather(
            *(_hostile(kinds[number % 3], port, context, deadline) for number in range(connections))
        )
        print(json.dumps({"opened": sum(counts)}), flush=True)

    asyncio.run(main())


# ---- the real peer (this process) ---------------------------------------------------------------
async def _ping(port: int, context: ssl.SSLContext, token: str) -> float:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
    )
    writer.write(
        b"GET "
        + PING
        + b" HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer "
        + token.encode()
        + b"\r\nConnection: close\r\n\r\n"
    )
    reply = await reader.read()
    writer.close()
    if not reply.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"ping refused: {reply[:60]!r}")
    return time.perf_counter() - started


async def _pings(port: int, context: ssl.SSLContext, token: str, count: int) -> list[float]:
    return [await _ping(port, context, token) for _ in range(count)]


def _p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


async def _sample_rss(pid: int, stop: asyncio.Event, peak: list[int]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], _rss(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--attack-seconds", type=float, default=20.0)
    parser.add_argument("--pings", type=int, default=300)
    parser.add_argument("--server-env", action="append", default=[], help="KEY=VALUE for the server process")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--attack", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.port)
        return 0
    if args.attack is not None:
        attack(args.port, args.attack / "bench-federation-ca.crt", args.connections, args.attack_seconds)
        return 0

    with tempfile.TemporaryDirectory() as temp:
        directory, port = Path(temp), free_port()
        script = [sys.executable, os.path.abspath(__file__)]
        server = subprocess.Popen(
            [*script, "--serve", str(directory), "--port", str(port)],
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, **dict(item.split("=", 1) for item in args.server_env)),
        )
        try:
            assert server.stdout is not None
            if server.stdout.readline().strip() != "ready":
                raise SystemExit("server did not start")
            context = ssl.create_default_context(cafile=str(directory / "bench-federation-ca.crt"))
            context.load_cert_chain(directory / "peer.crt", directory / "peer.key")
            token = (directory / "peer.token").read_text()
            quiet = asyncio.run(_pings(port, context, token, args.pings))
            baseline = _rss(server.pid)

            async def under_attack() -> tuple[list[float], int, str]:
                attacker = await asyncio.create_subprocess_exec(
                    *script, "--attack", str(directory), "--port", str(port),
                    "--connections", str(args.connections), "--attack-seconds", str(args.attack_seconds),
                    stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
                stop, peak = asyncio.Event(), [baseline]
                sampler = asyncio.create_task(_sample_rss(server.pid, stop, peak))
                # Let the attack ramp up to its full width before measuring the real peer.
                await asyncio.sleep(min(3.0, args.attack_seconds / 4))
                samples: list[float] = []
                loop = asyncio.get_running_loop()
                end = loop.time() + args.attack_seconds * 0.6
                while loop.time() < end and len(samples) < args.pings:
                    samples.append(await _ping(port, context, token))
                output, _ = await attacker.communicate()
                stop.set()
                await sampler
                return samples, peak[0], output.decode().strip()

            attacked, peak, attacker_report = asyncio.run(under_attack())
            # The server's side of the attacker's connections closes as the attacker exits;
            # give it the same time a keep-alive takes, then read RSS again.
            settle_deadline = time.monotonic() + 20
            after = _rss(server.pid)
            while time.monotonic() < settle_deadline and after - baseline > 16 * _MIB:
                time.sleep(0.5)
                after = _rss(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=10)

    quiet_p99, attacked_p99 = _p99(quiet), _p99(attacked)
    report = {
        "connections": args.connections,
        "attacker": json.loads(attacker_report or "{}"),
        "rss_baseline_mib": round(baseline / _MIB, 1),
        "rss_peak_mib": round(peak / _MIB, 1),
        "rss_growth_mib": round((peak - baseline) / _MIB, 1),
        "rss_after_close_mib": round(after / _MIB, 1),
        "ping_p99_quiet_ms": round(quiet_p99 * 1000, 2),
        "ping_p99_attacked_ms": round(attacked_p99 * 1000, 2),
        "ping_p99_ratio": round(attacked_p99 / quiet_p99, 2),
        "pings": {"quiet": len(quiet), "attacked": len(attacked)},
    }
    print(json.dumps(report, indent=2))
    growth_ok = peak - baseline < 64 * _MIB
    returned_ok = after - baseline < 16 * _MIB
    latency_ok = attacked_p99 < 2 * quiet_p99
    print(f"RSS growth < 64 MiB: {growth_ok}; returned after close: {returned_ok}; p99 < 2x: {latency_ok}")
    return 0 if growth_ok and returned_ok and latency_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
