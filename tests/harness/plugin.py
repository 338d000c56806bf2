"""Two linked sites for the plugin tests and the RBAC proof, linked the way the demo links them.

EU and US are `LocalSite`s (sandbox API, operator, federation server on real TLS); the link is
made with the demo's own steps (`federation_devkit.demo`): FederationCerts, a FederationPeer on
EU, `kubectl federation export`, apply on US, then both sides Reachable. The plugin is run
in-process through `cli.main` with each site's kubeconfig, its output captured.
"""

import contextlib
import functools
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from federation_devkit.demo import (
    PEERS,
    MovableClock,
    Site,
    accept_bundle,
    create_peer,
    export,
    issue_client_certificates,
    two_sites,
    wait_reachable,
)
from federation_operator.adapters.k8s.resources import SECRETS
from federation_operator.domain import api, objects, tokens
from federation_operator.plugin import cli
from tests.harness.waiting import wait_for

INTERVAL = 1.0


@dataclass(frozen=True)
class Output:
    code: int
    stdout: str
    stderr: str


def run_plugin(site: Site, *args: str) -> Output:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([*args, "--kubeconfig", str(site.local.kubeconfig)])
    return Output(code, out.getvalue(), err.getvalue())


def link(eu: Site, us: Site, *, interval: float = INTERVAL) -> None:
    """The demo's steps 1 to 4: certificates, peer, export, apply, both sides Reachable."""
    issue_client_certificates(eu, us)
    create_peer(eu, us, name="us-region", interval=interval)
    bundle = export(
        eu, "us-region", name="eu-region", endpoint=eu.local.endpoint, client_certificate="us-client"
    )
    accept_bundle(us, eu, bundle, name="eu-region", interval=interval)
    links = ((eu, "us-region"), (us, "eu-region"))
    wait_reachable(links, interval=interval)
    for site, peer in links:
        wait_for(
            functools.partial(fingerprints_shown, site, peer),
            timeout=30,
            interval=0.1,
            message="fingerprints",
        )


def fingerprints_shown(site: Site, peer: str) -> bool:
    status = site.status(PEERS, peer)
    return bool(
        (status.get("inbound") or {}).get("fingerprint") and (status.get("outbound") or {}).get("fingerprint")
    )


@contextlib.contextmanager
def linked_sites(workdir: Path) -> Iterator[tuple[Site, Site]]:
    with two_sites(workdir, MovableClock()) as (eu, us):
        link(eu, us)
        yield eu, us


def secrets_of(site: Site) -> list[str]:
    """What must never be printed: every token and every private key held in a site's Secrets."""
    found: list[str] = []
    for secret in site.call(site.kube.list(SECRETS, None)):
        for key, value in objects.secret_data(secret).items():
            text = value.decode("ascii", errors="replace").strip()
            if tokens.is_token(text):
                found.append(text)
            elif key == api.TLS_KEY_KEY:
                # The base64 body of the PEM: any line of it in output would be a leak.
                lines = text.splitlines()
                found.extend(line for line in lines if len(line) >= 16 and not line.startswith("-----"))
    return found
