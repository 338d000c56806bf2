"""The sandbox API over real HTTP: what kopf, the kubernetes client and kubectl rely on."""

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from federation_devkit.sandbox import Sandbox, SandboxThread, emulator
from federation_devkit.sandbox.faults import TIMEOUT, Call

GROUP, VERSION = "federation.ampora.io", "v1alpha1"
CERTS = f"/apis/{GROUP}/{VERSION}/namespaces/default/federationcerts"
PEERS = f"/apis/{GROUP}/{VERSION}/namespaces/default/federationpeers"
THUMB = "sha256:" + "b" * 64


def cert(name: str = "eu", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FederationCert",
        "metadata": {"name": name},
        "spec": {"subject": name, **spec},
    }


def peer(name: str = "us", endpoint: str = "https://us.example.com") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FederationPeer",
        "metadata": {"name": name},
        "spec": {"endpoint": endpoint, "remoteCertificates": [{"thumbprint": THUMB}]},
    }


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox() as running:
        yield running


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=sandbox.url) as session:
        yield session


@pytest.fixture
def threaded(tmp_path: Path) -> Iterator[tuple[SandboxThread, k8s_client.ApiClient]]:
    with SandboxThread() as running:
        api = k8s_config.new_client_from_config(
            config_file=str(running.write_kubeconfig(tmp_path / "kubeconfig"))
        )
        try:
            yield running, api
        finally:
            api.close()


async def call(
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    body: Any = None,
    *,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    data = json.dumps(body) if body is not None else None
    async with http.request(
        method, path, data=data, headers={"Content-Type": content_type, **(headers or {})}
    ) as rsp:
        return rsp.status, await rsp.json()


# --- bookkeeping, via the official client ----------------------------------------------------


def test_metadata_bookkeeping_through_the_kubernetes_client(
    threaded: tuple[SandboxThread, k8s_client.ApiClient],
) -> None:
    _, api = threaded
    custom = k8s_client.CustomObjectsApi(api)
    created = custom.create_namespaced_custom_object(GROUP, VERSION, "default", "federationcerts", cert())
    meta = created["metadata"]
    assert meta["generation"] == 1
    assert len(meta["uid"]) == 36
    assert meta["creationTimestamp"].endswith("Z")
    assert created["spec"]["duration"] == "2160h", "schema defaults are applied"

    labelled = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", "federationcerts", "eu", {"metadata": {"labels": {"a": "b"}}}
    )
    assert int(labelled["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    assert labelled["metadata"]["generation"] == 1, "metadata changes leave generation alone"

    respec = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", "federationcerts", "eu", {"spec": {"duration": "4320h"}}
    )
    assert respec["metadata"]["generation"] == 2
    assert respec["metadata"]["uid"] == meta["uid"]
    assert respec["metadata"]["creationTimestamp"] == meta["creationTimestamp"]

    core = k8s_client.CoreV1Api(api)
    generated = core.create_namespaced_config_map(
        "default", {"metadata": {"generateName": "cfg-"}, "data": {"k": "v"}}
    )
    assert generated.metadata.name.startswith("cfg-")
    assert len(generated.metadata.name) == len("cfg-") + 5
    assert generated.metadata.namespace == "default"


def test_generate_name_draws_again_on_a_collision_as_the_api_server_does(
    threaded: tuple[SandboxThread, k8s_client.ApiClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Since Kubernetes 1.32 the API server draws a generated name again when it is taken (up to 8
    draws); before, a 409 reached the client. kopf's Events collide at tens of thousands."""
    _, api = threaded
    core = k8s_client.CoreV1Api(api)
    core.create_namespaced_config_map("default", {"metadata": {"name": "cfg-bbbbb"}})
    draws = iter(["bbbbb", "bbbbb", "ccccc"] + ["bbbbb"] * 8)
    monkeypatch.setattr(emulator.random, "choices", lambda population, k: list(next(draws)))
    generated = core.create_namespaced_config_map("default", {"metadata": {"generateName": "cfg-"}})
    assert generated.metadata.name == "cfg-ccccc"
    with pytest.raises(ApiException) as taken:
        core.create_namespaced_config_map("default", {"metadata": {"generateName": "cfg-"}})
    assert taken.value.status == 409
    assert next(draws, None) is None, "eight draws, then the conflict"


def test_not_found_and_already_exists_surface_as_api_exceptions(
    threaded: tuple[SandboxThread, k8s_client.ApiClient],
) -> None:
    _, api = threaded
    core = k8s_client.CoreV1Api(api)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_secret("nope", "default")
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["message"] == 'secrets "nope" not found'
    core.create_namespaced_secret("default", {"metadata": {"name": "s"}, "stringData": {"a": "b"}})
    with pytest.raises(ApiException) as duplicate:
        core.create_namespaced_secret("default", {"metadata": {"name": "s"}})
    assert duplicate.value.status == 409
    assert json.loads(duplicate.value.body)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as no_namespace:
        core.create_namespaced_secret("elsewhere", {"metadata": {"name": "s"}})
    assert no_namespace.value.status == 404
    assert json.loads(no_namespace.value.body)["message"] == 'namespaces "elsewhere" not found'


# --- HTTP semantics ---------------------------------------------------------------------------


async def test_status_codes_and_status_objects(http: aiohttp.ClientSession) -> None:
    assert (await call(http, "POST", CERTS, cert()))[0] == 201
    status, body = await call(http, "POST", CERTS, cert())
    assert status == 409
    assert body["message"] == 'federationcerts.federation.ampora.io "eu" already exists'
    status, body = await call(http, "GET", f"{CERTS}/missing")
    assert status == 404
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "code": 404,
        "reason": "NotFound",
        "message": 'federationcerts.federation.ampora.io "missing" not found',
        "details": {"name": "missing", "group": GROUP, "kind": "federationcerts"},
    }
    assert (await call(http, "GET", f"{CERTS}/eu"))[0] == 200
    assert (await call(http, "DELETE", f"{CERTS}/eu"))[0] == 200
    assert (await call(http, "GET", f"{CERTS}/eu"))[0] == 404


async def test_failed_json_patch_test_is_422_and_changes_nothing(http: aiohttp.ClientSession) -> None:
    _, created = await call(http, "POST", CERTS, cert())
    rv = created["metadata"]["resourceVersion"]
    stale = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "0"},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x"]},
    ]
    status, body = await call(http, "PATCH", f"{CERTS}/eu", stale, content_type="application/json-patch+json")
    assert (status, body["reason"]) == (422, "Invalid")
    fresh = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x"]},
    ]
    status, body = await call(http, "PATCH", f"{CERTS}/eu", fresh, content_type="application/json-patch+json")
    assert status == 200
    assert body["metadata"]["finalizers"] == ["x"]


async def test_put_with_a_stale_resource_version_conflicts(http: aiohttp.ClientSession) -> None:
    _, created = await call(http, "POST", CERTS, cert())
    first = {**created, "spec": {**created["spec"], "subject": "one"}}
    status, updated = await call(http, "PUT", f"{CERTS}/eu", first)
    assert status == 200
    assert updated["spec"]["subject"] == "one"
    second = {**created, "spec": {**created["spec"], "subject": "two"}}
    status, body = await call(http, "PUT", f"{CERTS}/eu", second)
    assert (status, body["reason"]) == (409, "Conflict")


async def test_merge_strategic_and_apply_patches(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", CERTS, cert())
    _, merged = await call(
        http,
        "PATCH",
        f"{CERTS}/eu",
        {"metadata": {"labels": {"a": "1"}}},
        content_type="application/merge-patch+json",
    )
    _, strategic = await call(
        http,
        "PATCH",
        f"{CERTS}/eu",
        {"metadata": {"labels": {"b": "2"}}},
        content_type="application/strategic-merge-patch+json",
    )
    assert merged["metadata"]["labels"] == {"a": "1"}
    assert strategic["metadata"]["labels"] == {"a": "1", "b": "2"}
    status, applied = await call(
        http,
        "PATCH",
        f"{CERTS}/new?fieldManager=test",
        cert("new"),
        content_type="application/apply-patch+yaml",
    )
    assert status == 201, "server-side apply creates"
    assert applied["metadata"]["name"] == "new"


# --- status subresource -----------------------------------------------------------------------


async def test_status_subresource_separates_spec_and_status_writes(http: aiohttp.ClientSession) -> None:
    body = cert()
    body["status"] = {"thumbprint": THUMB}
    _, created = await call(http, "POST", CERTS, body)
    assert "status" not in created, "status is dropped on create"

    _, via_status = await call(
        http,
        "PATCH",
        f"{CERTS}/eu/status",
        {"status": {"thumbprint": THUMB}, "spec": {"subject": "ignored"}},
        content_type="application/merge-patch+json",
    )
    assert via_status["status"]["thumbprint"] == THUMB
    assert via_status["spec"]["subject"] == "eu", "spec is not written through /status"
    assert via_status["metadata"]["generation"] == 1

    _, via_main = await call(
        http,
        "PATCH",
        f"{CERTS}/eu",
        {"status": {"thumbprint": "sha256:" + "c" * 64}, "spec": {"subject": "new"}},
        content_type="application/merge-patch+json",
    )
    assert via_main["spec"]["subject"] == "new"
    assert via_main["status"]["thumbprint"] == THUMB, "status is not written through the main resource"


# --- validation -------------------------------------------------------------------------------


async def test_invalid_object_is_422_with_field_and_rule_message_and_not_stored(
    http: aiohttp.ClientSession,
) -> None:
    status, body = await call(http, "POST", PEERS, peer(endpoint="http://us.example.com"))
    assert (status, body["reason"]) == (422, "Invalid")
    assert body["message"].startswith(
        'FederationPeer.federation.ampora.io "us" is invalid: [spec.endpoint: Invalid value: "string": '
        "endpoint must be an https:// URL"
    )
    assert {
        "reason": "FieldValueInvalid",
        "field": "spec.endpoint",
        "message": 'Invalid value: "string": endpoint must be an https:// URL',
    } in body["details"]["causes"]
    assert (await call(http, "GET", f"{PEERS}/us"))[0] == 404


async def test_strict_field_validation_rejects_unknown_fields_default_prunes(
    http: aiohttp.ClientSession,
) -> None:
    body = peer()
    body["spec"]["typo"] = 1
    status, rejected = await call(http, "POST", f"{PEERS}?fieldValidation=Strict", body)
    assert status == 400
    assert 'unknown field "spec.typo"' in rejected["message"]
    status, created = await call(http, "POST", PEERS, body)
    assert status == 201
    assert "typo" not in created["spec"]


async def test_updates_are_validated_including_transition_rules(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", CERTS, cert(secretName="eu-tls"))
    status, body = await call(
        http,
        "PATCH",
        f"{CERTS}/eu",
        {"spec": {"secretName": "other"}},
        content_type="application/merge-patch+json",
    )
    assert status == 422
    assert body["details"]["causes"][0]["field"] == "spec.secretName"


# --- lists, selectors, tables -----------------------------------------------------------------


async def test_list_has_kind_api_version_and_filters_by_selectors(http: aiohttp.ClientSession) -> None:
    for name, role in (("a", "inbound"), ("b", "outbound"), ("c", None)):
        labels = {"role": role} if role else {}
        await call(
            http, "POST", "/api/v1/namespaces/default/secrets", {"metadata": {"name": name, "labels": labels}}
        )
    _, listing = await call(
        http, "GET", "/api/v1/namespaces/default/secrets?labelSelector=role%20in%20(inbound,outbound)"
    )
    assert listing["kind"] == "SecretList"
    assert listing["apiVersion"] == "v1"
    assert listing["metadata"]["resourceVersion"]
    assert [item["metadata"]["name"] for item in listing["items"]] == ["a", "b"]
    _, other = await call(
        http, "GET", "/api/v1/secrets?labelSelector=!role&fieldSelector=metadata.namespace%3Ddefault"
    )
    assert [item["metadata"]["name"] for item in other["items"]] == ["c"]


async def test_table_response_uses_printer_columns(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", PEERS, peer())
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    _, table = await call(http, "GET", PEERS, headers={"Accept": accept})
    assert table["kind"] == "Table"
    names = [column["name"] for column in table["columnDefinitions"]]
    assert names[:6] == ["Name", "Endpoint", "Reachability", "Latency-ms", "Last-Success", "Age"]
    assert table["rows"][0]["cells"][:2] == ["us", "https://us.example.com"]


async def test_crd_created_through_the_api_is_served(http: aiohttp.ClientSession) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wg"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}
                            },
                        }
                    },
                }
            ],
        },
    }
    assert (await call(http, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd))[
        0
    ] == 201
    _, groups = await call(http, "GET", "/apis")
    assert "example.com" in [group["name"] for group in groups["groups"]]
    _, resources = await call(http, "GET", "/apis/example.com/v1")
    assert resources["resources"][0]["shortNames"] == ["wg"]
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": "big"},
    }
    assert (await call(http, "POST", "/apis/example.com/v1/namespaces/default/widgets", widget))[0] == 422
    widget["spec"]["size"] = 3
    assert (await call(http, "POST", "/apis/example.com/v1/namespaces/default/widgets", widget))[0] == 201
    _, listing = await call(http, "GET", "/apis/example.com/v1/widgets")
    assert (listing["kind"], listing["apiVersion"]) == ("WidgetList", "example.com/v1")
    await call(http, "DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
    assert (await call(http, "GET", "/apis/example.com/v1/widgets"))[0] == 404


async def test_cel_rules_are_ratcheted_after_the_crd_is_tightened(http: aiohttp.ClientSession) -> None:
    # As on Kubernetes 1.30+: a rule added after an object was stored does not refuse a write that
    # leaves the offending field as it was (a label, here), and refuses one that changes it.
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    size: dict[str, Any] = {"type": "integer"}
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": {"type": "object", "properties": {"size": size}}},
                        }
                    },
                }
            ],
        },
    }
    assert (await call(http, "POST", crds, crd))[0] == 201
    gadgets = "/apis/example.com/v1/namespaces/default/gadgets"
    gadget = {
        "apiVersion": "example.com/v1",
        "kind": "Gadget",
        "metadata": {"name": "g"},
        "spec": {"size": 9},
    }
    assert (await call(http, "POST", gadgets, gadget))[0] == 201
    _, stored_crd = await call(http, "GET", f"{crds}/gadgets.example.com")
    size["x-kubernetes-validations"] = [{"rule": "self < 5", "message": "too big"}]
    stored_crd["spec"] = crd["spec"]
    assert (await call(http, "PUT", f"{crds}/gadgets.example.com", stored_crd))[0] == 200
    assert (await call(http, "POST", gadgets, {**gadget, "metadata": {"name": "h"}}))[0] == 422
    merge = "application/merge-patch+json"
    labelled = {"metadata": {"labels": {"team": "a"}}}
    assert (await call(http, "PATCH", f"{gadgets}/g", labelled, content_type=merge))[0] == 200
    status, refused = await call(http, "PATCH", f"{gadgets}/g", {"spec": {"size": 8}}, content_type=merge)
    assert status == 422
    assert refused["details"]["causes"][0]["field"] == "spec.size"
    assert (await call(http, "PATCH", f"{gadgets}/g", {"spec": {"size": 4}}, content_type=merge))[0] == 200


# --- watch ------------------------------------------------------------------------------------


async def read_events(http: aiohttp.ClientSession, path: str, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with http.get(path) as rsp:
        assert rsp.status == 200
        async for line in rsp.content:
            events.append(json.loads(line))
            if len(events) == count:
                break
    return events


async def test_watch_streams_initial_state_then_changes(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", CERTS, cert("a"))
    async with http.get(f"{CERTS}?watch=true") as stream:
        first = json.loads(await asyncio.wait_for(stream.content.readline(), 5))
        await call(http, "POST", CERTS, cert("b"))
        await call(http, "DELETE", f"{CERTS}/a")
        events = [first] + [
            json.loads(await asyncio.wait_for(stream.content.readline(), 5)) for _ in range(2)
        ]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("DELETED", "a"),
    ]
    assert events[0]["object"]["kind"] == "FederationCert"


async def test_watch_resumes_from_a_resource_version(http: aiohttp.ClientSession) -> None:
    _, first = await call(http, "POST", CERTS, cert("a"))
    await call(http, "POST", CERTS, cert("b"))
    await call(
        http,
        "PATCH",
        f"{CERTS}/a",
        {"metadata": {"labels": {"x": "y"}}},
        content_type="application/merge-patch+json",
    )
    since = first["metadata"]["resourceVersion"]
    events = await asyncio.wait_for(read_events(http, f"{CERTS}?watch=true&resourceVersion={since}", 2), 5)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "b"),
        ("MODIFIED", "a"),
    ]


async def test_watch_from_a_compacted_resource_version_is_410_expired() -> None:
    async with Sandbox(history_limit=3) as small, aiohttp.ClientSession(base_url=small.url) as http:
        for name in "abcde":
            await call(http, "POST", CERTS, cert(name))
        (event,) = await asyncio.wait_for(read_events(http, f"{CERTS}?watch=true&resourceVersion=1", 1), 5)
        assert event["type"] == "ERROR"
        assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")


async def test_watch_honours_timeout_seconds(http: aiohttp.ClientSession) -> None:
    async with http.get(f"{CERTS}?watch=true&timeoutSeconds=1") as rsp:
        body = await asyncio.wait_for(rsp.read(), 5)
    assert body == b""


async def test_watch_filters_by_label_selector(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", CERTS, cert("skip"))
    picked = cert("picked")
    picked["metadata"]["labels"] = {"pick": "yes"}
    await call(http, "POST", CERTS, picked)
    (event,) = await asyncio.wait_for(read_events(http, f"{CERTS}?watch=true&labelSelector=pick%3Dyes", 1), 5)
    assert event["object"]["metadata"]["name"] == "picked"


# --- deletion ---------------------------------------------------------------------------------


async def test_finalizers_hold_deletion_until_removed(http: aiohttp.ClientSession) -> None:
    body = cert()
    body["metadata"]["finalizers"] = ["example.com/hold"]
    await call(http, "POST", CERTS, body)
    status, marked = await call(http, "DELETE", f"{CERTS}/eu")
    assert status == 200
    assert marked["metadata"]["deletionTimestamp"]
    status, still = await call(http, "GET", f"{CERTS}/eu")
    assert status == 200
    assert still["metadata"]["finalizers"] == ["example.com/hold"]
    await call(
        http,
        "PATCH",
        f"{CERTS}/eu",
        {"metadata": {"finalizers": None}},
        content_type="application/merge-patch+json",
    )
    assert (await call(http, "GET", f"{CERTS}/eu"))[0] == 404


async def test_owner_deletion_collects_dependents(http: aiohttp.ClientSession) -> None:
    _, owner = await call(http, "POST", CERTS, cert())
    ref = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FederationCert",
        "name": "eu",
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }
    await call(
        http,
        "POST",
        "/api/v1/namespaces/default/secrets",
        {"metadata": {"name": "eu-tls", "ownerReferences": [ref]}},
    )
    _, other = await call(http, "POST", CERTS, cert("other"))
    other_ref = {**ref, "name": "other", "uid": other["metadata"]["uid"], "controller": False}
    await call(
        http,
        "POST",
        "/api/v1/namespaces/default/secrets",
        {"metadata": {"name": "shared", "ownerReferences": [ref, other_ref]}},
    )
    await call(http, "DELETE", f"{CERTS}/eu")
    assert (await call(http, "GET", "/api/v1/namespaces/default/secrets/eu-tls"))[0] == 404
    status, shared = await call(http, "GET", "/api/v1/namespaces/default/secrets/shared")
    assert status == 200
    assert shared["metadata"]["ownerReferences"] == [other_ref]


async def test_deleting_a_namespace_deletes_its_content(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", "/api/v1/namespaces", {"metadata": {"name": "team"}})
    await call(http, "POST", "/api/v1/namespaces/team/configmaps", {"metadata": {"name": "c"}})
    await call(http, "DELETE", "/api/v1/namespaces/team")
    assert (await call(http, "GET", "/api/v1/namespaces/team/configmaps/c"))[0] == 404
    assert (await call(http, "GET", "/api/v1/namespaces/team"))[0] == 404


# --- faults and calls -------------------------------------------------------------------------


async def test_injected_faults_and_recorded_calls(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    sandbox.api.faults.add(verb="create", resource="federationcerts", status=429)
    status, body = await call(http, "POST", CERTS, cert())
    assert (status, body["reason"]) == (429, "TooManyRequests")
    sandbox.api.faults.clear()
    assert (await call(http, "POST", CERTS, cert()))[0] == 201
    sandbox.api.faults.hang_seconds = 0.01
    sandbox.api.faults.add(verb="get", status=TIMEOUT)
    assert (await call(http, "GET", f"{CERTS}/eu"))[0] == 504
    assert Call("create", GROUP, "federationcerts", "", "default") in sandbox.api.calls
    assert Call("get", GROUP, "federationcerts", "", "default") in sandbox.api.calls


async def test_dropped_watch_streams_end_early(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    await call(http, "POST", CERTS, cert())
    sandbox.api.faults.watch_drop_probability = 1.0
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.get(f"{CERTS}?watch=true") as rsp:
            await asyncio.wait_for(rsp.read(), 5)


async def test_secret_string_data_is_folded_into_data(http: aiohttp.ClientSession) -> None:
    body = {"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"token": "t0k"}}
    _, created = await call(http, "POST", "/api/v1/namespaces/default/secrets", body)
    assert created["data"] == {"a": "eA==", "token": "dDBr"}
    assert "stringData" not in created
