"""Scale: N FederationPeers (generated credentials) and one shared FederationCert in the sandbox.

    python hack/bench_scale.py [--peers 10000] [--settle-seconds 60] [--steady-seconds 60] [--windows 3]

Why a script and not a test: 10,000 peers take minutes on a 2-core box. Steps:
1. A sandbox API in this process; the cert and N peers are created through its HTTP API (the
   operator is not running yet), each peer pinning a thumbprint, pointing at a closed port on
   127.0.0.1 (the heartbeat then fails fast with `Network`: pings cost no remote) and presenting
   the shared cert.
2. The operator starts as a subprocess (`python -m federation_operator run`), so that its RSS
   (`/proc/PID/status` VmRSS) is its own. Startup time = operator start to every peer
   `CredentialsReady=True` and the cert `Ready=True`.
3. Steady state: status writes (PATCH .../status, by kind) and all API calls per minute from the
   sandbox's `api.calls`, in `--windows` consecutive windows of `--steady-seconds`, starting
   `--settle-seconds` after convergence; the operator's RSS at the end of each.
4. Federation-server index memory: tracemalloc peak/retained around building a `PeerIndex`
   from the N peers and N inbound Secrets the operator wrote (the server's in-memory view);
   `--index-only` measures just this, from synthetic objects of the same shape, in seconds.
5. `--floor`: the framework's floor, side by side. For each of our operator and two minimal kopf
   operators (`noop`: one no-op resume/create handler; `shape`: no-op bodies in the same handler
   shape as ours: resume/create/update, delete (finalizer), a 30 s timer and a daemon per peer),
   a fresh sandbox with the same N peers, then the operator as a subprocess, one after another.
   Startup = start until every peer was handled once (ours: `CredentialsReady=True`; the floors
   record in-process when their N-th handler and N-th daemon ran); RSS at that moment; API calls
   the sandbox served meanwhile; and each figure's ratio to the `noop` floor.
6. `--restart`: start, converge, SIGTERM, start again on the same sandbox. Reports the shutdown
   time, whether SIGTERM left any credential Secret different from the converged state, what the
   second start re-created or changed (Secrets, tokens: all must be 0), its API calls by verb and
   resource, "reconciled" = second start until its credentials passes reached the number of peers
   (`federation_credentials_passes_total`; the operator's GETs of federationpeers for an operator
   without that metric) with every peer still `CredentialsReady`, and "pinged" = until every peer's
   heartbeat finished a cycle (its `federation_heartbeat_peer_state` series); then `--windows`
   steady windows as in step 3, and the second SIGTERM.
8. `--index-server`: the federation server's index at N peers against 10. A sandbox holding N
   peers shaped like the operator's (pins in spec, accepted hashes in status), then `federation-operator
   serve` as a subprocess: time from start to `/readyz` 200 (its index synced from the watch) and
   its RSS then, next to the same server over an empty sandbox (per-peer KiB above it); and the
   auth decision timed in-process over N and over 10 peers, each call's inputs built from the
   wire's bytes as a request builds them (`hack/bench_decision.py`), with the ratios.
7. `--bulk`: the operator starts on a sandbox holding only the cert; then the N peers are applied
   (`--workers` threads) and "bulk" = first apply until every peer is `CredentialsReady`.
   `--stop-at 0.5`: SIGTERM once half the peers are reconciled (the operator mid-way through its
   calls), then a second operator until every peer is; what it re-created or changed of the
   credential Secrets the first left (must be 0: a cut leaves nothing half-written).
9. `--floor --bulk`: the floor of a bulk apply. For each of `--floor-operators` (`none`: no
   operator, the apply alone; `noop`; `finalizer`: `noop` plus a no-op delete handler, so kopf
   writes its finalizer too, as on our peers; `shape`; `ours`), a fresh sandbox holding only the
   cert, the operator started and watching, then the N peers applied. Reported from the first
   apply: `applied_s`; `settled_s`, every peer carrying kopf's diff-base annotation (kopf finished
   its creation handlers and wrote what a create costs it); for ours also `reconciled_s`
   (`CredentialsReady`) and `heartbeats_s` (every first heartbeat written); API calls by caller
   (`bench`: the apply, `kopf`, `ours`) and per second; CPU seconds of the operator process, of
   the sandbox's thread and of the whole benchmark process (sandbox + the applying client) over
   the same span; and each operator's ratios to the floors measured before it in the same run.
Prints one figure per line; nothing here is asserted.
"""

import argparse
import asyncio
import base64
import concurrent.futures
import contextlib
import copy
import hashlib
import json
import logging
import os
import queue
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import kopf
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

import bench_decision
from federation_devkit import independent_remote
from federation_devkit.localsite import free_port, write_server_identity
from federation_devkit.sandbox.emulator import SandboxAPI, _Watcher
from federation_devkit.sandbox.selectors import Selector
from federation_devkit.sandbox.server import SandboxThread
from federation_operator.controller.runner import connection_info
from federation_operator.domain import api, tokens
from federation_operator.server.index import PeerIndex

NAMESPACE = "default"
CERT_NAME = "bench-client"
POLL_SECONDS = 2.0
# How long SIGTERM may take before the operator is killed (kopf stops every daemon and timer).
SHUTDOWN_GRACE = 120.0
PIN = {"thumbprint": "sha256:" + "ab" * 32}


REMOTE_CA = "bench-remote-ca"  # the ConfigMap holding the local remote's CA (the peers' serverTrust)


class LocalRemote:
    """`--remote local`: `federation_devkit.independent_remote` (written from docs/protocol.md, not
    from our server) in `workers` processes sharing one port with SO_REUSEPORT, apart from this
    process, so that its CPU is its own. It stands for N remote sites, one per peer: peer P's
    endpoint is `https://127.0.0.1:PORT/sites/P`. It checks what a real remote checks: the client
    certificate pinned (the FederationCert the peers present, pinned once the operator issued it)
    and the Bearer token against that site's inbound hash (the hash of the peer's outbound token,
    which the operator generated), both fed by `RemoteFeed`. The peers verify its server
    certificate with its CA (`serverTrust`) and pin it (`remoteCertificates`)."""

    def __init__(self, directory: Path, *, workers: int) -> None:
        self.ca_pem = write_server_identity(directory, "bench-remote").read_text()
        cert = directory / "bench-remote-federation-tls.crt"
        self.pin = {"thumbprint": independent_remote.thumbprint(ssl.PEM_cert_to_DER_cert(cert.read_text()))}
        self.port = free_port()
        self.controls = [free_port() for _ in range(workers)]
        command = [sys.executable, "-m", "federation_devkit.independent_remote", "--port", str(self.port)]
        command += ["--cert", str(cert), "--key", str(directory / "bench-remote-federation-tls.key")]
        command += ["--reuse-port"]
        self.processes = [
            subprocess.Popen([*command, "--control-port", str(control)]) for control in self.controls
        ]
        _until(lambda: all(self._stats(control) for control in self.controls), timeout=60, what="remote")

    def endpoint(self, peer: str) -> str:
        return f"https://127.0.0.1:{self.port}{independent_remote.SITE_PREFIX}{peer}"

    def spec(self, peer: str) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint(peer),
            "remoteCertificates": [self.pin],
            "serverTrust": {"caBundleRef": {"kind": "ConfigMap", "name": REMOTE_CA}},
        }

    def install(self, core: k8s_client.CoreV1Api) -> None:
        body = k8s_client.V1ConfigMap(
            metadata=k8s_client.V1ObjectMeta(name=REMOTE_CA), data={"ca.crt": self.ca_pem}
        )
        core.create_namespaced_config_map(NAMESPACE, body)

    def post(self, path: str, body: Any) -> None:
        data = json.dumps(body).encode()
        for control in self.controls:
            request = urllib.request.Request(
                f"http://127.0.0.1:{control}{path}", data=data, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=60) as reply:  # noqa: S310 - loopback, ours
                reply.read()

    @staticmethod
    def _stats(control: int) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{control}/stats", timeout=10) as reply:
                stats: dict[str, Any] = json.loads(reply.read())
                return stats
        except (urllib.error.URLError, OSError):
            return None

    def stats(self) -> Counter[str]:
        """Pings served (all workers), by outcome (`ok` or the refused factor), and CPU seconds x1000."""
        total: Counter[str] = Counter()
        for control, process in zip(self.controls, self.processes, strict=True):
            if process.poll() is not None:
                raise SystemExit(f"remote worker exited with {process.returncode}")
            stats = self._stats(control) or {}
            total["pings"] += int(stats.get("pings", 0))
            total.update({f"outcome_{k}": int(v) for k, v in (stats.get("outcomes") or {}).items()})
        total["cpu_ms"] = sum(
            int(_cpu_seconds(Path(f"/proc/{process.pid}/stat")) * 1000) for process in self.processes
        )
        return total

    def close(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class RemoteFeed:
    """Tells the local remote what a real remote's admin would have applied: the FederationCert's
    certificate (its pin) and each peer's outbound token hash (its inbound secret there), as soon
    as the operator writes them. It reads the sandbox's own watch stream in-process (a watcher on
    the emulator, fed on every write), so it learns a token about when the operator's watch does;
    a peer pinged before the remote knew its token is refused (`Secret`) and counted."""

    sandbox: SandboxThread
    remote: LocalRemote
    events: "queue.Queue[dict[str, Any]]" = field(default_factory=queue.Queue)
    sites: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _pins: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.sandbox.call(self._subscribe, self.sandbox.api)
        self._thread = threading.Thread(target=self._run, name="remote-feed", daemon=True)
        self._thread.start()

    def _subscribe(self, sandbox_api: SandboxAPI) -> None:
        """In the sandbox's loop: the objects there now, and every write from here on."""
        for group_plural, labels in (
            ("secrets", f"{api.LABEL_ROLE}={api.ROLE_OUTBOUND}"),
            (f"{api.CERT_PLURAL}.{api.GROUP}", ""),
        ):
            # The emulator puts each event with `queue.put_nowait`: a thread-safe queue takes them.
            watcher = _Watcher(group_plural, None, Selector.parse(label_selector=labels), self.events)  # type: ignore[arg-type]
            for obj in sandbox_api._store.get(group_plural, {}).values():
                if watcher.wants(obj):
                    self.events.put({"type": "ADDED", "object": copy.deepcopy(obj)})
            sandbox_api._watchers.add(watcher)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = [self.events.get(timeout=0.2)]
            except queue.Empty:
                continue
            while len(batch) < 5000:
                try:
                    batch.append(self.events.get_nowait())
                except queue.Empty:
                    break
            pems, sites = [], {}
            for event in batch:
                obj = event["object"]
                if "spec" in obj:  # the FederationCert (a Secret has none)
                    pem = (obj.get("status") or {}).get("certificate")
                    if pem and pem not in self._pins:
                        self._pins.add(pem)
                        pems.append(pem)
                    continue
                peer = (obj["metadata"].get("labels") or {}).get(api.LABEL_PEER)
                data = obj.get("data") or {}
                hashes = [
                    independent_remote.sha256_hash(base64.b64decode(data[key]).decode("ascii"))
                    for key in (api.OUTBOUND_TOKEN_KEY, api.OUTBOUND_PREVIOUS_TOKEN_KEY)
                    if data.get(key)
                ]
                if peer and hashes:
                    sites[peer] = hashes
            if pems:
                self.remote.post("/pins", {"pems": pems})
            if sites:
                self.remote.post("/sites", sites)
                self.sites += len(sites)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _reachability(sandbox_api: SandboxAPI) -> Counter[str]:
    """Peers by `status.reachability`, and the non-green ones also by their last failure's factor."""
    counts: Counter[str] = Counter()
    for obj in sandbox_api._store.get(f"{api.PEER_PLURAL}.{api.GROUP}", {}).values():
        status = obj.get("status") or {}
        state = status.get("reachability") or "Unknown"
        counts[state] += 1
        if state not in ("Reachable", "Unknown"):
            counts[f"{state}:{(status.get('lastFailure') or {}).get('factor')}"] += 1
    return counts


def _heartbeat_metrics(metrics_port: int | None) -> dict[str, float]:
    """The operator's heartbeat figures (not the per-peer series) from its /metrics."""
    if metrics_port is None:
        return {}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30) as reply:
            text = reply.read().decode()
    except (urllib.error.URLError, OSError):
        return {}
    wanted = (
        "federation_heartbeat_saturated ",
        "federation_heartbeat_pending_cycles ",
        "federation_heartbeat_pings_total{",
        "federation_heartbeat_status_writes_total ",
        "federation_heartbeat_own_lag_timeouts_total ",
        "federation_heartbeat_deferred_cycles_total ",
        "federation_heartbeat_lag_seconds_sum ",
        "federation_heartbeat_lag_seconds_count ",
    )
    found = {}
    for line in text.splitlines():
        if line.startswith(wanted):
            name, value = line.rsplit(" ", 1)
            found[name.replace("federation_heartbeat_", "").replace('"', "")] = float(value)
    return found


REACHABILITY_STATES = ("Unknown", "Reachable", "Slow", "Degraded", "Unreachable")
# docs/reachability.md, "The write budget": routine status writes per peer-hour on a 30 s interval.
ROUTINE_WRITES_PER_PEER_HOUR = 10.9


def _format(figures: dict[str, float]) -> str:
    return " ".join(f"{key}={value:g}" for key, value in sorted(figures.items()) if value)


EVENT_REASONS = ("HeartbeatSaturated", "HeartbeatCaughtUp", "Reachable", "Slow", "Degraded", "Unreachable")


def _events(sandbox_api: SandboxAPI) -> Counter[str]:
    """Events by reason: the operator's saturation, and the peers' reachability transitions."""
    events = sandbox_api._store.get("events", {}).values()
    return Counter(str(obj.get("reason")) for obj in events if obj.get("reason") in EVENT_REASONS)


@contextlib.contextmanager
def _local_remote(sandbox: SandboxThread, directory: Path, *, workers: int) -> Iterator[LocalRemote | None]:
    """The local remote and its feed for `--remote local` (`workers` > 0), else None (a closed port)."""
    if workers <= 0:
        yield None
        return
    remote = LocalRemote(directory, workers=workers)
    feed = None
    try:
        api_client = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(sandbox.write_kubeconfig(directory / "remote.kubeconfig"))
        )
        remote.install(k8s_client.CoreV1Api(api_client))
        feed = RemoteFeed(sandbox, remote)
        yield remote
    finally:
        if feed is not None:
            feed.close()
        remote.close()


def _print_remote(prefix: str, remote: LocalRemote | None, sandbox: SandboxThread) -> None:
    """Where the peers stand, the reachability Events so far, and what the remote served."""
    states = sandbox.call(_reachability, sandbox.api)
    line = f"{prefix} " + " ".join(f"{k}={v}" for k, v in sorted(states.items()))
    line += " events " + " ".join(f"{k}={v}" for k, v in sorted(sandbox.call(_events, sandbox.api).items()))
    if remote is not None:
        stats = remote.stats()
        line += f" remote_cpu_s={stats.pop('cpu_ms') / 1000:.1f} " + " ".join(
            f"remote_{k}={v}" for k, v in sorted(stats.items())
        )
    print(line, flush=True)


def _condition(obj: dict[str, Any], type_: str) -> str | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_:
            return str(condition.get("status"))
    return None


def _count_ready(sandbox_api: SandboxAPI) -> tuple[int, bool]:
    """Peers with CredentialsReady=True and whether the cert is Ready (read in the sandbox's loop)."""
    store = sandbox_api._store  # read in place: a deep copy of 10k objects per poll skews the figures
    peers = store.get(f"{api.PEER_PLURAL}.{api.GROUP}", {}).values()
    certs = store.get(f"{api.CERT_PLURAL}.{api.GROUP}", {}).values()
    ready_peers = sum(_condition(obj, "CredentialsReady") == "True" for obj in peers)
    return ready_peers, any(_condition(obj, "Ready") == "True" for obj in certs)


def _status_writes(sandbox_api: SandboxAPI) -> Counter[str]:
    """Status writes so far, by resource, and every API call (`"all"`)."""
    writes = Counter(
        call.resource for call in sandbox_api.calls if call.verb == "patch" and call.subresource == "status"
    )
    writes["all"] = len(sandbox_api.calls)
    return writes


def _create_objects(
    custom: k8s_client.CustomObjectsApi,
    peers: int,
    *,
    workers: int,
    port: int,
    cert: bool = True,
    remote: LocalRemote | None = None,
) -> None:
    """The cert (unless `cert` is False) and N peers pointing at a closed `port`, or at `remote`."""
    if cert:
        custom.create_namespaced_custom_object(
            api.GROUP,
            api.VERSION,
            NAMESPACE,
            api.CERT_PLURAL,
            {
                "apiVersion": api.API_VERSION,
                "kind": api.CERT_KIND,
                "metadata": {"name": CERT_NAME},
                "spec": {"subject": "bench"},
            },
        )

    def create(number: int) -> None:
        name = f"peer-{number:05d}"
        target = (
            remote.spec(name)
            if remote is not None
            else {"endpoint": f"https://127.0.0.1:{port}", "remoteCertificates": [PIN]}
        )
        custom.create_namespaced_custom_object(
            api.GROUP,
            api.VERSION,
            NAMESPACE,
            api.PEER_PLURAL,
            {
                "apiVersion": api.API_VERSION,
                "kind": api.PEER_KIND,
                "metadata": {"name": name},
                "spec": {**target, "clientCertificateRef": {"name": CERT_NAME}},
            },
        )

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(create, range(peers)))


def _rss_kib(pid: int, field: str = "VmRSS") -> int:
    """The process's resident memory (`VmHWM`: its peak so far), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _until(predicate: Callable[[], bool], *, timeout: float, what: str, every: float = POLL_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)


def _synthetic(peers: int) -> list[dict[str, Any]]:
    """Peers shaped like the operator's (accepted hash in status), without running it (`--index-only`)."""
    peer_objects = []
    for number in range(peers):
        name = f"peer-{number:05d}"
        accepted = [{"hash": tokens.hash_token(tokens.generate_token())}]
        peer_objects.append(
            {
                "metadata": {"namespace": NAMESPACE, "name": name},
                "spec": {"remoteCertificates": [{"thumbprint": "sha256:" + f"{number:064x}"}]},
                "status": {"reachability": "Degraded", "inbound": {"acceptedHashes": accepted}},
            }
        )
    return peer_objects


def _from_sandbox(sandbox: SandboxThread) -> list[dict[str, Any]]:
    peers: list[dict[str, Any]] = sandbox.call(sandbox.api.snapshot, api.PEER_PLURAL, api.GROUP)
    return peers


def _index_memory(peers: list[dict[str, Any]]) -> tuple[int, int, int]:
    """(peers indexed, bytes retained, peak bytes) of a PeerIndex built from these objects."""
    tracemalloc.start()
    index = PeerIndex()
    for peer in peers:
        index.upsert_peer(peer)
    retained, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return len(index.peer_keys()), retained, peak


FLOOR_KINDS = ("noop", "finalizer", "shape")


def floor_operator(*, kubeconfig: Path, kind: str, peers: int, report: Path) -> None:
    """A minimal kopf operator over FederationPeers (`--run-floor`): the framework's own cost.

    Writes `<what> <unix time>` lines to `report` when the N-th peer's handler (`handled`) and,
    for `shape`, the N-th daemon (`daemons`) first ran: measured in-process, because a no-op
    handler leaves nothing in the API server that shows it ran.
    """
    registry = kopf.OperatorRegistry()
    peer = (api.GROUP, api.VERSION, api.PEER_PLURAL)
    seen: dict[str, set[str]] = {"handled": set(), "daemons": set()}
    lock = threading.Lock()

    def count(what: str, uid: str) -> None:
        with lock:
            seen[what].add(uid)
            if len(seen[what]) == peers:
                with report.open("a") as out:
                    out.write(f"{what} {time.time()}\n")

    @kopf.on.login(registry=registry, id="login")
    def login(**_: Any) -> kopf.ConnectionInfo | None:
        return connection_info(kubeconfig)

    @kopf.on.startup(registry=registry, id="configure")
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # The same kopf settings as our operator (controller/runner.py), so that only handlers differ.
        prefix = f"kopf.{api.GROUP}"
        settings.persistence.finalizer = api.FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=prefix, key="last-handled-configuration"
        )
        settings.posting.level = logging.INFO
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.networking.request_timeout = 30

    @kopf.on.resume(*peer, registry=registry, id="floor-resume")
    @kopf.on.create(*peer, registry=registry, id="floor-create")
    async def handled(uid: str | None, **_: Any) -> None:
        count("handled", str(uid))

    if kind == "finalizer":
        # A delete handler makes kopf add its finalizer: the two kopf PATCHes a new peer of ours gets.
        @kopf.on.delete(*peer, registry=registry, id="floor-delete")
        async def deleted(**_: Any) -> None:
            return None

    if kind == "shape":

        @kopf.on.update(*peer, registry=registry, id="floor-update")
        @kopf.on.delete(*peer, registry=registry, id="floor-delete")
        @kopf.timer(*peer, registry=registry, id="floor-timer", interval=30.0)
        async def nothing(**_: Any) -> None:
            return None

        @kopf.daemon(*peer, registry=registry, id="floor-daemon", cancellation_backoff=1.0)
        async def daemon(uid: str | None, stopped: kopf.DaemonStopped, **_: Any) -> None:
            count("daemons", str(uid))
            await stopped.wait()

    logging.basicConfig(level=logging.WARNING)
    asyncio.run(kopf.operator(registry=registry, clusterwide=True, standalone=True))


def _api_calls(sandbox_api: SandboxAPI) -> Counter[str]:
    """API calls the sandbox served so far, by verb, and all of them (`"all"`)."""
    calls = Counter(call.verb for call in sandbox_api.calls)
    calls.update(  # by kind too: `verb:resource[/subresource]`
        f"{call.verb}:{call.resource}" + (f"/{call.subresource}" if call.subresource else "")
        for call in sandbox_api.calls
    )
    calls["all"] = len(sandbox_api.calls)
    return calls


def _measure_startup(*, kind: str, peers: int, workers: int, timeout: float) -> dict[str, float]:
    """One operator (`ours` or a floor) against a fresh sandbox holding `peers` peers."""
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp, SandboxThread() as sandbox:
        kubeconfig = sandbox.write_kubeconfig(Path(tmp) / "bench.kubeconfig")
        api_client = k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        _create_objects(k8s_client.CustomObjectsApi(api_client), peers, workers=workers, port=free_port())
        report = Path(tmp) / "floor.report"
        report.touch()
        if kind == "ours":
            command = [sys.executable, "-m", "federation_operator", "run", "--kubeconfig", str(kubeconfig)]
        else:
            command = [sys.executable, __file__, "--peers", str(peers), "--run-floor", kind]
            command += ["--floor-kubeconfig", str(kubeconfig), "--floor-report", str(report)]
        calls_before = sandbox.call(_api_calls, sandbox.api)
        log = (Path(tmp) / "operator.log").open("w")
        started_wall, started = time.time(), time.monotonic()
        operator = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        figures: dict[str, float] = {}
        try:
            peak_rss = 0
            # Ours keeps going after every peer is handled (first heartbeats follow, jittered over the
            # 30 s interval): its calls and RSS are taken when the last peer was handled, as the floors'.
            calls_at_handled: Counter[str] = Counter()

            def done() -> bool:
                nonlocal peak_rss
                if operator.poll() is not None:
                    raise SystemExit(f"{kind} operator exited with {operator.returncode}")
                peak_rss = max(peak_rss, _rss_kib(operator.pid))
                if kind == "ours":
                    ready, cert_ready = sandbox.call(_count_ready, sandbox.api)
                    if cert_ready and ready == peers and "handled_s" not in figures:
                        figures["handled_s"] = time.monotonic() - started
                        figures["rss_mib"] = _rss_kib(operator.pid) / 1024
                        calls_at_handled.update(sandbox.call(_api_calls, sandbox.api))
                    heartbeats = sandbox.call(_count_heartbeats, sandbox.api)
                    if heartbeats == peers:
                        figures["daemons_s"] = time.monotonic() - started
                        return "handled_s" in figures
                    return False
                marks = dict(line.split() for line in report.read_text().splitlines())
                for what in marks:
                    figures[f"{what}_s"] = float(marks[what]) - started_wall
                return "handled" in marks and (kind != "shape" or "daemons" in marks)

            try:
                _until(done, timeout=timeout, what=f"{kind}: every peer handled")
            except SystemExit as gave_up:
                # Still worth the rest (RSS, calls, shutdown): a figure missing says "over the timeout".
                print(f"{kind}: {gave_up} ({timeout:g} s); measuring the rest as it stands", flush=True)
                figures["timed_out"] = 1.0
                if kind == "ours":
                    ready, _ = sandbox.call(_count_ready, sandbox.api)
                    figures["handled_peers"] = float(ready)
                    figures["heartbeats"] = float(sandbox.call(_count_heartbeats, sandbox.api))
            figures.setdefault("rss_mib", _rss_kib(operator.pid) / 1024)
            figures["peak_rss_mib"] = peak_rss / 1024
            calls = calls_at_handled or sandbox.call(_api_calls, sandbox.api)
            calls.subtract(calls_before)
            figures.update({f"calls_{kind}": float(n) for kind, n in calls.items() if n})
            # Daemons exiting, finalizers kept: what SIGTERM costs each at this size.
            stopping = time.monotonic()
            operator.terminate()
            try:
                operator.wait(timeout=SHUTDOWN_GRACE)
                figures["shutdown_s"] = time.monotonic() - stopping
            except subprocess.TimeoutExpired:
                print(f"{kind}: no exit within {SHUTDOWN_GRACE:g} s of SIGTERM (killed)", flush=True)
        finally:
            if operator.poll() is None:
                operator.kill()
                operator.wait()
            log.close()
    return figures


def _count_heartbeats(sandbox_api: SandboxAPI) -> int:
    """Peers whose status holds a first heartbeat result (reachability other than Unknown)."""
    peers = sandbox_api._store.get(f"{api.PEER_PLURAL}.{api.GROUP}", {}).values()
    return sum((obj.get("status") or {}).get("reachability") not in (None, "Unknown") for obj in peers)


def compare_with_floor(*, peers: int, workers: int, timeout: float, operators: list[str]) -> None:
    results = {}
    for kind in operators:
        results[kind] = _measure_startup(kind=kind, peers=peers, workers=workers, timeout=timeout)
        print(
            f"peers={peers} operator={kind} "
            + " ".join(f"{key}={value:.1f}" for key, value in sorted(results[kind].items())),
            flush=True,
        )
    floor = results.get("noop", {})
    for kind in [kind for kind in operators if kind != "noop"]:
        ratios = {
            key: value / floor[key]
            for key, value in results[kind].items()
            if key in floor and floor[key] > 0 and key in ("handled_s", "rss_mib", "calls_all", "shutdown_s")
        }
        print(
            f"peers={peers} ratio {kind}/noop "
            + " ".join(f"{key}={value:.2f}" for key, value in sorted(ratios.items())),
            flush=True,
        )


# How often a bulk floor run looks at the sandbox: each look scans the N peers in its loop.
BULK_POLL_SECONDS = 0.5
DIFFBASE = f"kopf.{api.GROUP}/last-handled-configuration"
AGENTS = (("kopf", "kopf/"), ("ours", "federation-operator/"))


def _cpu_seconds(stat: Path) -> float:
    """utime + stime of a process or thread (`/proc/.../stat`), in seconds."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _watching_peers(sandbox_api: SandboxAPI) -> bool:
    """Whether a client holds a watch on FederationPeers open (an operator has started its watch)."""
    return any(watcher.group_plural == f"{api.PEER_PLURAL}.{api.GROUP}" for watcher in sandbox_api._watchers)


def _bulk_progress(sandbox_api: SandboxAPI) -> dict[str, int]:
    """Per milestone, how many peers reached it (read in place in the sandbox's loop)."""
    peers = list(sandbox_api._store.get(f"{api.PEER_PLURAL}.{api.GROUP}", {}).values())
    return {
        "applied": len(peers),
        # kopf wrote its diff-base annotation: it finished the peer's creation handlers.
        "settled": sum(DIFFBASE in (obj["metadata"].get("annotations") or {}) for obj in peers),
        "reconciled": sum(_condition(obj, "CredentialsReady") == "True" for obj in peers),
        "heartbeats": sum(
            (obj.get("status") or {}).get("reachability") not in (None, "Unknown") for obj in peers
        ),
    }


def _calls_by_caller(sandbox_api: SandboxAPI, mark: int) -> Counter[str]:
    """Calls since `mark` by caller (`calls_kopf`, ...) and by caller, verb and resource
    (`kopf:patch:federationpeers`, `ours:patch:federationpeers/status`, ...)."""
    calls: Counter[str] = Counter()
    for call in sandbox_api.calls[mark:]:
        caller = next((name for name, prefix in AGENTS if call.user_agent.startswith(prefix)), "bench")
        calls[f"calls_{caller}"] += 1
        subresource = f"/{call.subresource}" if call.subresource else ""
        calls[f"{caller}:{call.verb}:{call.resource}{subresource}"] += 1
    calls["calls_all"] = len(sandbox_api.calls) - mark
    return calls


def _measure_bulk(*, kind: str, peers: int, workers: int, timeout: float) -> dict[str, float]:
    """One operator (`ours`, a floor, or `none`: the apply alone) started on a sandbox holding only
    the cert; once it watches, the N peers are applied and it is timed until it has handled them."""
    milestones = {"none": ("applied",), "ours": ("settled", "reconciled", "heartbeats")}.get(
        kind, ("settled",)
    )
    with tempfile.TemporaryDirectory(prefix="bench-bulk-floor-") as tmp, SandboxThread() as sandbox:
        kubeconfig = sandbox.write_kubeconfig(Path(tmp) / "bench.kubeconfig")
        api_client = k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        custom = k8s_client.CustomObjectsApi(api_client)
        report = Path(tmp) / "floor.report"
        report.touch()
        log = (Path(tmp) / "operator.log").open("w")
        operator: subprocess.Popen[bytes] | None = None
        if kind == "ours":
            operator = _start_operator(kubeconfig, log)
        elif kind != "none":
            command = [sys.executable, __file__, "--peers", str(peers), "--run-floor", kind]
            command += ["--floor-kubeconfig", str(kubeconfig), "--floor-report", str(report)]
            operator = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        figures: dict[str, float] = {}
        try:
            _create_objects(custom, 0, workers=workers, port=free_port())
            if operator is not None:
                _until(
                    lambda: (
                        _alive(operator)
                        and sandbox.call(_watching_peers, sandbox.api)
                        and (kind != "ours" or sandbox.call(_count_ready, sandbox.api)[1])
                    ),
                    timeout=timeout,
                    what=f"{kind}: watching",
                )
            sandbox_stat = Path(f"/proc/self/task/{sandbox._thread.native_id}/stat")
            own_stat = Path("/proc/self/stat")
            operator_stat = Path(f"/proc/{operator.pid}/stat") if operator else None
            cpu_before = [_cpu_seconds(stat) for stat in (own_stat, sandbox_stat, operator_stat) if stat]
            mark, started = len(sandbox.api.calls), time.monotonic()
            _create_objects(custom, peers, workers=workers, port=free_port(), cert=False)
            figures["applied_s"] = time.monotonic() - started
            reached: dict[str, float] = {}

            def done() -> bool:
                if operator is not None:
                    _alive(operator)
                progress = sandbox.call(_bulk_progress, sandbox.api)
                for milestone in milestones:
                    if progress[milestone] == peers:
                        reached.setdefault(milestone, time.monotonic() - started)
                return len(reached) == len(milestones)

            try:
                _until(done, timeout=timeout, what=f"{kind}: every peer handled", every=BULK_POLL_SECONDS)
            except SystemExit as gave_up:
                print(f"{kind}: {gave_up} ({timeout:g} s); measuring the rest as it stands", flush=True)
                figures["timed_out"] = 1.0
                figures.update(
                    {f"{m}_peers": float(n) for m, n in sandbox.call(_bulk_progress, sandbox.api).items()}
                )
            took = time.monotonic() - started
            cpu_after = [_cpu_seconds(stat) for stat in (own_stat, sandbox_stat, operator_stat) if stat]
            cpu = [after - before for before, after in zip(cpu_before, cpu_after, strict=True)]
            figures.update({f"{milestone}_s": at for milestone, at in reached.items()})
            figures["done_s"] = took
            figures["cpu_bench_s"], figures["cpu_sandbox_s"] = cpu[0], cpu[1]
            if operator is not None:
                figures["cpu_operator_s"] = cpu[2]
                figures["rss_mib"] = _rss_kib(operator.pid) / 1024
            calls = sandbox.call(_calls_by_caller, sandbox.api, mark)
            figures.update({key: float(count) for key, count in calls.items()})
            figures["calls_per_s"] = calls["calls_all"] / took
            # The peers' own creates are the apply's; what the operator adds per peer is the rest.
            figures["operator_calls_per_peer"] = (calls["calls_kopf"] + calls["calls_ours"]) / peers
        finally:
            if operator is not None and operator.poll() is None:
                operator.kill()
                operator.wait()
            log.close()
    return figures


BULK_RATIOS = ("done_s", "calls_all", "cpu_operator_s", "cpu_sandbox_s", "cpu_bench_s")


def compare_bulk_with_floor(*, peers: int, workers: int, timeout: float, operators: list[str]) -> None:
    """`--floor --bulk`: each operator in turn on a fresh sandbox, the N peers applied after it
    started (what kopf sees as N creates), the ratios of each to every floor that ran before it."""
    results: dict[str, dict[str, float]] = {}
    for kind in operators:
        results[kind] = _measure_bulk(kind=kind, peers=peers, workers=workers, timeout=timeout)
        print(
            f"peers={peers} bulk operator={kind} "
            + " ".join(
                f"{key}={value:.1f}" if value >= 10 else f"{key}={value:.2f}"
                for key, value in sorted(results[kind].items())
            ),
            flush=True,
        )
        for floor in [floor for floor in results if floor != kind and floor in FLOOR_KINDS]:
            ratios = {
                key: results[kind][key] / results[floor][key]
                for key in BULK_RATIOS
                if results[floor].get(key) and key in results[kind]
            }
            print(
                f"peers={peers} bulk ratio {kind}/{floor} "
                + " ".join(f"{key}={value:.2f}" for key, value in sorted(ratios.items())),
                flush=True,
            )


def _start_operator(
    kubeconfig: Path, log: Any, *, metrics_port: int | None = None
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "federation_operator", "run", "--kubeconfig", str(kubeconfig)]
    if metrics_port is not None:
        command += ["--metrics-port", str(metrics_port)]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def _operator_metrics(metrics_port: int) -> tuple[int, int | None]:
    """(peers pinged, credential passes) of this operator process, from its /metrics.

    Pinged: peers whose heartbeat finished a cycle, i.e. the per-peer `federation_heartbeat_peer_state`
    series, which the heartbeat sets after each cycle (its status write follows only when a reader
    would see a change, so after a restart the status may not move). Passes:
    `federation_credentials_passes_total`, or None from an operator without it (before issue 17's
    restart work, when every pass read its peer: count those GETs instead). (0, 0) while it does not
    answer yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except (urllib.error.URLError, OSError):
        return 0, 0
    pinged, passes = 0, None
    for line in text.splitlines():
        if line.startswith("federation_heartbeat_peer_state{"):
            pinged += 1
        elif line.startswith("federation_credentials_passes_total "):
            passes = int(float(line.rsplit(" ", 1)[1]))
    return pinged, passes


def _stop_operator(operator: subprocess.Popen[bytes], log: Any = None) -> str:
    """SIGTERM; seconds to exit (and the exit code when not 0), or `>N (killed)`. With the
    operator's log file, also how long the operator logged after the signal (`log_stop_s`: from
    kopf's "Signal SIGTERM is received" to the last line, its cleanup), which leaves out the
    interpreter's exit after it."""
    stopping = time.monotonic()
    operator.terminate()
    try:
        code = operator.wait(timeout=SHUTDOWN_GRACE)
    except subprocess.TimeoutExpired:
        operator.kill()
        operator.wait()
        return f">{SHUTDOWN_GRACE:.0f} (killed)" + _logged_stop(log)
    took = f"{time.monotonic() - stopping:.1f}"
    return (took if code in (0, -15) else f"{took} (exit code {code})") + _logged_stop(log)


def _logged_stop(log: Any) -> str:
    if log is None:
        return ""
    log.flush()
    signalled = last = None
    for line in Path(log.name).read_text(errors="replace").splitlines():
        try:
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        except ValueError:
            continue
        if "Signal SIGTERM is received" in line:  # the last one: a restart's two operators share a log
            signalled = stamp
        last = stamp
    if signalled is None or last is None:
        return " log_stop_s=?"
    return f" log_stop_s={(last - signalled).total_seconds():.1f}"


def _credential_secrets(sandbox_api: SandboxAPI) -> dict[str, tuple[str, str]]:
    """Every credential Secret: name -> (uid, digest of its data), read in the sandbox's loop."""
    found = {}
    for obj in sandbox_api._store.get("secrets", {}).values():
        meta = obj.get("metadata") or {}
        if (meta.get("labels") or {}).get(api.LABEL_ROLE) in (
            api.ROLE_INBOUND,
            api.ROLE_OUTBOUND,
            api.ROLE_HANDOFF,
        ):
            digest = hashlib.sha256(json.dumps(obj.get("data") or {}, sort_keys=True).encode()).hexdigest()
            found[str(meta.get("name"))] = (str(meta.get("uid")), digest)
    return found


def _compare_secrets(before: dict[str, tuple[str, str]], after: dict[str, tuple[str, str]]) -> dict[str, int]:
    return {
        "secrets_missing": len(before.keys() - after.keys()),
        "secrets_new": len(after.keys() - before.keys()),
        "secrets_recreated": sum(
            1 for name in before.keys() & after.keys() if before[name][0] != after[name][0]
        ),
        "secrets_data_changed": sum(
            1 for name in before.keys() & after.keys() if before[name][1] != after[name][1]
        ),
    }


def _calls_since(sandbox_api: SandboxAPI, mark: int) -> Counter[str]:
    calls = Counter(
        f"{call.verb}:{call.resource}" + (f"/{call.subresource}" if call.subresource else "")
        for call in sandbox_api.calls[mark:]
    )
    calls["all"] = len(sandbox_api.calls) - mark
    return calls


def _operator_peer_reads(sandbox_api: SandboxAPI, mark: int) -> int:
    return sum(
        1
        for call in sandbox_api.calls[mark:]
        if call.verb == "get"
        and call.resource == api.PEER_PLURAL
        and call.user_agent.startswith("federation-operator/")
    )


def _print_calls(prefix: str, calls: Counter[str], peers: int) -> None:
    print(
        f"{prefix} calls_all={calls['all']} per_peer={calls['all'] / peers:.2f} "
        + " ".join(f"{kind}={count}" for kind, count in sorted(calls.items()) if kind != "all" and count),
        flush=True,
    )


def restart_run(
    *,
    peers: int,
    workers: int,
    timeout: float,
    settle: float,
    windows: int,
    steady: float,
    profile: Path | None = None,
    remote_workers: int = 0,
) -> None:
    """`remote_workers` > 0: the peers point at a local remote (`--remote local`), which answers
    green once it knows their certificate and token; first start also waits for every peer
    `Reachable` (the first heartbeats written green)."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-restart-") as tmp,
        SandboxThread() as sandbox,
        _local_remote(sandbox, Path(tmp), workers=remote_workers) as remote,
    ):
        kubeconfig = sandbox.write_kubeconfig(Path(tmp) / "bench.kubeconfig")
        api_client = k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        custom = k8s_client.CustomObjectsApi(api_client)
        _create_objects(custom, peers, workers=workers, port=free_port(), remote=remote)
        log = (Path(tmp) / "operator.log").open("w")

        def all_ready() -> bool:
            ready, cert_ready = sandbox.call(_count_ready, sandbox.api)
            return bool(cert_ready and ready == peers)

        mark, started = len(sandbox.api.calls), time.monotonic()
        first_metrics = free_port()
        first = _start_operator(kubeconfig, log, metrics_port=first_metrics)
        try:
            _until(lambda: _alive(first) and all_ready(), timeout=timeout, what="first start: all reconciled")
            print(
                f"peers={peers} first_start_all_reconciled_s={time.monotonic() - started:.1f} "
                f"rss_mib={_rss_kib(first.pid) / 1024:.0f}",
                flush=True,
            )
            _print_calls(f"peers={peers} first_start", sandbox.call(_calls_since, sandbox.api, mark), peers)
            # A converged operator is restarted: every first heartbeat written (otherwise the restart
            # writes them, and measures the first start's backlog), then `settle` of steady work.
            _until(
                lambda: _alive(first) and sandbox.call(_count_heartbeats, sandbox.api) == peers,
                timeout=timeout,
                what="first start: every first heartbeat written",
            )
            print(f"peers={peers} first_start_all_heartbeats_s={time.monotonic() - started:.1f}", flush=True)
            _print_remote(f"peers={peers} first_heartbeats", remote, sandbox)
            if remote is not None:
                try:
                    _until(
                        lambda: (
                            _alive(first) and sandbox.call(_reachability, sandbox.api)["Reachable"] == peers
                        ),
                        timeout=timeout,
                        what="first start: every peer Reachable",
                    )
                    print(
                        f"peers={peers} first_start_all_reachable_s={time.monotonic() - started:.1f}",
                        flush=True,
                    )
                except SystemExit as gave_up:  # a finding, not the end of the run
                    print(f"peers={peers} {gave_up} ({timeout:g} s)", flush=True)
                _print_remote(f"peers={peers} first_reachable", remote, sandbox)
                print(f"peers={peers} first_metrics {_format(_heartbeat_metrics(first_metrics))}", flush=True)
            time.sleep(settle)  # steady work, so that SIGTERM meets a working operator
            converged = sandbox.call(_credential_secrets, sandbox.api)
            print(f"peers={peers} first_shutdown_s={_stop_operator(first, log)}", flush=True)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        after_stop = _compare_secrets(converged, sandbox.call(_credential_secrets, sandbox.api))
        print(
            f"peers={peers} after_sigterm " + " ".join(f"{k}={v}" for k, v in after_stop.items()), flush=True
        )

        mark, started = len(sandbox.api.calls), time.monotonic()
        metrics_port = free_port()
        second = _start_operator(kubeconfig, log, metrics_port=metrics_port)
        # py-spy (pip install py-spy) samples the restart from outside, without slowing it much.
        sampler = (
            subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("py-spy")),
                    "record",
                    "--pid",
                    str(second.pid),
                    "--format",
                    "raw",
                    "--rate",
                    "50",
                    "--nonblocking",
                    "--output",
                    str(profile),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if profile is not None
            else None
        )
        try:
            marks: dict[str, float] = {}

            def restarted() -> bool:
                _alive(second)
                pinged, passes = _operator_metrics(metrics_port)
                if passes is None:
                    passes = sandbox.call(_operator_peer_reads, sandbox.api, mark)
                if "reconciled" not in marks and passes >= peers and all_ready():
                    marks["reconciled"] = time.monotonic() - started
                    marks["rss_mib"] = _rss_kib(second.pid) / 1024
                    _print_calls(
                        f"peers={peers} restart_until_reconciled",
                        sandbox.call(_calls_since, sandbox.api, mark),
                        peers,
                    )
                if "pinged" not in marks and pinged >= peers:
                    marks["pinged"] = time.monotonic() - started
                    _print_calls(
                        f"peers={peers} restart_until_pinged",
                        sandbox.call(_calls_since, sandbox.api, mark),
                        peers,
                    )
                return "reconciled" in marks and "pinged" in marks

            _until(restarted, timeout=timeout, what="restart: every peer read again and pinged")
            _print_remote(f"peers={peers} restart_pinged", remote, sandbox)
            if sampler is not None:
                sampler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                sampler.wait()
            print(
                f"peers={peers} restart_all_reconciled_s={marks['reconciled']:.1f} "
                f"restart_all_pinged_s={marks['pinged']:.1f} "
                f"restart_both_s={max(marks['reconciled'], marks['pinged']):.1f} "
                f"rss_mib={marks['rss_mib']:.0f}",
                flush=True,
            )
            time.sleep(settle)  # anything the restart would regenerate has had time to happen
            regenerated = _compare_secrets(converged, sandbox.call(_credential_secrets, sandbox.api))
            print(
                f"peers={peers} after_restart " + " ".join(f"{k}={v}" for k, v in regenerated.items()),
                flush=True,
            )
            _print_calls(
                f"peers={peers} restart_until_settled", sandbox.call(_calls_since, sandbox.api, mark), peers
            )
            _steady_windows(
                sandbox, second, windows=windows, seconds=steady, remote=remote, metrics_port=metrics_port
            )
            print(f"peers={peers} second_shutdown_s={_stop_operator(second, log)}", flush=True)
        finally:
            if second.poll() is None:
                second.kill()
                second.wait()
            log.close()


def bulk_run(
    *,
    peers: int,
    workers: int,
    timeout: float,
    stop_at: float | None = None,
    settle: float = 0,
    remote_workers: int = 0,
) -> None:
    """With `stop_at` (a share of the peers), SIGTERM once that many are reconciled, in the middle
    of the bulk's calls, then a second operator until every peer is: what the cut left
    half-written is what the second start re-creates or changes (`bulk_stop_at`). With
    `remote_workers` > 0 (`--remote local`), also until every peer is `Reachable`."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-bulk-") as tmp,
        SandboxThread() as sandbox,
        _local_remote(sandbox, Path(tmp), workers=remote_workers) as remote,
    ):
        kubeconfig = sandbox.write_kubeconfig(Path(tmp) / "bench.kubeconfig")
        api_client = k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        custom = k8s_client.CustomObjectsApi(api_client)
        log = (Path(tmp) / "operator.log").open("w")
        metrics_port = free_port()
        operator = _start_operator(kubeconfig, log, metrics_port=metrics_port)
        try:
            _create_objects(custom, 0, workers=workers, port=free_port())
            _until(
                lambda: _alive(operator) and sandbox.call(_count_ready, sandbox.api)[1],
                timeout=timeout,
                what="cert Ready",
            )
            mark, started = len(sandbox.api.calls), time.monotonic()
            _create_objects(custom, peers, workers=workers, port=free_port(), cert=False, remote=remote)
            print(f"peers={peers} bulk_applied_in_s={time.monotonic() - started:.1f}", flush=True)
            if stop_at is not None:
                _bulk_stop_then_restart(
                    sandbox,
                    kubeconfig,
                    operator,
                    log,
                    peers=peers,
                    stop_at=stop_at,
                    timeout=timeout,
                    settle=settle,
                )
                return
            _until(
                lambda: _alive(operator) and sandbox.call(_count_ready, sandbox.api)[0] == peers,
                timeout=timeout,
                what="bulk: all reconciled",
            )
            print(
                f"peers={peers} bulk_all_reconciled_s={time.monotonic() - started:.1f} "
                f"rss_mib={_rss_kib(operator.pid) / 1024:.0f}",
                flush=True,
            )
            _print_calls(f"peers={peers} bulk", sandbox.call(_calls_since, sandbox.api, mark), peers)
            if remote is not None:
                try:
                    _until(
                        lambda: (
                            _alive(operator)
                            and sandbox.call(_reachability, sandbox.api)["Reachable"] == peers
                        ),
                        timeout=timeout,
                        what="bulk: every peer Reachable",
                    )
                    print(f"peers={peers} bulk_all_reachable_s={time.monotonic() - started:.1f}", flush=True)
                except SystemExit as gave_up:  # a finding, not the end of the run
                    print(f"peers={peers} {gave_up} ({timeout:g} s)", flush=True)
                _print_remote(f"peers={peers} bulk_reachable", remote, sandbox)
                print(f"peers={peers} bulk_metrics {_format(_heartbeat_metrics(metrics_port))}", flush=True)
            print(f"peers={peers} bulk_shutdown_s={_stop_operator(operator, log)}", flush=True)
        finally:
            if operator.poll() is None:
                operator.kill()
                operator.wait()
            log.close()


def _bulk_stop_then_restart(
    sandbox: SandboxThread,
    kubeconfig: Path,
    operator: subprocess.Popen[bytes],
    log: Any,
    *,
    peers: int,
    stop_at: float,
    timeout: float,
    settle: float,
) -> None:
    wanted = int(peers * stop_at)
    _until(
        lambda: _alive(operator) and sandbox.call(_count_ready, sandbox.api)[0] >= wanted,
        timeout=timeout,
        what=f"bulk: {wanted} reconciled",
    )
    ready = sandbox.call(_count_ready, sandbox.api)[0]
    print(
        f"peers={peers} bulk_midway_ready={ready} bulk_midway_shutdown_s={_stop_operator(operator, log)}",
        flush=True,
    )
    at_stop = sandbox.call(_credential_secrets, sandbox.api)
    started = time.monotonic()
    second = _start_operator(kubeconfig, log)
    try:
        _until(
            lambda: _alive(second) and sandbox.call(_count_ready, sandbox.api)[0] == peers,
            timeout=timeout,
            what="bulk: all reconciled after the restart",
        )
        print(f"peers={peers} bulk_restart_all_reconciled_s={time.monotonic() - started:.1f}", flush=True)
        time.sleep(settle)  # anything the restart would regenerate has had time to happen
        changed = _compare_secrets(at_stop, sandbox.call(_credential_secrets, sandbox.api))
        # `secrets_new` counts the Secrets of peers the cut left unfinished (three per peer at most);
        # missing, re-created and changed must be 0: nothing written before the cut is redone.
        print(
            f"peers={peers} bulk_stop_at secrets_at_stop={len(at_stop)} "
            + " ".join(f"{k}={v}" for k, v in changed.items()),
            flush=True,
        )
        print(f"peers={peers} bulk_second_shutdown_s={_stop_operator(second, log)}", flush=True)
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()


def _alive(operator: subprocess.Popen[bytes]) -> bool:
    if operator.poll() is not None:
        raise SystemExit(f"operator exited with {operator.returncode}")
    return True


def _server_ready(*, peers: int, workers: int, timeout: float) -> tuple[float, float]:
    """(seconds from start to /readyz 200, RSS MiB then) of `federation-operator serve` over a
    sandbox holding `peers` synthetic peers."""
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp, SandboxThread() as sandbox:
        kubeconfig = sandbox.write_kubeconfig(Path(tmp) / "bench.kubeconfig")
        api_client = k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        custom = k8s_client.CustomObjectsApi(api_client)
        objects = bench_decision.peer_objects(peers, bench_decision.certificate_der_head())

        def create(obj: dict[str, Any]) -> None:
            custom.create_namespaced_custom_object(api.GROUP, api.VERSION, NAMESPACE, api.PEER_PLURAL, obj)
            # The accepted hashes, as the operator writes them: a create drops `status`.
            name = obj["metadata"]["name"]
            body = {"status": obj["status"]}
            custom.patch_namespaced_custom_object_status(
                api.GROUP, api.VERSION, NAMESPACE, api.PEER_PLURAL, name, body
            )

        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(create, objects))
        metrics = free_port()
        command = [sys.executable, "-m", "federation_operator", "serve", "--kubeconfig", str(kubeconfig)]
        command += ["--site", "bench", "--http-port", str(free_port()), "--metrics-port", str(metrics)]
        command += ["--audit-log", "-"]
        log = (Path(tmp) / "server.log").open("w")
        started = time.monotonic()
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{metrics}/readyz"
            deadline = started + timeout
            while not _ok(url):
                if server.poll() is not None:
                    raise SystemExit(f"server exited with {server.returncode}")
                if time.monotonic() > deadline:
                    raise SystemExit("timed out waiting for /readyz")
                time.sleep(0.05)
            return time.monotonic() - started, _rss_kib(server.pid) / 1024
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:  # noqa: S310 - loopback, our own server
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def index_server_run(*, peers: int, workers: int, timeout: float) -> None:
    empty_s, empty_rss = _server_ready(peers=0, workers=workers, timeout=timeout)
    ready_s, rss = _server_ready(peers=peers, workers=workers, timeout=timeout)
    print(
        f"peers={peers} server_ready_s={ready_s:.2f} rss_mib={rss:.1f} "
        f"empty_ready_s={empty_s:.2f} empty_rss_mib={empty_rss:.1f} "
        f"per_peer_kib={(rss - empty_rss) * 1024 / max(peers, 1):.2f}",
        flush=True,
    )
    # The same 10 callers (the index's size alone), 1,024 rotating callers and every peer in turn
    # (the working set grows with the callers), each call's inputs built as a request builds them.
    bench_decision.report(peers=peers, calls=20_000, rounds=5)
    _print_index(*_index_memory(_synthetic(peers)))


CENSUS = Path(__file__).with_name("mem_census.py")


def _memory_of_ours(
    *,
    peers: int,
    workers: int,
    timeout: float,
    settle: float,
    label: str,
    operator_path: str | None,
    census: Path | None,
    trace: int,
    operator_env: list[str],
    run_args: list[str] | None = None,
) -> dict[str, float]:
    """Our operator's memory over a fresh sandbox holding `peers` peers (0: only the cert).

    RSS when every peer is handled, when every first heartbeat is written, and `settle` s later
    (the end); the peak (VmHWM) over the whole run; then the RSS after glibc's `malloc_trim(0)`,
    i.e. what of the end's RSS was freed memory the allocator kept. `operator_path` puts another
    checkout's package first (a before/after in one session); `census` runs it under
    hack/mem_census.py and takes a census at the end; `run_args` are more options of `run`."""
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp, SandboxThread() as sandbox:
        kubeconfig = sandbox.write_kubeconfig(Path(tmp) / "bench.kubeconfig")
        api_client = k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        _create_objects(k8s_client.CustomObjectsApi(api_client), peers, workers=workers, port=free_port())
        run = ["run", "--kubeconfig", str(kubeconfig), *(run_args or [])]
        trim_report = census or Path(tmp) / "trim.report"
        command = [sys.executable, str(CENSUS), "--out", str(trim_report), "--trace", str(trace), "--", *run]
        env = dict(os.environ) | dict(item.split("=", 1) for item in operator_env)
        if operator_path:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [operator_path, env.get("PYTHONPATH")]))
        log = (Path(tmp) / "operator.log").open("w")
        started = time.monotonic()
        operator = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        figures: dict[str, float] = {}
        try:

            def reached(what: str, done: bool) -> bool:
                if done and f"{what}_s" not in figures:
                    figures[f"{what}_s"] = time.monotonic() - started
                    figures[f"{what}_rss_mib"] = _rss_kib(operator.pid) / 1024
                return done

            def handled() -> bool:
                _alive(operator)
                ready, cert_ready = sandbox.call(_count_ready, sandbox.api)
                return reached("handled", cert_ready and ready == peers)

            def heartbeats() -> bool:
                _alive(operator)
                return reached("heartbeats", sandbox.call(_count_heartbeats, sandbox.api) == peers)

            _until(handled, timeout=timeout, what=f"{label}: every peer handled")
            try:
                _until(heartbeats, timeout=timeout, what=f"{label}: every first heartbeat")
            except SystemExit as gave_up:  # the memory is still worth measuring; say what was missing
                print(f"{gave_up} ({timeout:g} s); measuring as it stands", flush=True)
                figures["heartbeats_missing"] = float(peers - sandbox.call(_count_heartbeats, sandbox.api))
            time.sleep(settle)  # what stays: the startup's transients gone, heartbeats in their rhythm
            _alive(operator)
            figures["end_rss_mib"] = _rss_kib(operator.pid) / 1024
            figures["peak_rss_mib"] = _rss_kib(operator.pid, "VmHWM") / 1024
            # Trimmed before the census: the census itself allocates (a snapshot, a list of every object).
            marks = _signal_and_wait(operator, signal.SIGUSR2, trim_report, "== malloc_trim")
            figures["trimmed_rss_mib"] = float(marks.rsplit("->", 1)[1].split()[0])
            if census is not None:
                _signal_and_wait(operator, signal.SIGUSR1, census, "== census")
            figures["shutdown_s"] = float(_stop_operator(operator).split()[0].lstrip(">"))
        finally:
            if operator.poll() is None:
                operator.kill()
                operator.wait()
            log.close()
    return figures


def _signal_and_wait(operator: subprocess.Popen[bytes], signum: int, report: Path, mark: str) -> str:
    """Send `signum` to the census wrapper; the report's last line starting with `mark`."""
    before = report.read_text().count(mark) if report.exists() else 0
    operator.send_signal(signum)
    _until(
        lambda: _alive(operator) and report.exists() and report.read_text().count(mark) > before,
        timeout=600,
        what=mark,
    )
    return [line for line in report.read_text().splitlines() if line.startswith(mark)][-1]


def memory_run(
    *,
    peers: int,
    workers: int,
    timeout: float,
    settle: float,
    paths: list[str],
    census: Path | None,
    trace: int,
    operator_env: list[str],
    variants: list[str],
) -> None:
    """The empty operator and N peers, for each checkout in `paths` ("" = this one), alternating;
    for each checkout, N peers once per entry of `variants` (more options of `run`, "" = none)."""
    for path in paths:
        label = (path or "this checkout") + "".join(f" {item}" for item in operator_env)
        empty = _memory_of_ours(
            peers=0,
            workers=workers,
            timeout=timeout,
            settle=settle,
            label=label,
            operator_path=path,
            census=census.with_name(census.name + ".empty") if census else None,
            trace=0,
            operator_env=operator_env,
        )
        for variant in variants:
            full = _memory_of_ours(
                peers=peers,
                workers=workers,
                timeout=timeout,
                settle=settle,
                label=f"{label} {variant}".strip(),
                operator_path=path,
                census=census,
                trace=trace,
                operator_env=operator_env,
                run_args=variant.split(),
            )
            per_peer = (full["end_rss_mib"] - empty["end_rss_mib"]) * 1024 / max(peers, 1)
            print(
                f"memory operator={label} run_args={variant!r} peers={peers} "
                f"empty_rss_mib={empty['end_rss_mib']:.1f} "
                + " ".join(f"{key}={value:.1f}" for key, value in sorted(full.items()))
                + f" per_peer_kib_above_empty={per_peer:.1f}",
                flush=True,
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=10_000)
    parser.add_argument("--steady-seconds", type=float, default=60.0)
    parser.add_argument(
        "--settle-seconds", type=float, default=60.0, help="after convergence, before measuring"
    )
    parser.add_argument("--windows", type=int, default=3, help="steady windows to measure, one after another")
    parser.add_argument("--workers", type=int, default=8, help="client threads creating the peers")
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up on convergence after this")
    parser.add_argument(
        "--index-only", action="store_true", help="only the index memory, from synthetic objects"
    )
    parser.add_argument(
        "--floor", action="store_true", help="our operator's startup next to minimal kopf operators"
    )
    parser.add_argument(
        "--floor-operators",
        default="noop,shape,ours",
        help="with --floor: which to run, in this order (ratios are to noop, when it runs)",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="start, converge, SIGTERM, start again: what the restart changes",
    )
    parser.add_argument(
        "--profile-restart",
        type=Path,
        help="with --restart: py-spy's folded stacks of the second operator until it has caught up",
    )
    parser.add_argument("--bulk", action="store_true", help="operator first, then the N peers applied")
    parser.add_argument(
        "--stop-at",
        type=float,
        help="with --bulk: SIGTERM once this share of the peers is reconciled, then restart (what it redoes)",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="our RSS: empty, at N peers (handled, first heartbeats, after --settle-seconds), peak, trimmed",
    )
    parser.add_argument(
        "--memory-paths",
        default="",
        help="with --memory: comma-separated package dirs to put first on PYTHONPATH, measured in turn "
        "('' = this checkout), e.g. ',/tmp/before/operator'",
    )
    parser.add_argument(
        "--memory-variants",
        default="",
        help="with --memory: semicolon-separated sets of more `run` options, each measured at N peers "
        "for every checkout ('' = none), e.g. ';--reconcile-concurrency 16'",
    )
    parser.add_argument("--census", type=Path, help="with --memory: append a memory census at N peers here")
    parser.add_argument(
        "--operator-env",
        action="append",
        default=[],
        help="with --memory: KEY=VALUE in our operator's environment",
    )
    parser.add_argument("--trace", type=int, default=0, help="with --census: tracemalloc frames (0: off)")
    parser.add_argument(
        "--index-server",
        action="store_true",
        help="federation server: ready time, RSS, auth decision vs 10 peers",
    )
    parser.add_argument(
        "--remote",
        choices=("closed", "local"),
        default="closed",
        help="with --restart or --bulk: where the peers point: a closed port on 127.0.0.1 (every ping "
        "fails fast with Network) or a local federation endpoint written from docs/protocol.md",
    )
    parser.add_argument(
        "--remote-workers", type=int, default=2, help="with --remote local: its processes (SO_REUSEPORT)"
    )
    parser.add_argument("--run-floor", choices=FLOOR_KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--floor-kubeconfig", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--floor-report", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    remote_workers = args.remote_workers if args.remote == "local" else 0
    if remote_workers and not (args.restart or args.bulk):
        parser.error("--remote local goes with --restart or --bulk")
    if args.run_floor:
        floor_operator(
            kubeconfig=args.floor_kubeconfig, kind=args.run_floor, peers=args.peers, report=args.floor_report
        )
        return 0
    if args.floor and args.bulk:
        operators = args.floor_operators.split(",")
        compare_bulk_with_floor(
            peers=args.peers, workers=args.workers, timeout=args.timeout, operators=operators
        )
        return 0
    if args.floor:
        operators = args.floor_operators.split(",")
        compare_with_floor(peers=args.peers, workers=args.workers, timeout=args.timeout, operators=operators)
        return 0
    if args.index_only:
        _print_index(*_index_memory(_synthetic(args.peers)))
        return 0
    if args.index_server:
        index_server_run(peers=args.peers, workers=args.workers, timeout=args.timeout)
        return 0
    if args.restart:
        restart_run(
            peers=args.peers,
            workers=args.workers,
            timeout=args.timeout,
            settle=args.settle_seconds,
            windows=args.windows,
            steady=args.steady_seconds,
            profile=args.profile_restart,
            remote_workers=remote_workers,
        )
        return 0
    if args.memory:
        memory_run(
            peers=args.peers,
            workers=args.workers,
            timeout=args.timeout,
            settle=args.settle_seconds,
            paths=args.memory_paths.split(","),
            census=args.census,
            trace=args.trace,
            operator_env=args.operator_env,
            variants=args.memory_variants.split(";"),
        )
        return 0
    if args.bulk:
        bulk_run(
            peers=args.peers,
            workers=args.workers,
            timeout=args.timeout,
            stop_at=args.stop_at,
            settle=args.settle_seconds,
            remote_workers=remote_workers,
        )
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp, SandboxThread() as sandbox:
        kubeconfig = sandbox.write_kubeconfig(Path(tmp) / "bench.kubeconfig")
        api_client = k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        custom = k8s_client.CustomObjectsApi(api_client)
        started = time.monotonic()
        _create_objects(custom, args.peers, workers=args.workers, port=free_port())
        print(f"peers={args.peers} created_in_s={time.monotonic() - started:.1f}", flush=True)

        log = (Path(tmp) / "operator.log").open("w")
        started = time.monotonic()
        operator = subprocess.Popen(
            [sys.executable, "-m", "federation_operator", "run", "--kubeconfig", str(kubeconfig)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            peak_rss = 0

            def converged() -> bool:
                nonlocal peak_rss
                if operator.poll() is not None:
                    raise SystemExit(f"operator exited with {operator.returncode}")
                peak_rss = max(peak_rss, _rss_kib(operator.pid))
                ready, cert_ready = sandbox.call(_count_ready, sandbox.api)
                return bool(cert_ready and ready == args.peers)

            _until(converged, timeout=args.timeout, what="all peers CredentialsReady")
            startup = time.monotonic() - started
            print(f"startup_to_all_reconciled_s={startup:.1f}", flush=True)
            print(f"operator_rss_at_convergence_mib={_rss_kib(operator.pid) / 1024:.0f}", flush=True)
            print(f"operator_rss_peak_during_startup_mib={peak_rss / 1024:.0f}", flush=True)

            # The first heartbeat round (every peer Unknown -> Degraded) follows convergence; the
            # steady windows start after `--settle-seconds`.
            time.sleep(args.settle_seconds)
            _steady_windows(sandbox, operator, windows=args.windows, seconds=args.steady_seconds)
        finally:
            stopping = time.monotonic()
            operator.terminate()
            try:
                operator.wait(timeout=SHUTDOWN_GRACE)
                print(f"operator_shutdown_s={time.monotonic() - stopping:.1f}", flush=True)
            except subprocess.TimeoutExpired:
                operator.kill()
                operator.wait()
                print(f"operator_shutdown_s=>{SHUTDOWN_GRACE:.0f} (killed)", flush=True)
            log.close()

        _print_index(*_index_memory(_from_sandbox(sandbox)))
    return 0


def _steady_windows(
    sandbox: SandboxThread,
    operator: subprocess.Popen[bytes],
    *,
    windows: int,
    seconds: float,
    remote: LocalRemote | None = None,
    metrics_port: int | None = None,
) -> None:
    """API calls per minute by verb and resource, status writes per kind and the operator's RSS,
    in `windows` consecutive windows of `seconds`; with the operator's metrics port, its heartbeat
    figures in each window (pings by factor, saturation, lag) and its CPU; with a local remote,
    the pings it served a second and its CPU, and where the peers stand at the end."""
    peers = sum(sandbox.call(_reachability, sandbox.api)[state] for state in REACHABILITY_STATES)
    budget = peers * ROUTINE_WRITES_PER_PEER_HOUR / 60
    for window in range(windows):
        before, window_start = sandbox.call(_status_writes, sandbox.api), time.monotonic()
        mark = len(sandbox.api.calls)
        metrics_before, cpu_before = (
            _heartbeat_metrics(metrics_port),
            _cpu_seconds(Path(f"/proc/{operator.pid}/stat")),
        )
        remote_before = remote.stats() if remote is not None else Counter()
        time.sleep(seconds)
        writes = sandbox.call(_status_writes, sandbox.api)
        by_kind = sandbox.call(_calls_since, sandbox.api, mark)
        per_minute = 60.0 / (time.monotonic() - window_start)
        print(
            f"window={window} api_calls_per_min_by_kind "
            + " ".join(
                f"{kind}={count * per_minute:.0f}" for kind, count in sorted(by_kind.items()) if count
            ),
            flush=True,
        )
        writes.subtract(before)
        print(
            f"window={window} status_writes_per_min peers={writes[api.PEER_PLURAL] * per_minute:.0f} "
            f"certs={writes[api.CERT_PLURAL] * per_minute:.0f} "
            f"all_api_calls_per_min={writes['all'] * per_minute:.0f} "
            f"operator_rss_mib={_rss_kib(operator.pid) / 1024:.0f} "
            f"routine_write_budget_per_min={budget:.0f}",
            flush=True,
        )
        elapsed = time.monotonic() - window_start
        cpu = _cpu_seconds(Path(f"/proc/{operator.pid}/stat")) - cpu_before
        line = f"window={window} operator_cpu_s={cpu:.1f}"
        metrics = _heartbeat_metrics(metrics_port)
        if metrics:
            moved = {key: value - metrics_before.get(key, 0.0) for key, value in metrics.items()}
            pings = sum(value for key, value in moved.items() if key.startswith("pings_total"))
            lag = moved.get("lag_seconds_sum", 0.0) / max(moved.get("lag_seconds_count", 0.0), 1.0)
            line += f" operator_pings_per_s={pings / elapsed:.1f} mean_lag_s={lag:.2f} "
            line += " ".join(
                f"{key}={value:.0f}"
                for key, value in sorted(moved.items())
                if value and not key.startswith(("saturated", "pending", "lag_"))
            )
            line += (
                f" saturated={metrics.get('saturated', 0):.0f} pending={metrics.get('pending_cycles', 0):.0f}"
            )
        if remote is not None:
            served = remote.stats()
            served.subtract(remote_before)
            line += f" remote_pings_per_s={served['pings'] / elapsed:.1f}"
            line += f" remote_cpu_s={served.pop('cpu_ms') / 1000:.1f} "
            line += " ".join(f"remote_{k}={v}" for k, v in sorted(served.items()) if v and k != "pings")
        print(line, flush=True)
        _print_remote(f"window={window} end", None, sandbox)


def _print_index(indexed: int, retained: int, peak: int) -> None:
    print(
        f"index_peers={indexed} index_retained_mib={retained / 2**20:.1f} index_peak_mib={peak / 2**20:.1f}",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
