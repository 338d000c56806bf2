"""Two sites, EU and US, federated end to end on this machine: the product page's steps, declared.

Each site is an in-memory Kubernetes API emulation (the sandbox, not a cluster) with its own
operator and its own federation server speaking real TLS on 127.0.0.1. The demo walks the steps
an admin would take: issue a client certificate on each side, create the peer, export it for the
other side (the tool swaps inbound and outbound), apply it there, and watch both links turn
Reachable. Then one side goes down and comes back (the 5-minute rule is time-compressed), and an
inbound secret is rotated while the link stays green. Everything runs in a temporary directory
and is torn down at the end: no process or port is left behind.
"""

import argparse
import asyncio
import contextlib
import functools
import io
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import yaml

from federation_devkit.localsite import LocalSite
from federation_operator.adapters.k8s.client import Kube
from federation_operator.adapters.k8s.resources import (
    CONFIGMAPS,
    FEDERATION_CERTS,
    FEDERATION_PEERS,
    SECRETS,
    Resource,
    resource_of,
)
from federation_operator.domain import api, certs
from federation_operator.plugin import cli as plugin

T = TypeVar("T")
PEERS = FEDERATION_PEERS
CERTS = FEDERATION_CERTS
NAMESPACE = "default"


class DemoFailure(RuntimeError):
    pass


class MovableClock:
    """Wall-clock time plus an offset the demo can move forward (time compression)."""

    def __init__(self) -> None:
        self._offset = timedelta()
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return certs.utcnow() + self._offset

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._offset += delta


class Console:
    def __init__(self, *, color: bool) -> None:
        self.color = color
        self.started = time.monotonic()

    def _paint(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def step(self, text: str) -> None:
        print(f"\n{self._paint('1;36', '==>')} {self._paint('1', text)}", flush=True)

    def done(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"  {self._paint('32', 'ok')} {text} {self._paint('2', f'[{elapsed:5.1f}s]')}", flush=True)

    def show(self, text: str) -> None:
        for line in text.rstrip().splitlines():
            print(f"    {line}", flush=True)


class Site:
    """What the demo does on one site, through the Kubernetes API like an admin's tools."""

    def __init__(self, local: LocalSite) -> None:
        self.local = local
        self.kube = Kube.from_kubeconfig(local.kubeconfig)
        # The rotation step reads status from a GreenWatch thread while the main thread applies
        # the bundle: a Runner serves one caller at a time ("This event loop is already running").
        self._loop = asyncio.Runner()
        self._loop_lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.local.name

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        with self._loop_lock:
            return self._loop.run(coroutine)

    def apply(self, resource: Resource, name: str, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {"name": name},
            "spec": spec,
        }
        self.call(self.kube.create(resource, NAMESPACE, body))

    def get(self, resource: Resource, name: str) -> dict[str, Any]:
        return self.call(self.kube.get(resource, NAMESPACE, name)) or {}

    def patch(self, resource: Resource, name: str, body: dict[str, Any]) -> None:
        self.call(self.kube.patch(resource, NAMESPACE, name, body))

    def delete(self, resource: Resource, name: str) -> None:
        self.call(self.kube.delete(resource, NAMESPACE, name))

    def status(self, resource: Resource, name: str) -> dict[str, Any]:
        return dict(self.get(resource, name).get("status") or {})

    def condition(self, resource: Resource, name: str, type_: str) -> str:
        for condition in self.status(resource, name).get("conditions") or []:
            if condition.get("type") == type_:
                return str(condition.get("status"))
        return ""

    def trust_ca(self, name: str, ca_pem: str) -> None:
        """A ConfigMap with the remote federation server's CA, for `spec.serverTrust`."""
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name},
            "data": {"ca.crt": ca_pem},
        }
        self.call(self.kube.create(CONFIGMAPS, NAMESPACE, body))

    def apply_documents(self, text: str) -> None:
        """`kubectl apply -f -` when kubectl is installed; the same objects through the API otherwise."""
        if shutil.which("kubectl"):
            subprocess.run(
                ["kubectl", "--kubeconfig", str(self.local.kubeconfig), "apply", "-f", "-"],
                input=text,
                text=True,
                check=True,
                capture_output=True,
            )
            return
        for document in yaml.safe_load_all(text):
            if document:
                self.call(self.kube.create(resource_of(document), NAMESPACE, document))

    def replace_secret_from(self, text: str) -> None:
        """Apply only the Secret of a bundle (the peer itself already exists)."""
        for document in yaml.safe_load_all(text):
            if document and document["kind"] == "Secret":
                self.call(self.kube.replace(SECRETS, NAMESPACE, document["metadata"]["name"], document))

    def peer_secrets(self) -> list[str]:
        secrets = self.call(self.kube.list(SECRETS, NAMESPACE, label_selector=api.LABEL_PEER))
        return [str(secret["metadata"]["name"]) for secret in secrets]

    def table(self) -> str:
        if shutil.which("kubectl"):
            return subprocess.run(
                ["kubectl", "--kubeconfig", str(self.local.kubeconfig), "get", api.PEER_PLURAL, "-o", "wide"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        table = self.call(self.kube.table(PEERS, NAMESPACE))
        headers = [str(column["name"]).upper() for column in table["columnDefinitions"]]
        rows = [["" if cell is None else str(cell) for cell in row["cells"]] for row in table["rows"]]
        widths = [max(len(item) for item in column) for column in zip(headers, *rows, strict=False)]
        lines = [headers, *rows]
        return "\n".join(
            "   ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) for line in lines
        )

    def close(self) -> None:
        self.kube.close()
        with self._loop_lock:
            self._loop.close()


def wait_until(probe: Callable[[], T | None], *, timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoFailure(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def export(site: Site, peer: str, *, name: str, endpoint: str, client_certificate: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = plugin.main(
            [
                "export",
                peer,
                "--name",
                name,
                "--endpoint",
                endpoint,
                "--client-certificate",
                client_certificate,
                "--kubeconfig",
                str(site.local.kubeconfig),
            ]
        )
    if code != 0:
        raise DemoFailure(f"kubectl federation export {peer} failed")
    return out.getvalue()


def rotate(site: Site, peer: str, direction: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = plugin.main(["rotate", peer, f"--{direction}", "--kubeconfig", str(site.local.kubeconfig)])
    if code != 0:
        raise DemoFailure(f"kubectl federation rotate {peer} --{direction} failed")
    return out.getvalue()


def heartbeat(interval: float) -> dict[str, str]:
    return {
        "interval": f"{interval:g}s",
        "timeout": f"{interval / 2:g}s",
        "slowThreshold": f"{interval / 4:g}s",
    }


def reachability(site: Site, peer: str) -> str:
    return str(site.status(PEERS, peer).get("reachability", ""))


def is_state(site: Site, peer: str, state: str) -> bool:
    return reachability(site, peer) == state


def has_condition(site: Site, resource: Resource, name: str, type_: str) -> bool:
    return site.condition(resource, name, type_) == "True"


def is_gone(site: Site, resource: Resource, name: str) -> bool:
    return not site.get(resource, name)


def issue_client_certificates(*sites: Site) -> None:
    """Step 1: a FederationCert `<site>-client` on each site, Ready."""
    for site in sites:
        site.apply(CERTS, f"{site.name}-client", {"subject": f"ampora-{site.name} federation client"})
    for site in sites:
        ready = functools.partial(has_condition, site, CERTS, f"{site.name}-client", "Ready")
        wait_until(ready, timeout=30, what=f"{site.name}-client Ready")


def server_trust(remote: Site) -> dict[str, Any]:
    """How a site trusts the remote's federation server: a ConfigMap with the remote's local CA."""
    return {"caBundleRef": {"kind": "ConfigMap", "name": f"{remote.name}-federation-ca"}}


def create_peer(site: Site, remote: Site, *, name: str, interval: float) -> None:
    """Steps 2-3 on the first side: pin the remote's certificate; the operator generates secrets."""
    site.trust_ca(f"{remote.name}-federation-ca", remote.local.ca_file.read_text())
    site.apply(
        PEERS,
        name,
        {
            "endpoint": remote.local.endpoint,
            "remoteCertificates": [{"pem": remote.status(CERTS, f"{remote.name}-client")["certificate"]}],
            "clientCertificateRef": {"name": f"{site.name}-client"},
            "heartbeat": heartbeat(interval),
            "serverTrust": server_trust(remote),
        },
    )
    ready = functools.partial(has_condition, site, PEERS, name, "CredentialsReady")
    wait_until(ready, timeout=30, what=f"{name} CredentialsReady")


def accept_bundle(site: Site, remote: Site, bundle: str, *, name: str, interval: float) -> None:
    """Step 3 on the other side: apply the exported bundle, say which certificate to present."""
    site.trust_ca(f"{remote.name}-federation-ca", remote.local.ca_file.read_text())
    site.apply_documents(bundle)
    spec = {
        "clientCertificateRef": {"name": f"{site.name}-client"},
        "heartbeat": heartbeat(interval),
        "serverTrust": server_trust(remote),
    }
    site.patch(PEERS, name, {"spec": spec})


def wait_reachable(links: Iterable[tuple[Site, str]], *, interval: float) -> None:
    for site, peer in links:
        reachable = functools.partial(is_state, site, peer, "Reachable")
        wait_until(reachable, timeout=10 * interval + 20, what=f"{peer} Reachable")


@contextlib.contextmanager
def two_sites(
    workdir: Path,
    clock: MovableClock | None = None,
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> Iterator[tuple[Site, Site]]:
    """EU and US started (EU on `clock`, if given), closed in reverse order whatever happens.
    `options`: more `LocalSite` settings per site name (ports, operator overrides)."""
    extra = options or {}
    eu_local = LocalSite("eu", workdir / "eu", clock=clock, **extra.get("eu", {}))
    us_local = LocalSite("us", workdir / "us", **extra.get("us", {}))
    sites: list[Site] = []
    try:
        for local in (eu_local, us_local):
            local.start()
            sites.append(Site(local))
        yield sites[0], sites[1]
    finally:
        for site in sites:
            site.close()
        for local in (us_local, eu_local):
            local.close()


def run_demo(*, console: Console, workdir: Path, interval: float) -> None:
    clock = MovableClock()
    console.step("Starting two sites on loopback: sandbox API + operator + federation server (TLS) each")
    with two_sites(workdir, clock) as (eu, us):
        for site in (eu, us):
            console.done(f"{site.name.upper()}: federation endpoint {site.local.endpoint}")

        console.step("1. Issue a federation client certificate on each side (FederationCert)")
        issue_client_certificates(eu, us)
        for site in (eu, us):
            status = site.status(CERTS, f"{site.name}-client")
            console.done(f"{site.name}-client: {status['thumbprint']} valid until {status['notAfter']}")

        console.step(
            "2-3. EU creates the peer us-region: US's endpoint, US's certificate pinned, secrets generated"
        )
        create_peer(eu, us, name="us-region", interval=interval)
        console.done(
            "inbound token kept only as a sha256 hash; outbound token in a Secret; one-time handoff ready"
        )

        console.step("The swap, done by the tool: kubectl federation export us-region --name eu-region")
        bundle = export(
            eu, "us-region", name="eu-region", endpoint=eu.local.endpoint, client_certificate="us-client"
        )
        kinds = [doc["kind"] for doc in yaml.safe_load_all(bundle) if doc]
        console.done(
            f"bundle for US: {', '.join(kinds)} (handoff consumed: our inbound token now exists only there)"
        )
        accept_bundle(us, eu, bundle, name="eu-region", interval=interval)
        console.done("US applied the bundle (kubectl apply -f) and chose which FederationCert to present")

        console.step("4. Verify: both sides ping every interval over mTLS (pin + secret on every call)")
        wait_reachable(((eu, "us-region"), (us, "eu-region")), interval=interval)
        eu_status, us_status = eu.status(PEERS, "us-region"), us.status(PEERS, "eu-region")
        if eu_status["outbound"]["fingerprint"] != us_status["inbound"]["fingerprint"] or (
            eu_status["inbound"]["fingerprint"] != us_status["outbound"]["fingerprint"]
        ):
            raise DemoFailure("fingerprints do not match across the link")
        out_fp, in_fp = eu_status["outbound"]["fingerprint"], eu_status["inbound"]["fingerprint"]
        console.done(f"EU outbound {out_fp} = US inbound; EU inbound {in_fp} = US outbound")
        for site in (eu, us):
            console.show(f"[{site.name}] kubectl get federationpeers -o wide\n{site.table()}")

        console.step("Outage: US's federation server stops")
        us.local.stop_server()
        wait_until(
            lambda: reachability(eu, "us-region") == "Degraded", timeout=10 * interval + 20, what="Degraded"
        )
        failure = eu.status(PEERS, "us-region").get("lastFailure", {})
        console.done(f"EU sees Degraded: {failure.get('factor')}: {failure.get('message')}")
        clock.advance(timedelta(minutes=6))
        wait_until(
            lambda: reachability(eu, "us-region") == "Unreachable",
            timeout=10 * interval + 20,
            what="Unreachable",
        )
        console.done("six minutes later (time-compressed on EU's clock): Unreachable")
        console.show(f"[eu] kubectl get federationpeers -o wide\n{eu.table()}")
        clock.advance(timedelta(minutes=-6))  # time compression ends: back to the wall clock
        us.local.start_server()
        wait_until(
            lambda: reachability(eu, "us-region") == "Reachable", timeout=10 * interval + 20, what="recovery"
        )
        console.done("US is back: EU sees Reachable again")

        console.step(
            "Secret rotation that stays green: kubectl federation rotate us-region --inbound (on EU)"
        )
        before = eu.status(PEERS, "us-region").get("inbound", {}).get("fingerprint")
        console.show(rotate(eu, "us-region", "inbound"))
        wait_until(
            lambda: eu.status(PEERS, "us-region").get("inbound", {}).get("fingerprint") not in (None, before),
            timeout=30,
            what="rotation",
        )
        console.done("new inbound token; the previous hash stays valid for the overlap window")
        watcher = GreenWatch(us, "eu-region")
        with watcher:
            bundle = export(
                eu, "us-region", name="eu-region", endpoint=eu.local.endpoint, client_certificate="us-client"
            )
            us.replace_secret_from(bundle)
            after = eu.status(PEERS, "us-region")["inbound"]["fingerprint"]
            wait_until(
                lambda: us.status(PEERS, "eu-region").get("outbound", {}).get("acceptedFingerprint") == after,
                timeout=10 * interval + 20,
                what="US presenting the new token",
            )
        if watcher.red:
            raise DemoFailure(f"the link went red during rotation: {watcher.red}")
        late = f", {watcher.late} of them after a ping timed out on this busy machine" if watcher.late else ""
        console.done(
            f"US now presents the new token ({after}); no ping was refused ({watcher.samples} checks{late})"
        )
        for site in (eu, us):
            console.show(f"[{site.name}] kubectl get federationpeers -o wide\n{site.table()}")

        console.step("Removing the link on both sides: finalizers delete every Secret the operator created")
        for site, peer in ((eu, "us-region"), (us, "eu-region")):
            site.delete(PEERS, peer)
        for site, peer in ((eu, "us-region"), (us, "eu-region")):
            wait_until(functools.partial(is_gone, site, PEERS, peer), timeout=30, what="peer deletion")
        left = eu.peer_secrets() + us.peer_secrets()
        if left:
            raise DemoFailure(f"secrets left behind: {left}")
        console.done("peers gone, no peer Secret left")


class GreenWatch:
    """Samples a peer's reachability in the background and remembers any non-green state.

    A ping that timed out is counted apart (`late`): the demo's pings have half a second
    (`heartbeat`), which a busy machine can miss, and a timeout says nothing about the rotation. A
    rotation that broke the link shows as a refusal (factor `Secret`), which is red.
    """

    def __init__(self, site: Site, peer: str) -> None:
        self.site, self.peer = site, peer
        self.red: list[str] = []
        self.late = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            state = reachability(self.site, self.peer)
            self.samples += 1
            if state not in ("Reachable", "Slow"):
                failure = self.site.status(PEERS, self.peer).get("lastFailure", {})
                if state == "Degraded" and failure.get("factor") == "Timeout":
                    self.late += 1
                else:
                    self.red.append(f"{state} ({failure.get('factor')})")

    def __enter__(self) -> "GreenWatch":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# What `federation-operator demo --help` says, for the person running it.
SUMMARY = "two linked sites (EU, US) in sandboxes, end to end"
DESCRIPTION = (
    "Run two sites, EU and US, on this machine (each a sandbox with its operator and federation\n"
    "server), link them as an admin would (certificates, peer, export, apply), watch both links\n"
    "turn Reachable, stop and restart one side, rotate a secret while the link stays green, and\n"
    "tear everything down."
)
EXAMPLE = (
    "federation-operator demo\n"
    "  federation-operator demo --workdir /tmp/demo   # keeps kubeconfigs, CAs and audit logs"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--interval", type=float, default=1.0, help="heartbeat interval in seconds (default 1)"
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep kubeconfigs, CAs and audit logs here (default: a temp dir)"
    )
    parser.add_argument("--no-color", action="store_true")


def main(args: argparse.Namespace) -> int:
    console = Console(color=sys.stdout.isatty() and not args.no_color)
    print(
        "federation-operator demo: two sites (EU, US) in sandboxes (in-memory API emulations, not clusters)"
    )
    keep = args.workdir is not None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="federation-demo-"))
    try:
        run_demo(console=console, workdir=workdir, interval=args.interval)
    except DemoFailure as error:
        print(f"\ndemo failed: {error}", file=sys.stderr)
        return 1
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nDone in {time.monotonic() - console.started:.1f}s: everything stopped, nothing left running.")
    return 0
