"""Unauthenticated callers against the federation server: memory and a real peer's latency.

    python hack/bench_hostile.py [--connections 200] [--attack-seconds 20] [--pings 300]
                                 [--variants hold,flood] [--rounds 1] [--listener admitted|plain]

Three processes on loopback: the federation server (direct mTLS listener on 127.0.0.1, default
`ConnectionLimits`, one peer indexed), an attacker connecting from 127.1.0.2 and up, and this
script as the real peer connecting from 127.0.1.1-127.0.1.64 in turn (all of 127/8 is loopback:
a real attacker has addresses of its own too, and 64 addresses keep each under the per-source
rate while the peer pings back to back). The attacker keeps --connections TLS connections without a client
certificate open for --attack-seconds, a third each of:

- max headers: a request line, then up to 60 headers of 32,000 bytes, never the final CRLF (the
  review's attack, which took the server from 88 to 260 MiB);
- slowloris: a request line, then one header byte every 0.5 s;
- idle: a handshake, then nothing.

Whenever the server ends (or refuses) one, the attacker opens a new one of the same kind:

- `hold`: after 1 s, each connection from an address of its own (127.1.0.2 and up), so
  that the per-source limits do not bite and the connection bounds are what is measured (200
  connections held open, as the issue describes);
- `flood`: at once, all from 127.1.0.2 (a reconnect flood: the server cuts a max-headers
  connection within milliseconds, so this is hundreds of connection attempts per second);
- `flood-spread` (not in the default run): at once, from 200 addresses: a distributed reconnect
  flood, which per-source limits cannot stop. The real peer pings
(`GET /api/federation/ping`, a fresh mTLS handshake per ping, as the heartbeat does) one after
another: --pings without attack (the baseline), then during each attack.

Server RSS (VmRSS) is sampled every 50 ms: the baseline after the unattacked pings, the peak during
an attack, and after the attacker closed everything and the server's connections drained. Server
and attacker CPU seconds during each attack come from /proc. `--listener plain` serves with
aiohttp's own TCPSite (no admission before the handshake, no memory release): the code before
server/admission.py, for a before/after in one run. `--rounds 3` repeats the variants on the same
server: memory that keeps growing from round to round would be a leak.

Targets (issue #13): peak - baseline < 64 MiB, memory returned after close (within 16 MiB of the
baseline), ping p99 during the attack < 2x the p99 without. All processes share the machine's
cores: the attacker's CPU is taken from the server's and the peer's, as a local attacker's would.
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web

from federation_devkit.localsite import free_port, write_server_identity
from federation_operator.domain import api, tokens
from federation_operator.domain.certs import issue_certificate
from federation_operator.server.admission import AdmittedTLSSite
from federation_operator.server.app import AppConfig, create_app, make_runner
from federation_operator.server.index import PeerIndex
from federation_operator.server.protocol import ConnectionLimits, limit_tls_read_buffer
from federation_operator.server.tls import PinnedTLS
from procfs import process_cpu_seconds

PING = api.PING_PATH.encode()
_MIB = 1024 * 1024
# The real peer's pings come from this many addresses (127.0.1.x), as from that many remote sites:
# pinging back to back from one address would itself exceed the per-source connection rate,
# which is sized for one ping per link every 30 s.
PEER_ADDRESSES = 64
# variant: (seconds before the attacker reopens a connection the server ended, attacker addresses;
# None = one per connection)
VARIANTS: dict[str, tuple[float, int | None]] = {
    "hold": (1.0, None),
    "flood": (0.0, 1),
    "flood-spread": (0.0, None),
}


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


# ---- the server process -------------------------------------------------------------------------
def serve(directory: Path, port: int, listener: str) -> None:
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
        if listener == "plain":
            await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls.context, backlog=1024).start()
        else:
            await AdmittedTLSSite(
                runner, "127.0.0.1", port, ssl_context=tls.context, limits=ConnectionLimits(), backlog=1024
            ).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


# ---- the attacker process -----------------------------------------------------------------------
def _attacker_address(slot: int, sources: int) -> str:
    return f"127.1.{(slot % sources) // 250}.{2 + (slot % sources) % 250}"


async def _hostile(
    kind: str, port: int, context: ssl.SSLContext, *, deadline: float, delay: float, address: str
) -> int:
    """Keep one connection of `kind` open until `deadline`, reopening it `delay` seconds after
    the server ends or refuses it; returns how many TLS connections were established."""
    opened = 0
    loop = asyncio.get_running_loop()
    first = True
    while loop.time() < deadline:
        if not first and delay:
            await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
        first = False
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1", local_addr=(address, 0)
                ),
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


def attack(port: int, ca: Path, *, connections: int, seconds: float, delay: float, sources: int) -> None:
    # A write to a connection the server just cut is expected here, thousands of times.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    context = ssl.create_default_context(cafile=str(ca))
    kinds = ("headers", "slowloris", "idle")

    async def main() -> None:
        deadline = asyncio.get_running_loop().time() + seconds
        counts = await asyncio.gather(
            *(
                _hostile(
                    kinds[number % 3],
                    port,
                    context,
                    deadline=deadline,
                    delay=delay,
                    address=_attacker_address(number, sources),
                )
                for number in range(connections)
            )
        )
        print(json.dumps({"opened": sum(counts)}), flush=True)

    asyncio.run(main())


# ---- the real peer (this process) ---------------------------------------------------------------
_peer_addresses = itertools.cycle(f"127.0.1.{number}" for number in range(1, PEER_ADDRESSES + 1))


async def _ping(port: int, context: ssl.SSLContext, token: str) -> float | None:
    """Seconds one ping took, or None when the server refused the connection (a failure)."""
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1", local_addr=(next(_peer_addresses), 0)
        )
    except (ConnectionError, ssl.SSLError):
        return None
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
    samples = [await _ping(port, context, token) for _ in range(count)]
    if None in samples:
        raise SystemExit("a ping was refused without any attack")
    return [sample for sample in samples if sample is not None]


def _p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


async def _sample_rss(pid: int, stop: asyncio.Event, peak: list[int]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], _rss(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.05)


@dataclass(frozen=True)
class Round:
    variant: str
    attacked: list[float | None]  # None: the server refused the peer's connection
    peak: int
    after: int
    attacker: dict[str, int]
    server_cpu: float
    attacker_cpu: float


def _attack_round(
    *, script: list[str], directory: Path, port: int, server_pid: int, args: argparse.Namespace,
    variant: str, context: ssl.SSLContext, token: str, baseline: int,
) -> Round:  # fmt: skip
    """One attack: the peer's pings during it, the server's RSS peak and after, CPU seconds."""
    delay, spread = VARIANTS[variant]
    sources = spread or args.connections

    async def under_attack() -> tuple[list[float | None], int, str, float, float]:
        server_cpu_before = process_cpu_seconds(server_pid)
        attacker = await asyncio.create_subprocess_exec(
            *script, "--attack", str(directory), "--port", str(port),
            "--connections", str(args.connections), "--attack-seconds", str(args.attack_seconds),
            "--reconnect-delay", str(delay), "--sources", str(sources),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stop, peak = asyncio.Event(), [baseline]
        sampler = asyncio.create_task(_sample_rss(server_pid, stop, peak))
        # Let the attack ramp up to its full width before measuring the real peer.
        await asyncio.sleep(min(3.0, args.attack_seconds / 4))
        samples: list[float | None] = []
        loop = asyncio.get_running_loop()
        end = loop.time() + args.attack_seconds * 0.6
        while loop.time() < end and len(samples) < args.pings:
            samples.append(await _ping(port, context, token))
        attacker_cpu = process_cpu_seconds(attacker.pid)
        output, _ = await attacker.communicate()
        stop.set()
        await sampler
        server_cpu = process_cpu_seconds(server_pid) - server_cpu_before
        return samples, peak[0], output.decode().strip(), server_cpu, attacker_cpu

    attacked, peak, attacker_report, server_cpu, attacker_cpu = asyncio.run(under_attack())
    # The server's side of the attacker's connections closes as the attacker exits; give it the
    # time a keep-alive takes, then read RSS again.
    settle_deadline = time.monotonic() + 20
    after = _rss(server_pid)
    while time.monotonic() < settle_deadline and after - baseline > 16 * _MIB:
        time.sleep(0.5)
        after = _rss(server_pid)
    return Round(
        variant=variant,
        attacked=attacked,
        peak=peak,
        after=after,
        attacker=json.loads(attacker_report or "{}"),
        server_cpu=server_cpu,
        attacker_cpu=attacker_cpu,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--attack-seconds", type=float, default=20.0)
    parser.add_argument("--pings", type=int, default=300)
    parser.add_argument("--variants", default="hold,flood", help="comma-separated: " + ", ".join(VARIANTS))
    parser.add_argument("--rounds", type=int, default=1, help="repeat the variants on the same server")
    parser.add_argument("--listener", choices=["admitted", "plain"], default="admitted")
    parser.add_argument("--server-env", action="append", default=[], help="KEY=VALUE for the server process")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--attack", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--reconnect-delay", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--sources", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.port, args.listener)
        return 0
    if args.attack is not None:
        attack(
            args.port,
            args.attack / "bench-federation-ca.crt",
            connections=args.connections,
            seconds=args.attack_seconds,
            delay=args.reconnect_delay,
            sources=args.sources,
        )
        return 0
    variants = [name for name in args.variants.split(",") if name]
    if not variants or set(variants) - set(VARIANTS):
        parser.error(f"--variants: a comma-separated list of {', '.join(VARIANTS)}")

    rounds: list[Round] = []
    with tempfile.TemporaryDirectory() as temp:
        directory, port = Path(temp), free_port()
        script = [sys.executable, os.path.abspath(__file__)]
        server = subprocess.Popen(
            [*script, "--serve", str(directory), "--port", str(port), "--listener", args.listener],
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
            for _ in range(args.rounds):
                for variant in variants:
                    rounds.append(_attack_round(
                        script=script, directory=directory, port=port, server_pid=server.pid, args=args,
                        variant=variant, context=context, token=token, baseline=baseline,
                    ))  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=10)

    quiet_p99 = _p99(quiet)
    report: dict[str, object] = {
        "listener": args.listener,
        "connections": args.connections,
        "rss_baseline_mib": round(baseline / _MIB, 1),
        "ping_p99_quiet_ms": round(quiet_p99 * 1000, 2),
        "pings_quiet": len(quiet),
    }
    verdicts: list[tuple[str, bool, bool, bool]] = []
    for number, measured in enumerate(rounds):
        name = f"{measured.variant}#{number // len(variants) + 1}"
        answered = [sample for sample in measured.attacked if sample is not None]
        refused = len(measured.attacked) - len(answered)
        attacked_p99 = _p99(answered) if len(answered) > 1 else float("inf")
        report[name] = {
            "attacker": measured.attacker,
            "rss_peak_mib": round(measured.peak / _MIB, 1),
            "rss_growth_mib": round((measured.peak - baseline) / _MIB, 1),
            "rss_after_close_mib": round(measured.after / _MIB, 1),
            "ping_p99_attacked_ms": round(attacked_p99 * 1000, 2),
            "ping_p99_ratio": round(attacked_p99 / quiet_p99, 2),
            "pings_attacked": len(measured.attacked),
            "pings_refused": refused,
            "server_cpu_seconds": round(measured.server_cpu, 1),
            "attacker_cpu_seconds_at_last_ping": round(measured.attacker_cpu, 1),
        }
        verdicts.append(
            (
                name,
                measured.peak - baseline < 64 * _MIB,
                measured.after - baseline < 16 * _MIB,
                attacked_p99 < 2 * quiet_p99 and not refused,
            )
        )
    print(json.dumps(report, indent=2))
    print(f"\n{'':16}{'RSS MiB*':>9}{'growth':>8}{'after':>8}{'p99 ms':>9}{'ratio':>7}{'refused':>9}")
    print(f"{'no attack':16}{baseline / _MIB:9.1f}{'':8}{'':8}{quiet_p99 * 1000:9.2f}{1.0:7.2f}{0:9d}")
    for name in (verdict[0] for verdict in verdicts):
        row = report[name]
        assert isinstance(row, dict)
        print(
            f"{name:16}{row['rss_peak_mib']:9.1f}{row['rss_growth_mib']:8.1f}{row['rss_after_close_mib']:8.1f}"
            f"{row['ping_p99_attacked_ms']:9.2f}{row['ping_p99_ratio']:7.2f}{row['pings_refused']:9d}"
        )
    print("* the baseline without attack, the peak under attack; after: once the attacker closed")
    for name, growth_ok, returned_ok, latency_ok in verdicts:
        print(f"{name}: RSS growth < 64 MiB: {growth_ok}; returned after close: {returned_ok}; ", end="")
        print(f"p99 < 2x and no ping refused: {latency_ok}")
    return 0 if all(all(verdict[1:]) for verdict in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
