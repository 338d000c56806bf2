"""Shared integration fixtures: a "site" is a sandbox API, a kubeconfig for it, and its operator.

Tests drive a site with the official Kubernetes client (what users' tools speak) and wait for
conditions with `tests.waiting.wait_for`, never with sleeps.
"""

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from federation_devkit.sandbox.server import SandboxThread
from federation_operator.controller.config import OperatorConfig
from federation_operator.controller.threads import OperatorThread
from federation_operator.domain import api
from tests.waiting import wait_for


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
    def start_operator(self, **overrides: Any) -> OperatorThread:
        assert self.operator is None, "operator already running"
        self.config = replace(self.config, **overrides) if overrides else self.config
        self.operator = OperatorThread(self.config).start()
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
def captured_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Everything the operator logs, at every level, for leak scans."""
    caplog.set_level(logging.DEBUG)
    return caplog
