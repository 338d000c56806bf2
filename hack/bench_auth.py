"""Benchmark the federation server's forward-auth against a bare aiohttp handler, same run, same box.

    python hack/bench_auth.py [--duration 10] [--connections 200] [--peers 1000]

Each server runs in its own process on 127.0.0.1 (plain HTTP, as behind a proxy); the client is
`wrk` (apt-get install wrk) so that load generation does not share the servers' Python process.
The federation server is configured as behind Envoy: XFCC `Hash=` from a trusted 127.0.0.1,
`Authorization: Bearer`, an index of --peers peers, audit log to a file. Prints requests/s,
p50/p99 latency for both, and the ratio (target: >= 0.5, p99 < 5 ms).
"""

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web

from federation_operator import api, tokens
from federation_operator.certs import issue_certificate
from federation_operator.server.app import AppConfig, AuditLog, create_app, make_runner
from federation_operator.server.clientcert import CertSource, CertSourceConfig, parse_networks
from federation_operator.server.index import PeerIndex


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
            }
        )
        hashes = json.dumps({"current": tokens.hash_token(peer_token), "previous": []}).encode()
        index.upsert_inbound_secret(
            {
                "metadata": {
                    "namespace": "bench",
                    "name": f"{name}-inbound",
                    "labels": {api.LABEL_PEER: name},
                },
                "data": {api.INBOUND_HASHES_KEY: base64.b64encode(hashes).decode()},
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


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk(url: str, *, headers: dict[str, str], duration: int, connections: int) -> dict[str, float]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    output = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}  # type: ignore[union-attr]
    for label in ("50", "99"):
        value, unit = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
        result[f"p{label}_ms"] = float(value) * _UNITS[unit]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    result["non2xx"] = float(non2xx.group(1)) if non2xx else 0.0
    return result


def _start(argv: list[str]) -> tuple[subprocess.Popen[str], list[str]]:
    process = subprocess.Popen([sys.executable, __file__, *argv], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    lines = []
    while (line := process.stdout.readline().strip()) != "ready":
        if not line and process.poll() is not None:
            raise SystemExit(f"server {argv} exited")
        lines.append(line)
    return process, lines


def bench(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    token = tokens.generate_token()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as directory:
        audit = str(Path(directory) / "audit.jsonl")
        port = _free_port()
        process, lines = _start(["--serve-federation", str(port), str(args.peers), token.reveal(), audit])
        try:
            hexes = lines[-1].removeprefix("sha256:")
            headers = {
                "x-forwarded-client-cert": f"Hash={hexes}",
                "Authorization": f"Bearer {token.reveal()}",
            }
            url = f"http://127.0.0.1:{port}{api.FORWARD_AUTH_PATH}"
            _wrk(url, headers=headers, duration=2, connections=args.connections)  # warm-up
            results["federation forward-auth"] = _wrk(
                url, headers=headers, duration=args.duration, connections=args.connections
            )
        finally:
            process.terminate()
            process.wait()
        audit_lines = len(Path(audit).read_text(encoding="utf-8").splitlines())
    port = _free_port()
    process, _ = _start(["--serve-bare", str(port)])
    try:
        url = f"http://127.0.0.1:{port}{api.FORWARD_AUTH_PATH}"
        _wrk(url, headers={}, duration=2, connections=args.connections)
        results["bare aiohttp 200"] = _wrk(
            url, headers={}, duration=args.duration, connections=args.connections
        )
    finally:
        process.terminate()
        process.wait()

    print(
        f"loopback, {args.connections} connections, {args.duration}s, wrk -t1, "
        f"{os.cpu_count()} CPUs, {args.peers} peers"
    )
    for label, figures in results.items():
        print(
            f"{label:26s} {figures['rps']:9.0f} req/s  p50 {figures['p50_ms']:.2f} ms  "
            f"p99 {figures['p99_ms']:.2f} ms  non-2xx {figures['non2xx']:.0f}"
        )
    ratio = results["federation forward-auth"]["rps"] / results["bare aiohttp 200"]["rps"]
    p99 = results["federation forward-auth"]["p99_ms"]
    print(
        f"ratio {ratio:.2f} (target >= 0.5)   federation p99 {p99:.2f} ms (target < 5 ms)   "
        f"audit lines {audit_lines}"
    )
    ok = ratio >= 0.5 and p99 < 5.0 and results["federation forward-auth"]["non2xx"] == 0
    print("PASS" if ok else "MISS")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--peers", type=int, default=1000)
    parser.add_argument("--serve-federation", nargs=4, metavar=("PORT", "PEERS", "TOKEN", "AUDIT"))
    parser.add_argument("--serve-bare", type=int, metavar="PORT")
    args = parser.parse_args()
    if args.serve_federation:
        port, peers, token_text, audit_path = args.serve_federation
        serve_federation(int(port), int(peers), token_text, audit_path)
        return 0
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return 0
    started = time.monotonic()
    code = bench(args)
    print(f"took {time.monotonic() - started:.0f}s")
    return code


if __name__ == "__main__":
    sys.exit(main())
