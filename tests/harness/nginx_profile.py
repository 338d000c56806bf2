"""Run Debian's nginx configured from the ingress-nginx profile, the way ingress-nginx would.

ingress-nginx turns an Ingress and its annotations into an nginx `server` block. This renders
the same directives from the Ingress our provider generates, so a test can put real TLS and a
real `curl --cert` in front of it:
- `auth-tls-secret`           -> `ssl_client_certificate <file with the Secret's ca.crt>`
- `auth-tls-verify-client`    -> `ssl_verify_client`
- `auth-tls-verify-depth`     -> `ssl_verify_depth`
- `auth-tls-pass-certificate-to-upstream` -> `proxy_set_header ssl-client-cert
  $ssl_client_escaped_cert` (to the backend and, as ingress-nginx does, to the auth request)
- `auth-url`                  -> an internal `auth_request` location proxying to that URL
- `auth-response-headers`     -> `auth_request_set` + `proxy_set_header` per header
The cluster DNS name of `auth-url` and of the backend Service is mapped to a loopback port.
"""

import base64
import os
import re
import signal
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.harness.waiting import wait_for

ANNOTATION = "nginx.ingress.kubernetes.io/"
AUTH_LOCATION = "/_external-auth"


def write_ca_file(secret: Mapping[str, Any], path: Path) -> None:
    """What ingress-nginx does with `auth-tls-secret`: the Secret's `ca.crt` into a PEM file."""
    path.write_bytes(base64.b64decode(secret["data"]["ca.crt"]))


def render_nginx_conf(
    *,
    ingress: Mapping[str, Any],
    prefix: Path,
    listen_port: int,
    upstream_port: int,
    ca_file: Path,
    server_cert: Path,
    server_key: Path,
) -> str:
    annotations: Mapping[str, str] = ingress["metadata"]["annotations"]
    [rule] = ingress["spec"]["rules"]
    [path] = rule["http"]["paths"]
    assert path["pathType"] == "Prefix"
    auth_url = urlsplit(annotations[f"{ANNOTATION}auth-url"])
    pass_cert = annotations.get(f"{ANNOTATION}auth-tls-pass-certificate-to-upstream") == "true"
    cert_headers = (
        "proxy_set_header ssl-client-cert $ssl_client_escaped_cert;\n" if pass_cert else ""
    ) + "proxy_set_header ssl-client-verify $ssl_client_verify;\n"
    response_headers = [
        name.strip()
        for name in annotations.get(f"{ANNOTATION}auth-response-headers", "").split(",")
        if name.strip()
    ]
    auth_sets = "".join(
        f"auth_request_set $auth_response_{i} $upstream_http_{name.lower().replace('-', '_')};\n"
        f"proxy_set_header {name} $auth_response_{i};\n"
        for i, name in enumerate(response_headers)
    )
    # As root, workers would drop to `nobody` and could not use the temp dirs under `prefix`.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp_paths = "".join(
        f"{kind}_temp_path {prefix}/{kind}_temp;\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}worker_processes 1;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
access_log {prefix}/access.log;
{temp_paths}
server {{
listen 127.0.0.1:{listen_port} ssl;
server_name {rule["host"]};
ssl_certificate {server_cert};
ssl_certificate_key {server_key};
ssl_client_certificate {ca_file};
ssl_verify_client {annotations[f"{ANNOTATION}auth-tls-verify-client"]};
ssl_verify_depth {annotations[f"{ANNOTATION}auth-tls-verify-depth"]};

location = {AUTH_LOCATION} {{
internal;
proxy_pass_request_body off;
proxy_set_header Content-Length "";
proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
proxy_set_header X-Original-Method $request_method;
proxy_set_header Host {auth_url.hostname};
{cert_headers}proxy_pass http://127.0.0.1:{upstream_port}{auth_url.path};
}}

location {path["path"]} {{
auth_request {AUTH_LOCATION};
{auth_sets}{cert_headers}proxy_set_header Host $host;
proxy_pass http://127.0.0.1:{upstream_port};
}}
}}
}}
"""


@dataclass
class Nginx:
    """One nginx master on a loopback port, with its own prefix, pid file and error log."""

    binary: str
    prefix: Path
    conf: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    def _argv(self, *extra: str) -> list[str]:
        return [
            self.binary,
            "-p",
            str(self.prefix),
            "-c",
            str(self.conf),
            "-g",
            f"daemon off; pid {self.prefix}/nginx.pid;",
            *extra,
        ]

    def start(self) -> None:
        subprocess.run(self._argv("-t"), check=True, capture_output=True)
        self.process = subprocess.Popen(self._argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._accepting, timeout=10, message=f"nginx listening on 127.0.0.1:{self.port}")

    def _accepting(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"nginx exited with {self.process.returncode}: {self.error_log()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def reload(self) -> None:
        """`nginx -s reload`, then wait until the old workers are gone.

        New workers start before the old ones stop accepting, so until the master has reaped
        the old ones a request may still be served under the old configuration.
        """
        exited = self._exited_workers()
        subprocess.run(self._argv("-s", "reload"), check=True, capture_output=True)
        wait_for(lambda: self._exited_workers() > exited, timeout=10, message="old nginx workers exited")

    def _exited_workers(self) -> int:
        return len(re.findall(r"worker process \d+ exited with code", self.error_log()))

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGQUIT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text() if path.exists() else ""
