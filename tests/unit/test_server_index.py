"""PeerIndex: the certificate selects the peer, the token must match THAT peer's hashes."""

import base64
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from federation_operator.domain import api, tokens
from federation_operator.domain.certs import CertificateInfo, issue_certificate
from federation_operator.domain.tokens import SecretText
from federation_operator.server.index import AuthResult, PeerIndex, parse_bearer

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@cache
def cert(label: str) -> CertificateInfo:
    return issue_certificate(subject=label, validity=timedelta(days=30), now=NOW).info


def peer(
    name: str,
    *,
    namespace: str = "default",
    pins: list[dict[str, str]] | None = None,
    suspend: bool = False,
    status: dict[str, Any] | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if deleting:
        metadata["deletionTimestamp"] = "2026-03-01T11:00:00Z"
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.PEER_KIND,
        "metadata": metadata,
        "spec": {
            "endpoint": "https://remote.example",
            "remoteCertificates": pins if pins is not None else [{"pem": cert(name).pem}],
            "suspend": suspend,
        },
        "status": status or {},
    }


def accepted(current: str | None, *, previous: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The status the operator writes: `status.inbound.acceptedHashes`, current first."""
    entries: list[dict[str, Any]] = [{"hash": current}] if current is not None else []
    return {"inbound": {"acceptedHashes": entries + (previous or [])}}


def token(label: str) -> SecretText:
    """A deterministic, well-formed token per label."""
    raw = (label.encode() * 32)[:32]
    return SecretText(base64.urlsafe_b64encode(raw).rstrip(b"=").decode())


def linked(*names: str, namespace: str = "default") -> PeerIndex:
    index = PeerIndex()
    for name in names:
        index.upsert_peer(peer(name, namespace=namespace, status=accepted(tokens.hash_token(token(name)))))
    return index


def auth(index: PeerIndex, cert_of: str | None, token_of: str | None, *, now: datetime = NOW) -> AuthResult:
    return index.authenticate(
        thumbprint=cert(cert_of).thumbprint if cert_of else None,
        token=token(token_of) if token_of else None,
        now=now,
    )


def test_pinned_certificate_with_its_own_peers_token_is_accepted() -> None:
    result = auth(linked("a", "b"), "a", "a")
    assert result.ok
    assert (result.namespace, result.name, result.factor) == ("default", "a", None)
    assert result.thumbprint == cert("a").thumbprint


def test_certificate_of_a_with_token_of_b_fails_with_secret() -> None:
    result = auth(linked("a", "b"), "a", "b")
    assert not result.ok
    assert result.factor == "Secret"
    assert result.name == "a"


def test_no_certificate_fails_with_certificate() -> None:
    assert auth(linked("a"), None, "a").factor == "Certificate"


def test_unpinned_certificate_fails_with_certificate() -> None:
    result = auth(linked("a"), "stranger", "a")
    assert result.factor == "Certificate"
    assert cert("stranger").thumbprint in result.message


def test_thumbprint_pins_and_openssl_style_thumbprints_match() -> None:
    index = PeerIndex()
    hexes = cert("a").thumbprint.removeprefix("sha256:")
    openssl_form = ":".join(hexes[i : i + 2] for i in range(0, 64, 2)).upper()
    index.upsert_peer(
        peer("a", pins=[{"thumbprint": openssl_form}], status=accepted(tokens.hash_token(token("a"))))
    )
    assert index.authenticate(thumbprint=hexes, token=token("a"), now=NOW).ok


def test_missing_token_fails_with_secret() -> None:
    result = auth(linked("a"), "a", None)
    assert result.factor == "Secret"
    assert "Authorization" in result.message


def test_peer_without_inbound_secret_accepts_no_token() -> None:
    index = PeerIndex()
    index.upsert_peer(peer("a"))
    result = auth(index, "a", "a")
    assert result.factor == "Secret"
    assert "no inbound secret" in result.message


def test_suspended_peer_is_refused_even_with_the_right_token() -> None:
    index = linked("a")
    index.upsert_peer(peer("a", suspend=True))
    assert auth(index, "a", "a").factor == "Suspended"
    assert auth(index, "a", None).factor == "Suspended"


def test_deleted_peer_is_unknown_peer_until_its_tombstone_expires() -> None:
    index = PeerIndex(tombstone_ttl=timedelta(minutes=5))
    index.upsert_peer(peer("a"))
    index.delete_peer("default", "a", now=NOW)
    result = auth(index, "a", "a")
    assert (result.factor, result.name) == ("UnknownPeer", "a")
    assert auth(index, "a", "a", now=NOW + timedelta(minutes=6)).factor == "Certificate"


def test_peer_being_deleted_is_unknown_peer() -> None:
    index = linked("a")
    index.upsert_peer(peer("a", deleting=True))
    assert auth(index, "a", "a").factor == "UnknownPeer"


def test_tombstones_are_bounded_oldest_first() -> None:
    index = PeerIndex(tombstone_limit=1)
    index.upsert_peer(peer("a"))
    index.upsert_peer(peer("b"))
    index.delete_peer("default", "a", now=NOW)
    index.delete_peer("default", "b", now=NOW)
    assert auth(index, "a", "a").factor == "Certificate"
    assert auth(index, "b", "b").factor == "UnknownPeer"


def test_repinning_a_deleted_certificate_clears_its_tombstone() -> None:
    index = linked("a")
    index.delete_peer("default", "a", now=NOW)
    index.upsert_peer(
        peer("a2", pins=[{"pem": cert("a").pem}], status=accepted(tokens.hash_token(token("a"))))
    )
    assert auth(index, "a", "a").name == "a2"


def test_certificate_still_pinned_by_another_peer_is_not_tombstoned() -> None:
    index = PeerIndex()
    index.upsert_peer(peer("a", namespace="one", pins=[{"pem": cert("shared").pem}]))
    index.upsert_peer(peer("a", namespace="two", pins=[{"pem": cert("shared").pem}]))
    index.delete_peer("one", "a", now=NOW)
    assert auth(index, "shared", "x").factor == "Secret"


def test_unpinning_moves_the_certificate_out_of_the_index() -> None:
    index = linked("a")
    moved = [{"pem": cert("a-new").pem}]
    index.upsert_peer(peer("a", pins=moved, status=accepted(tokens.hash_token(token("a")))))
    assert auth(index, "a", "a").factor == "Certificate"
    assert auth(index, "a-new", "a").ok


def test_one_certificate_pinned_in_two_namespaces_the_token_selects_the_peer() -> None:
    index = PeerIndex()
    for namespace in ("one", "two"):
        index.upsert_peer(
            peer(
                "p",
                namespace=namespace,
                pins=[{"pem": cert("shared").pem}],
                status=accepted(tokens.hash_token(token(namespace))),
            )
        )
    assert auth(index, "shared", "one").namespace == "one"
    assert auth(index, "shared", "two").namespace == "two"
    wrong = auth(index, "shared", "three")
    assert wrong.factor == "Secret"
    assert wrong.namespace is None


def test_a_certificate_and_token_matching_two_active_peers_is_refused_as_ambiguous() -> None:
    index = PeerIndex()
    for namespace in ("aaa", "default"):
        index.upsert_peer(
            peer(
                "p",
                namespace=namespace,
                pins=[{"pem": cert("shared").pem}],
                status=accepted(tokens.hash_token(token("same"))),
            )
        )
    result = auth(index, "shared", "same")
    assert (result.ok, result.factor, result.namespace) == (False, "AmbiguousPeer", None)
    index.upsert_peer(
        peer(
            "p",
            namespace="aaa",
            pins=[{"pem": cert("shared").pem}],
            suspend=True,
            status=accepted(tokens.hash_token(token("same"))),
        )
    )
    assert auth(index, "shared", "same").namespace == "default"


def test_token_of_a_suspended_candidate_among_several_is_suspended() -> None:
    index = PeerIndex()
    for namespace in ("one", "two"):
        index.upsert_peer(
            peer(
                "p",
                namespace=namespace,
                pins=[{"pem": cert("shared").pem}],
                suspend=namespace == "one",
                status=accepted(tokens.hash_token(token(namespace))),
            )
        )
    assert auth(index, "shared", "one").factor == "Suspended"
    assert auth(index, "shared", "two").ok


def test_previous_hash_is_accepted_until_it_expires() -> None:
    index = PeerIndex()
    previous = [{"hash": tokens.hash_token(token("old")), "expiresAt": "2026-03-01T12:30:00Z"}]
    index.upsert_peer(peer("a", status=accepted(tokens.hash_token(token("new")), previous=previous)))
    assert auth(index, "a", "old").ok
    assert auth(index, "a", "new").ok
    assert auth(index, "a", "old", now=NOW + timedelta(hours=1)).factor == "Secret"


def test_a_status_without_accepted_hashes_revokes_every_token() -> None:
    index = linked("a")
    index.upsert_peer(peer("a"))
    assert auth(index, "a", "a").factor == "Secret"


def test_unreadable_hashes_accept_nothing() -> None:
    index = PeerIndex()
    for status in (
        {"inbound": {"acceptedHashes": "sha256:" + "0" * 64}},
        accepted("sha256:nothex"),
        {"inbound": {"acceptedHashes": [{"hash": tokens.hash_token(token("a")), "expiresAt": "soon"}]}},
    ):
        index.upsert_peer(peer("a", status=status))
        assert auth(index, "a", "a").factor == "Secret"


def test_no_secret_speaks_for_a_peer_only_its_status_does() -> None:
    """The index has no way to take hashes from a Secret: a forged `<peer>-inbound` look-alike
    reaches nothing (the watch does not even list Secrets)."""
    assert not [name for name in dir(PeerIndex) if "inbound_secret" in name]


def test_secret_message_shows_nothing_derived_from_either_token() -> None:
    result = auth(linked("a"), "a", "b")
    for secret in (token("a"), token("b")):
        assert secret.reveal() not in result.message
        assert tokens.hash_token(secret).removeprefix("sha256:")[:6] not in result.message


def test_invalid_pins_pin_nothing_and_do_not_break_the_peer() -> None:
    index = PeerIndex()
    pins = [{"thumbprint": "nope"}, {"pem": "junk"}, {"pem": cert("a").pem}]
    index.upsert_peer(peer("a", pins=pins, status=accepted(tokens.hash_token(token("a")))))
    assert auth(index, "a", "a").ok


def test_link_view_carries_status_without_anything_else() -> None:
    status = {
        "reachability": "Reachable",
        "lastSuccessTime": "2026-03-01T11:59:30Z",
        "latencyMilliseconds": 42,
        "lastFailure": {"factor": "Timeout", "message": "slow", "time": "2026-03-01T10:00:00Z"},
        "inbound": {"fingerprint": "0123456789ab"},
        "outbound": {"fingerprint": "ba9876543210"},
        "handoff": {"secretName": "a-handoff"},
    }
    index = PeerIndex()
    index.upsert_peer(peer("a", status=status))
    assert index.link_view("default", "a") == {
        "reachability": "Reachable",
        "lastSuccessTime": "2026-03-01T11:59:30Z",
        "latencyMilliseconds": 42,
        "lastFailure": {"factor": "Timeout", "message": "slow", "time": "2026-03-01T10:00:00Z"},
        "inboundFingerprint": "0123456789ab",
        "outboundFingerprint": "ba9876543210",
    }
    assert index.link_view("default", "missing") == {}


def test_trust_anchors_hold_live_and_tombstoned_pems() -> None:
    index = PeerIndex(tombstone_ttl=timedelta(minutes=5))
    index.upsert_peer(peer("a"))
    index.upsert_peer(peer("b", pins=[{"thumbprint": cert("b").thumbprint}]))
    version = index.version
    index.upsert_peer(peer("gone"))
    index.delete_peer("default", "gone", now=NOW)
    assert index.version > version
    anchors = index.trust_anchors(now=NOW)
    assert anchors == sorted([cert("a").pem.strip() + "\n", cert("gone").pem.strip() + "\n"])
    assert index.trust_anchors(now=NOW + timedelta(minutes=6)) == [cert("a").pem.strip() + "\n"]


def test_synced_only_after_mark_synced() -> None:
    index = PeerIndex()
    assert not index.synced
    index.mark_synced()
    assert index.synced


def test_parse_bearer_accepts_only_the_documented_shape() -> None:
    good = token("a").reveal()
    assert parse_bearer(f"Bearer {good}") == SecretText(good)
    assert parse_bearer(f"bearer  {good} ") == SecretText(good)
    for bad in (
        None,
        "",
        good,
        f"Basic {good}",
        "Bearer ",
        f"Bearer {good}x",
        "Bearer ünïcode",
        "B" * 10_000,
    ):
        assert parse_bearer(bad) is None


def _parse_bearer_plainly(header: str | None) -> SecretText | None:
    """The rule in plain steps, as it read before the one-regex fast path."""
    if header is None or len(header) > 256 or header[:7].lower() != "bearer ":
        return None
    value = header[7:].strip()
    return SecretText(value) if tokens.is_token(value) else None


@settings(max_examples=500, deadline=None)
@given(
    prefix=st.sampled_from(["Bearer ", "bearer ", "BEARER ", "BeArEr ", "Bearer", "Bearer\t", "Basic ", ""]),
    before=st.text(alphabet=" \t\n\r\x0b\x0c\x1c\x85\u00a0\u2003x", max_size=3),
    body=st.one_of(
        st.builds(lambda seed: token(seed).reveal(), st.text(max_size=3)),
        st.text(alphabet="AZaz09_-=+/.ü", min_size=40, max_size=46),
    ),
    after=st.text(alphabet=" \t\n\r\u00a0\u2003x", max_size=3),
)
def test_parse_bearer_answers_like_the_plain_rule(prefix: str, before: str, body: str, after: str) -> None:
    header = prefix + before + body + after
    assert parse_bearer(header) == _parse_bearer_plainly(header)


@settings(max_examples=200, deadline=None)
@given(
    cert_of=st.sampled_from(["a", "b", "c", "stranger", None]),
    token_of=st.sampled_from(["a", "b", "c", "stranger", None]),
    suspended=st.sets(st.sampled_from(["a", "b", "c"])),
    deleted=st.sets(st.sampled_from(["a", "b", "c"])),
)
def test_ok_exactly_when_both_factors_belong_to_one_live_peer(
    cert_of: str | None, token_of: str | None, suspended: set[str], deleted: set[str]
) -> None:
    index = linked("a", "b", "c")
    for name in suspended:
        index.upsert_peer(peer(name, suspend=True))
    for name in deleted:
        index.delete_peer("default", name, now=NOW)
    result = auth(index, cert_of, token_of)
    live = cert_of in {"a", "b", "c"} and cert_of not in deleted
    assert result.ok == (live and token_of == cert_of and cert_of not in suspended)
    if cert_of is None or cert_of == "stranger":
        assert result.factor == "Certificate"
    elif cert_of in deleted:
        assert result.factor == "UnknownPeer"
    elif cert_of in suspended:
        assert result.factor == "Suspended"
    elif token_of != cert_of:
        assert result.factor == "Secret"


@settings(max_examples=200, deadline=None)
@given(
    thumbprint=st.one_of(st.none(), st.text(max_size=200)), header=st.one_of(st.none(), st.text(max_size=300))
)
def test_arbitrary_inputs_never_raise_and_never_pass(thumbprint: str | None, header: str | None) -> None:
    result = linked("a").authenticate(thumbprint=thumbprint, token=parse_bearer(header), now=NOW)
    assert not result.ok
    assert result.factor in {"Certificate", "Secret"}


def test_the_decision_follows_a_certificate_from_one_peer_to_two_and_back() -> None:
    """The one-peer fast path (issue 17) is rebuilt on every change: a second holder, its
    deletion, a new hash and a suspension each decide the next call."""
    index = PeerIndex()

    def put(namespace: str, *, current: str, suspend: bool = False) -> None:
        pins = [{"pem": cert("shared").pem}]
        status = accepted(tokens.hash_token(token(current)))
        index.upsert_peer(peer("p", namespace=namespace, pins=pins, suspend=suspend, status=status))

    put("one", current="same")
    assert (auth(index, "shared", "same").ok, auth(index, "shared", "same").namespace) == (True, "one")
    put("two", current="same")
    assert auth(index, "shared", "same").factor == "AmbiguousPeer"
    index.delete_peer("two", "p", now=NOW)
    assert auth(index, "shared", "same").namespace == "one"
    put("one", current="rotated")
    assert auth(index, "shared", "same").factor == "Secret"
    assert auth(index, "shared", "rotated").ok
    put("one", current="rotated", suspend=True)
    assert auth(index, "shared", "rotated").factor == "Suspended"
    index.delete_peer("one", "p", now=NOW)
    assert auth(index, "shared", "rotated").factor == "UnknownPeer"


CALLERS = ["a", "b", "c", "old", "stranger", None]


def _every_decision(index: PeerIndex) -> list[tuple[AuthResult, bool]]:
    return [
        (auth(index, cert_of, token_of, now=now), index.pins(cert(cert_of).thumbprint) if cert_of else False)
        for cert_of in CALLERS
        for token_of in CALLERS
        for now in (NOW, NOW + timedelta(hours=1))
    ]


@given(
    suspended=st.sets(st.sampled_from(["a", "b", "c"])),
    rotated=st.sets(st.sampled_from(["a", "b", "c"])),
    shared=st.booleans(),
)
def test_the_first_sync_lays_the_decisions_out_afresh_and_changes_none(
    suspended: set[str], rotated: set[str], shared: bool
) -> None:
    """`mark_synced` reallocates the one-peer entries (issue 17): every caller's decision and
    `pins` answer stay what they were, and later changes still decide the next call."""
    index = PeerIndex()
    for name in ("a", "b", "c"):
        previous = [{"hash": tokens.hash_token(token("old")), "expiresAt": "2026-03-01T12:30:00Z"}]
        status = accepted(tokens.hash_token(token(name)), previous=previous if name in rotated else None)
        pins = [{"pem": cert(name).pem}] + ([{"pem": cert("a").pem}] if shared and name == "c" else [])
        index.upsert_peer(peer(name, pins=pins, suspend=name in suspended, status=status))
    before = _every_decision(index)
    index.mark_synced()
    assert _every_decision(index) == before
    index.upsert_peer(peer("b", suspend=True, status=accepted(tokens.hash_token(token("b")))))
    assert auth(index, "b", "b").factor == "Suspended"
    index.delete_peer("default", "b", now=NOW)
    assert auth(index, "b", "b").factor == "UnknownPeer"
    assert not index.pins(cert("b").thumbprint)


def test_pins_answers_for_one_peer_and_for_several() -> None:
    index = linked("a")
    shared = [{"pem": cert("a").pem}]
    assert index.pins(cert("a").thumbprint)
    index.upsert_peer(peer("twin", namespace="other", pins=shared))
    assert index.pins(cert("a").thumbprint)
    index.delete_peer("default", "a", now=NOW)
    assert index.pins(cert("a").thumbprint)
    index.delete_peer("other", "twin", now=NOW)
    assert not index.pins(cert("a").thumbprint)


def test_version_moves_when_the_pinned_pems_may_change_and_not_for_status_writes() -> None:
    """The direct-TLS listener reloads every pinned PEM on a new version (seconds at 10,000
    peers): the operator's status writes and a suspension must not cause one, a new, changed or
    deleted pin must."""
    index = PeerIndex()
    index.upsert_peer(peer("a", status=accepted(tokens.hash_token(token("a")))))
    version = index.version
    index.upsert_peer(peer("a", status={**accepted(tokens.hash_token(token("b"))), "reachability": "Slow"}))
    index.upsert_peer(peer("a", suspend=True))
    assert index.version == version
    index.upsert_peer(peer("a", pins=[{"pem": cert("a").pem}, {"pem": cert("a2").pem}]))
    assert index.version > version
    version = index.version
    index.upsert_peer(peer("b"))
    assert index.version > version
    version = index.version
    index.delete_peer("default", "b", now=NOW)
    assert index.version > version
    version = index.version
    # Its thumbprint was a tombstone, whose PEM the handshake still accepted: pinned again by
    # thumbprint only, that PEM leaves the trust store.
    index.upsert_peer(peer("c", pins=[{"thumbprint": cert("b").thumbprint}]))
    assert index.version > version
    assert cert("b").pem.strip() + "\n" not in index.trust_anchors(now=NOW)
