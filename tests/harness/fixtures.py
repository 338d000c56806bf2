"""The fixtures every tier shares, defined once; tests/conftest.py registers this module as a
pytest plugin, so a test names a fixture as an argument and imports nothing for it.

- `site_factory` / `site`: sandbox APIs with their operators in this process (tests/harness/site.py),
  stopped at the end of the test.
- `captured_logs` / `operator_logs`: everything the operators log, for leak scans.
- `reliability_site`: a site whose periodic checks run every second.
- `keys`: a test CA, a server certificate for 127.0.0.1 and client identities
  (tests/harness/server.py), one set per test module (creating them costs key generation).
- `helm`: a real helm binary (hack/install-helm.sh), or a skip saying why there is none.
"""

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from federation_devkit.sandbox.server import SandboxThread
from federation_operator.controller.config import OperatorConfig
from tests.harness.chart import helm_binary
from tests.harness.server import Keys
from tests.harness.site import Site, SiteFactory


@pytest.fixture
def site_factory(tmp_path: Path) -> Iterator[SiteFactory]:
    sites: list[Site] = []

    def make(name: str = "eu", *, operator: bool = True, **config: Any) -> Site:
        sandbox = SandboxThread().start()
        kubeconfig = sandbox.write_kubeconfig(tmp_path / f"{name}.kubeconfig")
        site = Site(
            name=name,
            sandbox=sandbox,
            kubeconfig=kubeconfig,
            config=OperatorConfig(kubeconfig=kubeconfig, site=name, cert_check_interval=1.0, **config),
        )
        sites.append(site)
        if operator:
            site.start_operator()
        return site

    yield make
    for site in reversed(sites):
        site.close()


@pytest.fixture
def site(site_factory: SiteFactory) -> Site:
    return site_factory("eu")


@pytest.fixture
def reliability_site(site_factory: SiteFactory) -> Site:
    """A site whose periodic checks run every second, so that a missed event is caught quickly."""
    return site_factory("eu", peer_check_interval=1.0)


@pytest.fixture
def captured_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Everything the operator logs, at every level, for leak scans."""
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.fixture
def operator_logs(captured_logs: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Everything at DEBUG, except the sandbox's CEL library: it logs every evaluation (megabytes
    per hundred objects) and only ever sees FederationPeer/FederationCert specs, never a Secret."""
    captured_logs.set_level(logging.INFO, logger="celpy")
    return captured_logs


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys.create(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def helm() -> str:
    binary = helm_binary()
    if binary is None:
        pytest.skip("no helm: hack/install-helm.sh found none on PATH and could not install one")
    return binary
