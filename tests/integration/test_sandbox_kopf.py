"""A real kopf operator on the sandbox: finalizer, create, status patch and delete, end to end."""

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kopf
import pytest
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from federation_devkit.sandbox import SandboxThread
from tests.harness.waiting import wait_for

GROUP, VERSION, PLURAL = "federation.ampora.io", "v1alpha1", "federationcerts"
FINALIZER = "test.example.com/finalizer"


def build_registry(url: str, deleted: threading.Event) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry, id="settings")
    def settings(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.posting.enabled = False
        settings.watching.server_timeout = 10

    @kopf.on.login(registry=registry, id="login")
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=url, insecure=True, scheme="Bearer", token="x")

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, id="issue")
    def create(spec: kopf.Spec, patch: kopf.Patch, **_: Any) -> None:
        patch.status["thumbprint"] = "sha256:" + "d" * 64
        patch.status["notAfter"] = "2030-01-01T00:00:00Z"

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry, id="cleanup")
    def delete(**_: Any) -> None:
        deleted.set()

    return registry


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    with SandboxThread() as running:
        yield running


def test_kopf_operator_runs_end_to_end(sandbox: SandboxThread, tmp_path: Path) -> None:
    deleted = threading.Event()
    stop, ready = threading.Event(), threading.Event()
    registry = build_registry(sandbox.url, deleted)

    def operator() -> None:
        asyncio.run(
            kopf.operator(
                registry=registry, standalone=True, clusterwide=True, stop_flag=stop, ready_flag=ready
            )
        )

    thread = threading.Thread(target=operator, daemon=True)
    thread.start()
    api = k8s_config.new_client_from_config(
        config_file=str(sandbox.write_kubeconfig(tmp_path / "kubeconfig"))
    )
    custom = k8s_client.CustomObjectsApi(api)
    try:
        assert ready.wait(10), "kopf did not start"
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "FederationCert",
            "metadata": {"name": "eu"},
            "spec": {"subject": "eu"},
        }
        custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)

        def handled() -> dict[str, Any] | None:
            obj: dict[str, Any] = custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "eu")
            return obj if obj.get("status", {}).get("thumbprint") else None

        obj = wait_for(handled, message="kopf patched the status")
        assert FINALIZER in obj["metadata"]["finalizers"]
        assert obj["spec"]["subject"] == "eu"

        custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "eu")

        def gone() -> bool:
            try:
                custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "eu")
            except ApiException as exc:
                return exc.status == 404 and json.loads(exc.body)["reason"] == "NotFound"
            return False

        wait_for(gone, message="kopf released the finalizer and the object is gone")
        assert deleted.is_set()
    finally:
        stop.set()
        thread.join(10)
        api.close()
    assert not thread.is_alive()
