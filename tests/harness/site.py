"""A site: a sandbox API, a kubeconfig for it, and (optionally) its operator, all in this process.

Tests drive a site with the official Kubernetes client (what users' tools speak) and wait for
conditions with `tests.harness.waiting.wait_for`, never with sleeps. The `site_factory` fixture
(tests/harness/fixtures.py) makes them and stops them at the end of a test. The module functions
are the steps every linking test takes: issue a client certificate, read the fingerprints, export
a bundle with the plugin, apply it on the remote with the real kubectl.
"""

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from federation_devkit.sandbox.server import SandboxThread
from federation_operator.controller.config import OperatorConfig, OperatorContext
from federation_operator.controller.threads import OperatorThread
from federation_operator.domain import api
from federation_operator.plugin import cli
from tests.harness.waiting import wait_for

PEERS, CERTS = api.PEER_PLURAL, api.CERT_PLURAL


@dataclass
class Site:
    name: str
    sandbox: SandboxThread
    kubeconfig: Path
    namespace: str = "default"
    operator: OperatorThread | None = None
    config: OperatorConfig = field(default_factory=OperatorConfig)
    _api: k8s_client.ApiClient | None = None

    @property
    def api_client(self) -> k8s_client.ApiClient:
        if self._api is None:
            self._api = k8s_config.new_client_from_config(config_file=str(self.kubeconfig))
        return self._api

    @property
    def core(self) -> k8s_client.CoreV1Api:
        return k8s_client.CoreV1Api(self.api_client)

    @property
    def custom(self) -> k8s_client.CustomObjectsApi:
        return k8s_client.CustomObjectsApi(self.api_client)

    # Operator lifecycle -------------------------------------------------------------------------
    def start_operator(self, *, context: OperatorContext | None = None, **overrides: Any) -> OperatorThread:
        """Start this site's operator; `context` hands it a clock or a client of the test's own."""
        assert self.operator is None, "operator already running"
        self.config = replace(self.config, **overrides) if overrides else self.config
        self.operator = OperatorThread(self.config, context=context).start()
        return self.operator

    def stop_operator(self) -> None:
        if self.operator is not None:
            self.operator.stop()
            self.operator = None

    # Objects ------------------------------------------------------------------------------------
    def create(self, plural: str, name: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
        body = {
            "apiVersion": api.API_VERSION,
            "kind": api.CERT_KIND if plural == api.CERT_PLURAL else api.PEER_KIND,
            "metadata": {"name": name, **metadata},
            "spec": spec,
        }
        result: dict[str, Any] = self.custom.create_namespaced_custom_object(
            api.GROUP, api.VERSION, self.namespace, plural, body
        )
        return result

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.custom.get_namespaced_custom_object(
                api.GROUP, api.VERSION, self.namespace, plural, name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return result

    def patch(self, plural: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.patch_namespaced_custom_object(
            api.GROUP, api.VERSION, self.namespace, plural, name, body
        )
        return result

    def delete(self, plural: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(api.GROUP, api.VERSION, self.namespace, plural, name)

    def secret(self, name: str) -> Any | None:
        try:
            return self.core.read_namespaced_secret(name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def condition(self, plural: str, name: str, type_: str) -> dict[str, Any] | None:
        obj = self.get(plural, name) or {}
        for condition in (obj.get("status") or {}).get("conditions") or []:
            if condition.get("type") == type_:
                return dict(condition)
        return None

    def wait_condition(
        self,
        plural: str,
        name: str,
        type_: str,
        status: str,
        *,
        reason: str | None = None,
        timeout: float = 15.0,
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            condition = self.condition(plural, name, type_)
            if (
                condition
                and condition.get("status") == status
                and (reason is None or condition["reason"] == reason)
            ):
                return condition
            return None

        return wait_for(probe, timeout=timeout, message=f"{plural}/{name} {type_}={status} {reason or ''}")

    def events(self) -> list[Any]:
        return list(self.core.list_namespaced_event(self.namespace).items)

    def close(self) -> None:
        self.stop_operator()
        if self._api is not None:
            self._api.close()
        self.sandbox.stop()


SiteFactory = Callable[..., Site]


def issued_pem(site: Site, name: str) -> str:
    site.create(CERTS, name, {"subject": name})
    site.wait_condition(CERTS, name, "Ready", "True")
    return str(site.get(CERTS, name)["status"]["certificate"])  # type: ignore[index]


def fingerprints(site: Site, name: str) -> tuple[str, str]:
    site.wait_condition(PEERS, name, "CredentialsReady", "True")
    status = site.get(PEERS, name)["status"]  # type: ignore[index]
    return status["inbound"]["fingerprint"], status["outbound"]["fingerprint"]


def export(site: Site, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["export", *args, "--kubeconfig", str(site.kubeconfig)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def apply(site: Site, bundle: str, tmp_path: Path) -> None:
    """`kubectl apply -f` on the remote, as its admin would; the Python client only without kubectl."""
    path = tmp_path / f"bundle-{site.name}.yaml"
    path.write_text(bundle)
    path.chmod(0o600)
    if shutil.which("kubectl"):
        subprocess.run(
            ["kubectl", "--kubeconfig", str(site.kubeconfig), "apply", "-f", str(path)],
            check=True,
            capture_output=True,
            text=True,
        )
        return
    for document in yaml.safe_load_all(bundle):
        if document["kind"] == "Secret":
            site.core.create_namespaced_secret(site.namespace, document)
        else:
            site.custom.create_namespaced_custom_object(
                api.GROUP, api.VERSION, site.namespace, PEERS, document
            )
