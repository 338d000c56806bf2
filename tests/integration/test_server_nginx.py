"""Debian's nginx in front of the server, forwarding the client certificate as ingress-nginx does.

nginx terminates TLS with `ssl_verify_client optional_no_ca` and passes
`$ssl_client_escaped_cert` as `ssl-client-cert`: to ping (proxied) and to forward-auth (an
`auth_request` subrequest guarding a backend). The server trusts the header only from 127.0.0.1.
"""

import os
import shutil
import signal
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from federation_operator.domain import api
from federation_operator.server.clientcert import CertSource, CertSourceConfig, parse_networks
from tests.harness.net import free_port
from tests.harness.server import AppThread, Identity, Keys, link, peer_object
from tests.harness.waiting import wait_for

pytestmark = [
    pytest.mark.nginx,
    pytest.mark.skipif(
        shutil.which("nginx") is None, reason="nginx not installed (apt-get install nginx-light)"
    ),
]


def nginx_conf(*, prefix: Path, port: int, upstream: int, keys: Keys) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"{kind}_temp_path {prefix}/{kind}_temp;\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log off;
  {temp}
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {keys.server_cert};
    ssl_certificate_key {keys.server_key};
    ssl_verify_client optional_no_ca;

    location = {api.PING_PATH} {{
      proxy_pass http://127.0.0.1:{upstream};
      proxy_set_header ssl-client-cert $ssl_client_escaped_cert;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
    location /protected/ {{
      auth_request /_auth;
      auth_request_set $fed_peer $upstream_http_x_federation_peer;
      auth_request_set $fed_factor $upstream_http_x_federation_factor;
      add_header X-Seen-Peer $fed_peer always;
      add_header X-Seen-Factor $fed_factor always;
      proxy_set_header {api.HEADER_PEER} $fed_peer;
      rewrite ^ /healthz break;
      proxy_pass http://127.0.0.1:{upstream};
    }}
    location = /_auth {{
      internal;
      proxy_pass http://127.0.0.1:{upstream}{api.FORWARD_AUTH_PATH}$request_uri;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header ssl-client-cert $ssl_client_escaped_cert;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
  }}
}}
"""


@pytest.fixture(scope="module")
def ids(keys: Keys) -> dict[str, Identity]:
    return {name: keys.identity(name) for name in ("a", "b", "stranger", "paused")}


@pytest.fixture(scope="module")
def server(keys: Keys, ids: dict[str, Identity]) -> Iterator[AppThread]:
    sources = CertSourceConfig(
        sources=frozenset({CertSource.NGINX}), trusted_proxies=parse_networks(["127.0.0.1"])
    )
    thread = AppThread(keys=keys, cert_sources=sources).start()
    for name in ("a", "b", "paused"):
        thread.call(link, thread.index, ids[name])
    thread.call(thread.index.upsert_peer, peer_object(ids["paused"], suspend=True))
    thread.call(thread.index.mark_synced)
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory, keys: Keys, server: AppThread) -> Iterator[str]:
    prefix = tmp_path_factory.mktemp("nginx")
    port = free_port()
    (prefix / "nginx.conf").write_text(
        nginx_conf(prefix=prefix, port=port, upstream=server.http_port, keys=keys)
    )
    process = subprocess.Popen(
        ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
        stderr=subprocess.PIPE,
    )
    url = f"https://127.0.0.1:{port}"

    def up() -> bool:
        try:
            httpx.get(url + "/", verify=False)  # noqa: S501 - only probing that nginx listens
        except httpx.TransportError:
            return False
        return True

    try:
        wait_for(up, message="nginx listening")
        yield url
    finally:
        process.send_signal(signal.SIGQUIT)
        process.wait(timeout=10)


def client(keys: Keys, identity: Identity | None) -> httpx.Client:
    if identity is None:
        return httpx.Client(verify=ssl.create_default_context(cafile=str(keys.ca)))
    return httpx.Client(verify=identity.ssl_context(keys.ca))


def bearer(identity: Identity) -> dict[str, str]:
    return {"Authorization": f"Bearer {identity.token.reveal()}"}


def test_ping_through_nginx_green_with_pinned_cert_and_token(
    nginx: str, keys: Keys, ids: dict[str, Identity]
) -> None:
    with client(keys, ids["a"]) as http:
        reply = http.get(nginx + api.PING_PATH, headers=bearer(ids["a"]))
    assert reply.status_code == 200
    assert reply.json()["peer"]["name"] == "a"


@pytest.mark.parametrize(
    ("cert", "token", "status", "factor"),
    [
        ("stranger", "a", 401, "Certificate"),
        (None, "a", 401, "Certificate"),
        ("a", "b", 401, "Secret"),
        ("paused", "paused", 403, "Suspended"),
    ],
)
def test_ping_through_nginx_red_names_the_factor(
    nginx: str, keys: Keys, ids: dict[str, Identity], cert: str | None, token: str, status: int, factor: str
) -> None:
    with client(keys, ids[cert] if cert else None) as http:
        reply = http.get(nginx + api.PING_PATH, headers=bearer(ids[token]))
    assert (reply.status_code, reply.json()["factor"]) == (status, factor)


def test_forward_auth_through_nginx_lets_the_pinned_peer_in(
    nginx: str, keys: Keys, ids: dict[str, Identity]
) -> None:
    with client(keys, ids["b"]) as http:
        reply = http.get(nginx + "/protected/thing", headers={**bearer(ids["b"]), api.HEADER_PEER: "forged"})
    assert reply.status_code == 200
    assert reply.headers["X-Seen-Peer"] == "b"


@pytest.mark.parametrize(
    ("cert", "token", "status", "factor"),
    [
        ("stranger", "a", 401, "Certificate"),
        ("a", "b", 401, "Secret"),
        ("paused", "paused", 403, "Suspended"),
    ],
)
def test_forward_auth_through_nginx_refuses(
    nginx: str, keys: Keys, ids: dict[str, Identity], cert: str, token: str, status: int, factor: str
) -> None:
    with client(keys, ids[cert]) as http:
        reply = http.get(nginx + "/protected/thing", headers=bearer(ids[token]))
    assert reply.status_code == status
    assert reply.headers["X-Seen-Factor"] == factor


def test_header_from_an_untrusted_address_is_refused(server: AppThread, ids: dict[str, Identity]) -> None:
    forged = {"ssl-client-cert": quote(ids["a"].pem, safe=""), **bearer(ids["a"])}
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.9")) as http:
        reply = http.get(server.http_url + api.PING_PATH, headers=forged)
    assert (reply.status_code, reply.json()["factor"]) == (401, "Certificate")
    assert "trusted proxy" in reply.json()["message"]
