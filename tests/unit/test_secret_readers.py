"""Property: whatever a Secret holds, no reader raises, and a malformed value becomes a clear problem.

Every stored layout has one reader (docs/architecture.md): the generated outbound Secret, a user's
outbound and inbound Secrets, `hashes.json`, the handoff Secret, the certificate Secret. Each is
fed arbitrary contents: values of any bytes, the documented keys with near-miss values, `data`
that is not base64 or not a mapping. The readers used by the operator (the credentials plan, the
certificate assessment), the federation server (its index, fed from peer status: it reads no
Secret) and the plugin (`check`) must return a result or a problem naming the Secret and key,
never raise, and never quote a value.
"""

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation_operator.domain import api, condition_types, issuance, objects, tokens
from federation_operator.domain.credentials import (
    credential_spec,
    handoff_secret,
    inbound_hashes,
    outbound_tokens,
    peer_secrets,
    planning,
    user_secrets,
)
from federation_operator.plugin import check
from federation_operator.server.index import PeerIndex

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PEER = peer_secrets.PeerIdentity(name="us", namespace="fed", uid="uid-us", generation=1)
TOKEN = tokens.generate_token().reveal()
HASH = tokens.hash_token(tokens.SecretText(TOKEN))

near_times = st.sampled_from(
    [
        "2026-12-01T13:00:00Z",
        "tomorrow",
        "",
        "2026-13-45T99:99:99Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-23:59",
    ]
)
near_tokens = st.sampled_from([TOKEN, TOKEN[:-1], TOKEN + "=", " " + TOKEN + "\n", HASH, "é" * 43, ""])
texts = st.one_of(near_tokens, near_times, st.text(max_size=60))
values = st.one_of(texts.map(lambda text: text.encode("utf-8")), st.binary(max_size=80))


def hashes_documents() -> st.SearchStrategy[bytes]:
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
        max_leaves=8,
    )
    entry = st.fixed_dictionaries(
        {},
        optional={
            "hash": st.one_of(st.just(HASH), json_values),
            "expiresAt": st.one_of(near_times, json_values),
        },
    )
    document = st.fixed_dictionaries(
        {},
        optional={
            "current": st.one_of(st.just(HASH), json_values),
            "previous": st.one_of(st.lists(st.one_of(entry, json_values), max_size=3), json_values),
        },
    )
    return st.one_of(
        document.map(lambda d: json.dumps(d).encode()),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=80),
    )


# What a Secret's `data` may hold as the API (or a sandbox, or a hand-made object) returns it.
encoded = st.one_of(
    values.map(lambda value: base64.b64encode(value).decode("ascii")),
    st.text(max_size=20),  # not base64
    st.none(),
    st.integers(),
)


def secrets(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    layout = st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), encoded, max_size=len(keys) + 1)
    data = st.one_of(
        layout,
        hashes_documents().map(lambda raw: {api.INBOUND_HASHES_KEY: base64.b64encode(raw).decode()}),
        st.none(),
        st.text(max_size=5),
        st.lists(st.integers(), max_size=2),
    )
    return st.builds(
        lambda data, string_data: {"metadata": {"name": "x"}, "data": data, "stringData": string_data},
        data,
        st.one_of(st.none(), st.dictionaries(st.sampled_from(keys), texts, max_size=2)),
    )


def no_value_in(message: str | None) -> None:
    assert message is None or TOKEN not in message


@given(
    secret=secrets(
        [api.OUTBOUND_TOKEN_KEY, api.OUTBOUND_PREVIOUS_TOKEN_KEY, api.OUTBOUND_PREVIOUS_EXPIRES_KEY]
    )
)
def test_the_generated_outbound_reader_never_raises(secret: dict[str, Any]) -> None:
    read = outbound_tokens.parse_outbound(objects.secret_data(secret), name="us-outbound")
    if read.current is None:
        assert read.problem is not None
        assert read.problem.startswith("Secret us-outbound ")
    else:
        assert tokens.is_token(read.current.reveal())
    assert (read.previous is None) == (read.previous_expires_at is None)
    no_value_in(read.problem)
    read.candidates(NOW)


@given(secret=secrets(["token", "other"]))
def test_the_user_secret_readers_never_raise(secret: dict[str, Any]) -> None:
    ref = credential_spec.SecretRef(name="mine", key="token")
    data = objects.secret_data(secret)
    outbound = user_secrets.parse_user_token(data, ref, field_path="spec.outbound.secretRef")
    assert (outbound.current is None) == (outbound.problem is not None)
    digest, problem = user_secrets.parse_user_hash(data, ref, field_path="spec.inbound.secretRef")
    assert (digest is None) == (problem is not None)
    assert digest is None or tokens.is_hash(digest)
    no_value_in(outbound.problem)
    no_value_in(problem.message if problem else None)


@given(raw=hashes_documents())
def test_the_hashes_reader_never_raises_and_keeps_only_hashes(raw: bytes) -> None:
    reading = inbound_hashes.read_hashes(raw)
    assert reading.current is None or tokens.is_hash(reading.current)
    assert all(tokens.is_hash(item.hash) for item in reading.previous)
    if reading.current is None:
        assert reading.problem is not None
    if reading.problem is None and reading.current is not None:
        parsed = inbound_hashes.parse_hashes(raw)
        assert parsed.current == reading.current
        parsed.accepted(NOW)
    else:
        with pytest.raises(tokens.MalformedCredential, match=r"\w"):
            inbound_hashes.parse_hashes(raw)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=80)
    | st.sampled_from([HASH, "sha256:" + "0" * 64, "2026-12-01T13:00:00Z", "soon"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["hash", "expiresAt", "other"]), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=150)
@given(accepted=_json_values)
def test_the_federation_servers_index_reads_any_accepted_hashes_in_peer_status(accepted: Any) -> None:
    """The server reads no Secret (issue #13): its stored input is `status.inbound.acceptedHashes`."""
    index = PeerIndex()
    pin = "sha256:" + "1" * 64
    index.upsert_peer(
        {
            "metadata": {"name": "us", "namespace": "fed"},
            "spec": {"remoteCertificates": [{"thumbprint": pin}]},
            "status": {"inbound": {"acceptedHashes": accepted}},
        }
    )
    result = index.authenticate(thumbprint=pin, token=tokens.SecretText(TOKEN), now=NOW)
    assert result.factor in (None, "Secret")


def observed(secret: dict[str, Any] | None, name: str) -> peer_secrets.ObservedSecret:
    if secret is not None:
        secret["metadata"] = {
            "name": name,
            "namespace": "fed",
            "labels": {api.LABEL_PEER: "us"},
            "ownerReferences": [{"uid": "uid-us"}],
            "annotations": {
                handoff_secret.ANNOTATION_EXPIRES_AT: "2026-12-01T13:00:00Z",
                handoff_secret.ANNOTATION_GENERATION: "initial",
            },
        }
    return peer_secrets.observe_peer_secret(secret, name=name, peer_name="us", peer_uid="uid-us")


@settings(max_examples=150)
@given(
    inbound=st.none() | secrets([api.INBOUND_HASHES_KEY]),
    outbound=st.none()
    | secrets([api.OUTBOUND_TOKEN_KEY, api.OUTBOUND_PREVIOUS_TOKEN_KEY, api.OUTBOUND_PREVIOUS_EXPIRES_KEY]),
    handoff=st.none() | secrets([api.HANDOFF_REMOTE_INBOUND_KEY, api.HANDOFF_REMOTE_OUTBOUND_KEY]),
    user=st.none() | secrets(["token"]),
    generated=st.booleans(),
    status_handoff=st.none() | st.fixed_dictionaries({"expiresAt": near_times}),
)
def test_the_credentials_plan_turns_any_secret_into_writes_or_a_problem(
    inbound: dict[str, Any] | None,
    outbound: dict[str, Any] | None,
    handoff: dict[str, Any] | None,
    user: dict[str, Any] | None,
    generated: bool,
    status_handoff: dict[str, Any] | None,
) -> None:
    spec = credential_spec.parse_credential_spec(
        {}
        if generated
        else {"inbound": {"secretRef": {"name": "mine"}}, "outbound": {"secretRef": {"name": "mine"}}}
    )
    status: dict[str, Any] = {"inbound": {"source": "Generated"}, "outbound": {"source": "Generated"}}
    if status_handoff is not None:
        status["handoff"] = status_handoff
    plan = planning.plan(
        peer=PEER,
        spec=spec,
        status=status,
        observed=peer_secrets.ObservedSecrets(
            inbound=observed(inbound, "us-inbound"),
            outbound=observed(outbound, "us-outbound"),
            handoff=observed(handoff, "us-handoff"),
            inbound_ref=None if generated else observed(user, "mine"),
            outbound_ref=None if generated else observed(user, "mine"),
        ),
        rotation=None,
        now=NOW,
        new_token=tokens.generate_token,
    )
    for problem in plan.problems:
        assert problem.reason
        assert "Secret " in problem.message
        no_value_in(problem.message)
    ready = next(c for c in plan.status["conditions"] if c["type"] == condition_types.CREDENTIALS_READY)
    assert (ready["status"] == "True") == (not plan.problems)


@given(
    secret=secrets([api.TLS_CERT_KEY, api.TLS_KEY_KEY]), recorded=st.none() | st.just("sha256:" + "a" * 64)
)
def test_the_certificate_secret_readers_never_raise(secret: dict[str, Any], recorded: str | None) -> None:
    secret["metadata"] = {
        "name": "eu-tls",
        "labels": {api.LABEL_CERT: "eu"},
        "ownerReferences": [{"uid": "uid-eu"}],
    }
    secret["type"] = "kubernetes.io/tls"
    identity = issuance.read_client_identity(secret, secret_name="eu-tls")
    if isinstance(identity, str):
        assert identity.startswith("Secret eu-tls ")
    seen = issuance.observe_cert_secret(secret, cert_name="eu", cert_uid="uid-eu")
    spec = issuance.parse_cert_spec({"subject": "eu"}, name="eu", namespace="fed")
    assessment = issuance.assess(
        spec=spec, status={"thumbprint": recorded} if recorded else {}, observed=seen, reissue_request=None
    )
    assert assessment.message
    cert = {"metadata": {"name": "eu", "namespace": "fed"}, "spec": {}, "status": {"thumbprint": recorded}}
    section = check.check_certificate(cert, secret, now=NOW + timedelta(days=1))
    assert section.results


@given(secret=secrets([api.INBOUND_HASHES_KEY]))
def test_check_reads_any_inbound_secret(secret: dict[str, Any]) -> None:
    result = check.read_inbound_hashes(secret, peer_name="us")
    if isinstance(result, str):
        assert result.startswith("Secret us-inbound ")
        no_value_in(result)
