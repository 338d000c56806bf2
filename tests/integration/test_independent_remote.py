"""The independent remote as `hack/bench_scale.py --remote local` runs it: processes sharing one
port (SO_REUSEPORT), told the pins and each site's hashes over their control ports, and each
site's token checked against that site only. The caller here is curl, a real client."""

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from federation_devkit.independent_remote import sha256_hash
from tests.harness.net import free_port
from tests.harness.server import Identity, Keys
from tests.harness.waiting import wait_for


def _control(port: int, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data)
    with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 - loopback
        return json.loads(reply.read())


def _answers(port: int) -> bool:
    try:
        _control(port, "/stats")
    except OSError:
        return False
    return True


class Remote:
    def __init__(self, keys: Keys, workers: int) -> None:
        self.keys, self.port = keys, free_port()
        self.controls = [free_port() for _ in range(workers)]
        command = [sys.executable, "-m", "federation_devkit.independent_remote", "--port", str(self.port)]
        command += ["--cert", str(keys.server_cert), "--key", str(keys.server_key), "--reuse-port"]
        self.processes = [subprocess.Popen([*command, "--control-port", str(c)]) for c in self.controls]
        wait_for(lambda: all(map(_answers, self.controls)), timeout=30.0, message="every worker answers")

    def tell(self, path: str, body: Any) -> None:
        for control in self.controls:
            _control(control, path, body)

    def curl(self, identity: Identity, site: str, token: str) -> subprocess.CompletedProcess[str]:
        """One ping with curl (a new connection each time); stdout: `<status> <factor header>`."""
        command = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %header{x-federation-factor}"]
        command += ["--cacert", str(self.keys.ca), "--cert", str(identity.cert), "--key", str(identity.key)]
        command += ["-H", f"Authorization: Bearer {token}"]
        command += [f"https://127.0.0.1:{self.port}/sites/{site}/api/federation/ping"]
        return subprocess.run(command, capture_output=True, text=True, timeout=30)

    def ping(self, identity: Identity, site: str, token: str) -> str:
        answer = self.curl(identity, site, token)
        assert answer.returncode == 0, answer.stderr
        return answer.stdout.strip()

    def pings(self) -> int:
        return sum(_control(control, "/stats")["pings"] for control in self.controls)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=30)


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[Remote]:
    started = Remote(Keys.create(tmp_path), workers=2)
    yield started
    started.stop()


def test_processes_sharing_a_port_check_each_sites_own_token_and_the_pin_they_were_told(
    remote: Remote,
) -> None:
    caller = remote.keys.identity("caller")
    one, two = caller.token.reveal(), remote.keys.identity("other").token.reveal()
    remote.tell("/sites", {"peer-1": [sha256_hash(one)], "peer-2": [sha256_hash(two)]})

    # Not pinned yet: the handshake fails (curl exits non-zero) or the reply is a Certificate refusal.
    unpinned = remote.curl(caller, "peer-1", one)
    assert unpinned.returncode != 0 or unpinned.stdout.strip() == "401 Certificate"

    remote.tell("/pins", {"pems": [caller.pem]})
    # Each connection goes to whichever worker the kernel picks: every one of them was told.
    for _ in range(6):
        assert remote.ping(caller, "peer-1", one) == "200"
    assert remote.ping(caller, "peer-2", two) == "200"
    assert remote.ping(caller, "peer-1", two) == "401 Secret", "another site's token is refused"
    assert remote.ping(caller, "peer-3", one) == "401 Certificate", "a site nobody configured"
    wait_for(lambda: remote.pings() >= 9, timeout=10.0, message="every ping counted")
