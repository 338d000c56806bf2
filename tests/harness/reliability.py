"""Helpers of the reliability tier (tests/reliability): faults, restarts, bad input, leaks.

Counts default to the issue's (100 peers under faults, 50 peers x 100 restarts, 40 bad specs) and
can be scaled down for development with environment variables (`RELIABILITY_FAULT_PEERS`,
`RELIABILITY_STORM_PEERS`, `RELIABILITY_RESTARTS`, `RELIABILITY_BAD_EXAMPLES`,
`RELIABILITY_SEED`). The tests read the sandbox's store directly (`SandboxThread.call`), never
through its API: the injected faults are for the operator, and a test's own reads must not be
the ones that fail.
"""

import base64
import json
import os
from typing import Any

import pytest

from federation_devkit.sandbox.server import SandboxThread
from federation_operator.domain import api

PEERS = api.PEER_PLURAL
CERTS = api.CERT_PLURAL
# Where our peers' heartbeats go: nothing listens on port 9 of loopback (discard, never bound
# here), so every ping fails fast with `Network` and costs no remote.
DEAD_ENDPOINT = "https://127.0.0.1:9"
PIN = {"thumbprint": "sha256:" + "1" * 64}


def count(variable: str, default: int) -> int:
    """A count from the environment (development runs scale down), else the issue's default."""
    return int(os.environ.get(variable, default))


def seed() -> int:
    return count("RELIABILITY_SEED", 20260801)


def peer_spec(cert: str | None = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"endpoint": DEAD_ENDPOINT, "remoteCertificates": [PIN], **extra}
    if cert is not None:
        spec["clientCertificateRef"] = {"name": cert}
    return spec


def body(plural: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.CERT_KIND if plural == CERTS else api.PEER_KIND,
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }


def stored(sandbox: SandboxThread, plural: str) -> list[dict[str, Any]]:
    """Every object of a kind as the sandbox holds it (group implied by the plural)."""
    group = "" if plural in ("secrets", "events") else api.GROUP
    result: list[dict[str, Any]] = sandbox.call(sandbox.api.snapshot, plural, group)
    return result


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item.get("type") == type_:
            return dict(item)
    return None


def is_true(obj: dict[str, Any], type_: str) -> bool:
    return (condition(obj, type_) or {}).get("status") == "True"


def secret_bytes(sandbox: SandboxThread) -> dict[str, dict[str, bytes]]:
    """name -> key -> decoded bytes of every Secret the operator manages (tokens, hashes, keys)."""
    result: dict[str, dict[str, bytes]] = {}
    for secret in stored(sandbox, "secrets"):
        labels = secret["metadata"].get("labels") or {}
        if labels.get(api.LABEL_MANAGED_BY) != api.MANAGER:
            continue
        data = secret.get("data") or {}
        result[secret["metadata"]["name"]] = {key: base64.b64decode(value) for key, value in data.items()}
    return result


def secret_values(secrets: dict[str, dict[str, bytes]]) -> set[str]:
    """Every token and every private-key line among these Secrets (handoff and user copies too)."""
    found: set[str] = set()
    for data in secrets.values():
        for key, value in data.items():
            text = value.decode()
            if key in (
                api.OUTBOUND_TOKEN_KEY,
                api.OUTBOUND_PREVIOUS_TOKEN_KEY,
                api.HANDOFF_REMOTE_OUTBOUND_KEY,
                api.HANDOFF_REMOTE_INBOUND_KEY,
            ):
                found.add(text)
            elif key == "tls.key":
                found |= {line for line in text.splitlines() if line and not line.startswith("-----")}
    return found


def readable_texts(sandbox: SandboxThread, logs: pytest.LogCaptureFixture) -> dict[str, str]:
    """What a reader without `get secrets` sees: logs, Events, status and annotations."""
    return {
        "logs": "\n".join(f"{record.getMessage()} {record.exc_text or ''}" for record in logs.records),
        "events": json.dumps(stored(sandbox, "events")),
        "status+annotations": json.dumps(
            [
                {"status": obj.get("status"), "annotations": obj["metadata"].get("annotations")}
                for plural in (CERTS, PEERS)
                for obj in stored(sandbox, plural)
            ]
        ),
    }


def assert_no_leaks(secrets: set[str], texts: dict[str, str]) -> None:
    assert secrets, "there were tokens and keys to search for"
    leaks = [(where, secret[:6]) for where, text in texts.items() for secret in secrets if secret in text]
    assert not leaks, f"secrets found in: {leaks}"


def secret_names(sandbox: SandboxThread) -> list[str]:
    """Every Secret's name, duplicates kept (the store is keyed by name, so this checks the API)."""
    return sorted(secret["metadata"]["name"] for secret in stored(sandbox, "secrets"))


Secrets = dict[str, dict[str, bytes]]
