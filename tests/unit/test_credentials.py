import base64
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from federation_operator.domain import api, condition_types, tokens
from federation_operator.domain.credentials import (
    credential_spec,
    inbound_hashes,
    peer_secrets,
    planning,
    readiness,
    rotation_request,
)
from federation_operator.domain.credentials.peer_secrets import ObservedSecrets, PeerIdentity
from federation_operator.domain.credentials.planning import Plan
from federation_operator.domain.tokens import SecretText

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
PEER = PeerIdentity(name="us", namespace="fed", uid="uid-1", generation=1)
NAMES = peer_secrets.own_secret_names("us")


def token_source() -> Iterator[SecretText]:
    for index in range(100):
        yield SecretText(base64.urlsafe_b64encode(bytes([index]) * 32).rstrip(b"=").decode())


def run(
    *,
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    secrets: dict[str, dict[str, Any]] | None = None,
    rotation: str | None = None,
    now: datetime = NOW,
    fresh: Iterator[SecretText] | None = None,
) -> Plan:
    secrets = secrets or {}
    parsed = credential_spec.parse_credential_spec(spec or {})
    fresh = fresh or token_source()

    def observe(name: str | None) -> peer_secrets.ObservedSecret | None:
        if name is None:
            return None
        return peer_secrets.observe_peer_secret(
            secrets.get(name), name=name, peer_name="us", peer_uid="uid-1"
        )

    observed = ObservedSecrets(
        inbound=observe(NAMES[0]),  # type: ignore[arg-type]
        outbound=observe(NAMES[1]),  # type: ignore[arg-type]
        handoff=observe(NAMES[2]),  # type: ignore[arg-type]
        inbound_ref=observe(parsed.inbound_ref.name if parsed.inbound_ref else None),
        outbound_ref=observe(parsed.outbound_ref.name if parsed.outbound_ref else None),
    )
    return planning.plan(
        peer=PEER,
        spec=parsed,
        status=status or {},
        observed=observed,
        rotation=rotation_request.parse_rotation(rotation),
        now=now,
        new_token=lambda: next(fresh),
    )


def apply(plan: Plan, secrets: dict[str, dict[str, Any]], status: dict[str, Any]) -> None:
    """What the handler does with a plan, on plain dicts: the next pass sees the result."""
    for number, write in enumerate(plan.writes):
        body = json.loads(json.dumps(write.body))
        body["metadata"].update(uid=f"secret-{write.name}", resourceVersion=str(number + 1))
        secrets[write.name] = body
    for delete in plan.deletes:
        secrets.pop(delete.name)
    for key, value in plan.status.items():
        if value is None:
            status.pop(key, None)
        else:
            status[key] = value


def data(secret: dict[str, Any]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def condition(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "CredentialsReady")


def user_secret(name: str, **values: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "fed", "uid": "user"},
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in values.items()},
    }


def generated() -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    secrets: dict[str, dict[str, Any]] = {}
    status: dict[str, Any] = {}
    apply(run(), secrets, status)
    return secrets, status


def test_generated_credentials_store_inbound_as_hash_outbound_as_token_and_both_in_the_handoff() -> None:
    secrets, status = generated()
    handoff = data(secrets["us-handoff"])
    outbound = data(secrets["us-outbound"])
    hashes = json.loads(data(secrets["us-inbound"])[api.INBOUND_HASHES_KEY])
    our_inbound = SecretText(handoff[api.HANDOFF_REMOTE_OUTBOUND_KEY])
    assert handoff[api.HANDOFF_REMOTE_INBOUND_KEY] == outbound[api.OUTBOUND_TOKEN_KEY]
    assert hashes == {"current": tokens.hash_token(our_inbound), "previous": []}
    assert our_inbound.reveal() not in json.dumps(secrets["us-inbound"])
    assert status["inbound"] == {
        "fingerprint": tokens.fingerprint(hashes["current"]),
        "source": "Generated",
        # Published for the federation server, which reads no Secret.
        "acceptedHashes": [{"hash": hashes["current"]}],
    }
    assert status["outbound"]["fingerprint"] == tokens.fingerprint(
        tokens.hash_token(SecretText(outbound["token"]))
    )
    assert status["handoff"] == {"secretName": "us-handoff", "expiresAt": "2026-11-28T13:00:00Z"}
    assert condition(status)["status"] == "True"
    for secret in secrets.values():
        assert secret["metadata"]["labels"][api.LABEL_PEER] == "us"
        assert secret["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_a_second_pass_changes_nothing() -> None:
    secrets, status = generated()
    plan = run(secrets=secrets, status=status)
    assert plan.writes == ()
    assert plan.deletes == ()
    assert readiness.status_patch(status, plan.status) == {}


def test_deleted_generated_secrets_are_not_regenerated_and_inbound_hashes_come_back_from_status() -> None:
    secrets, status = generated()
    inbound_before = secrets["us-inbound"]["data"]
    del secrets["us-inbound"], secrets["us-outbound"], secrets["us-handoff"]
    plan = run(secrets=secrets, status=status)
    # The outbound token exists nowhere else: reported. The inbound hashes are in status.
    assert [write.name for write in plan.writes] == ["us-inbound"]
    assert plan.writes[0].body["data"] == inbound_before
    assert [problem.reason for problem in plan.problems] == ["SecretMissing"]
    assert "kubectl federation rotate us --outbound -n fed" in plan.problems[0].message
    assert plan.status["inbound"]["source"] == "Generated"
    assert condition(plan.status)["status"] == "False"


def test_a_deleted_generated_inbound_secret_is_written_back_from_status_and_reported() -> None:
    secrets, status = generated()
    before = dict(secrets["us-inbound"]["data"])
    del secrets["us-inbound"]
    plan = run(secrets=secrets, status=status)
    assert [(write.name, write.replace, write.body["data"]) for write in plan.writes] == [
        ("us-inbound", False, before)
    ]
    assert [event.reason for event in plan.events] == ["InboundSecretRestored"]
    assert plan.status["inbound"]["acceptedHashes"] == status["inbound"]["acceptedHashes"]
    assert plan.status["inbound"]["restored"] == {
        "secretName": "us-inbound",
        "reason": "Deleted",
        "time": "2026-11-28T12:00:00Z",
    }
    ready = condition(plan.status)
    assert (ready["status"], ready["reason"]) == ("True", "InboundSecretRestored")
    assert "Secret us-inbound was written back" in ready["message"]
    apply(plan, secrets, status)
    again = run(secrets=secrets, status=status, now=NOW + timedelta(minutes=1))
    assert again.writes == ()
    assert again.events == ()
    assert readiness.status_patch(status, again.status) == {}, "the report stays, unchanged"


def test_our_inbound_secret_rewritten_with_other_hashes_is_overwritten_from_status() -> None:
    secrets, status = generated()
    before = dict(secrets["us-inbound"]["data"])
    forged = {"current": tokens.hash_token(SecretText("attacker")), "previous": []}
    # Owner uid, labels and annotations as they were: only the hashes changed.
    secrets["us-inbound"]["data"] = {
        api.INBOUND_HASHES_KEY: base64.b64encode(json.dumps(forged).encode()).decode()
    }
    plan = run(secrets=secrets, status=status)
    assert [(write.name, write.replace, write.body["data"]) for write in plan.writes] == [
        ("us-inbound", True, before)
    ]
    assert plan.status["inbound"]["acceptedHashes"] == status["inbound"]["acceptedHashes"]
    assert plan.status["inbound"]["restored"]["reason"] == "Altered"
    assert "held other hashes than status.inbound.acceptedHashes" in plan.events[0].message
    assert condition(plan.status)["reason"] == "InboundSecretRestored"


def test_without_published_hashes_a_managed_inbound_secret_is_still_what_counts() -> None:
    """A lost status (restored from a backup without status) must not lose the link: the Secret
    is then the only copy of the hashes and is adopted as before."""
    secrets, status = generated()
    lost = {key: value for key, value in status.items() if key != "inbound"}
    plan = run(secrets=secrets, status=lost)
    assert plan.writes == ()
    assert plan.status["inbound"]["acceptedHashes"] == status["inbound"]["acceptedHashes"]
    assert "restored" not in plan.status["inbound"]


def test_an_inbound_rotation_clears_the_restore_report() -> None:
    secrets, status = generated()
    del secrets["us-inbound"]
    apply(run(secrets=secrets, status=status), secrets, status)
    assert "restored" in status["inbound"]
    rotated = run(secrets=secrets, status=status, rotation="inbound:n1", fresh=token_source())
    assert "restored" not in rotated.status["inbound"]
    assert condition(rotated.status)["reason"] == "CredentialsReady"


def test_interrupted_generation_resumes_with_the_tokens_already_in_the_handoff() -> None:
    first = run()
    secrets: dict[str, dict[str, Any]] = {}
    handoff_write = first.writes[0]
    assert handoff_write.name == "us-handoff"
    secrets["us-handoff"] = json.loads(json.dumps(handoff_write.body))
    secrets["us-handoff"]["metadata"].update(uid="h", resourceVersion="1")
    fresh = token_source()
    for _ in range(50):
        next(fresh)  # a resumed pass must not use these
    resumed = run(secrets=secrets, fresh=fresh)
    by_name = {write.name: write.body for write in resumed.writes}
    assert data(by_name["us-outbound"])["token"] == data(secrets["us-handoff"])["remote-inbound"]
    assert resumed.status["inbound"]["fingerprint"] == first.status["inbound"]["fingerprint"]


def test_inbound_rotation_keeps_the_previous_hash_for_the_overlap_then_drops_it() -> None:
    secrets, status = generated()
    old_hash = json.loads(data(secrets["us-inbound"])["hashes.json"])["current"]
    old_outbound = data(secrets["us-outbound"])["token"]
    fresh = token_source()
    for _ in range(10):
        next(fresh)
    rotated = run(secrets=secrets, status=status, rotation="inbound:n1", fresh=fresh)
    apply(rotated, secrets, status)
    hashes = json.loads(data(secrets["us-inbound"])["hashes.json"])
    assert hashes["current"] != old_hash
    assert hashes["previous"] == [{"hash": old_hash, "expiresAt": "2026-11-28T13:00:00Z"}]
    assert status["inbound"]["previousExpiresAt"] == "2026-11-28T13:00:00Z"
    assert status["inbound"]["rotatedAt"] == "2026-11-28T12:00:00Z"
    # The new handoff carries the new inbound token and the unchanged outbound token.
    handoff = data(secrets["us-handoff"])
    assert tokens.hash_token(SecretText(handoff["remote-outbound"])) == hashes["current"]
    assert handoff["remote-inbound"] == old_outbound == data(secrets["us-outbound"])["token"]
    later = run(secrets=secrets, status=status, now=NOW + timedelta(hours=1, seconds=1))
    apply(later, secrets, status)
    assert json.loads(data(secrets["us-inbound"])["hashes.json"])["previous"] == []
    assert "previousExpiresAt" not in status["inbound"]


def test_zero_overlap_rotation_drops_the_previous_hash_at_once() -> None:
    secrets, status = generated()
    spec = {"credentials": {"rotationOverlap": "0s"}}
    fresh = token_source()
    for _ in range(10):
        next(fresh)
    apply(run(spec=spec, secrets=secrets, status=status, rotation="inbound:n1", fresh=fresh), secrets, status)
    assert json.loads(data(secrets["us-inbound"])["hashes.json"])["previous"] == []


def test_outbound_rotation_keeps_the_previous_token_until_expiry() -> None:
    secrets, status = generated()
    old = data(secrets["us-outbound"])["token"]
    fresh = token_source()
    for _ in range(10):
        next(fresh)
    apply(run(secrets=secrets, status=status, rotation="outbound:n2", fresh=fresh), secrets, status)
    outbound = data(secrets["us-outbound"])
    assert outbound["previous-token"] == old
    assert outbound["previous-expires-at"] == "2026-11-28T13:00:00Z"
    assert outbound["token"] != old
    assert status["outbound"]["previousExpiresAt"] == "2026-11-28T13:00:00Z"
    apply(run(secrets=secrets, status=status, now=NOW + timedelta(hours=2)), secrets, status)
    assert set(data(secrets["us-outbound"])) == {"token"}


def test_a_rotation_pass_repeated_after_a_crash_does_not_rotate_twice() -> None:
    secrets, status = generated()
    fresh = token_source()
    for _ in range(10):
        next(fresh)
    apply(run(secrets=secrets, status=status, rotation="outbound:n2", fresh=fresh), secrets, status)
    after_first = data(secrets["us-outbound"])
    again = run(secrets=secrets, status=status, rotation="outbound:n2")
    apply(again, secrets, status)
    assert data(secrets["us-outbound"]) == after_first


def test_expired_handoff_is_deleted_and_a_vanished_one_is_reported_consumed() -> None:
    secrets, status = generated()
    expired = run(secrets=secrets, status=status, now=NOW + timedelta(hours=1))
    assert [delete.name for delete in expired.deletes] == ["us-handoff"]
    assert expired.status["handoff"] is None
    assert [event.reason for event in expired.events] == ["HandoffExpired"]
    del secrets["us-handoff"]
    consumed = run(secrets=secrets, status=status)
    assert consumed.status["handoff"] is None
    assert [event.reason for event in consumed.events] == ["HandoffConsumed"]
    assert readiness.status_patch(status, consumed.status)["handoff"] is None


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("sha256:" + "a" * 64, "sha256:" + "a" * 64),
        ("A" * 43, tokens.hash_token(SecretText("A" * 43))),
    ],
)
def test_inbound_secret_ref_holding_a_token_or_hash_is_mirrored_as_a_hash(stored: str, expected: str) -> None:
    spec = {
        "inbound": {"secretRef": {"name": "mine", "key": "in"}},
        "outbound": {"secretRef": {"name": "mine"}},
    }
    secrets = {"mine": user_secret("mine", **{"in": stored, "token": "B" * 43})}
    plan = run(spec=spec, secrets=secrets)
    written = {write.name: write.body for write in plan.writes}
    assert set(written) == {"us-inbound"}
    assert json.loads(data(written["us-inbound"])["hashes.json"])["current"] == expected
    assert plan.status["inbound"]["source"] == "SecretRef"
    assert plan.status["outbound"]["source"] == "SecretRef"
    assert "A" * 43 not in json.dumps(plan.status)


@pytest.mark.parametrize(
    ("secrets", "reason", "words"),
    [
        ({}, "SecretNotFound", ["Secret mine", "not found"]),
        ({"mine": user_secret("mine", other="x")}, "SecretKeyMissing", ["Secret mine", "no key in"]),
        (
            {"mine": user_secret("mine", **{"in": "not-a-token"})},
            "SecretMalformed",
            ["Secret mine", "key in"],
        ),
    ],
)
def test_a_broken_user_secret_names_the_secret_and_key(
    secrets: dict[str, dict[str, Any]], reason: str, words: list[str]
) -> None:
    spec = {
        "inbound": {"secretRef": {"name": "mine", "key": "in"}},
        "outbound": {"secretRef": {"name": "out"}},
    }
    secrets = dict(secrets) | {"out": user_secret("out", token="B" * 43)}
    plan = run(spec=spec, secrets=secrets)
    assert plan.problems[0].reason == reason
    assert all(word in plan.problems[0].message for word in words)
    assert "not-a-token" not in plan.problems[0].message
    assert condition(plan.status)["reason"] == reason
    assert plan.writes == ()


def test_a_changed_secret_hash_keeps_the_old_one_for_the_overlap() -> None:
    secrets: dict[str, dict[str, Any]] = {}
    status: dict[str, Any] = {}
    apply(run(spec={"inbound": {"secretHash": "sha256:" + "a" * 64}}), secrets, status)
    apply(
        run(spec={"inbound": {"secretHash": "sha256:" + "b" * 64}}, secrets=secrets, status=status),
        secrets,
        status,
    )
    hashes = json.loads(data(secrets["us-inbound"])["hashes.json"])
    assert hashes["current"] == "sha256:" + "b" * 64
    assert [item["hash"] for item in hashes["previous"]] == ["sha256:" + "a" * 64]
    assert status["inbound"] == {
        "fingerprint": "b" * 12,
        "source": "SecretHash",
        "previousExpiresAt": "2026-11-28T13:00:00Z",
        "acceptedHashes": [
            {"hash": "sha256:" + "b" * 64},
            {"hash": "sha256:" + "a" * 64, "expiresAt": "2026-11-28T13:00:00Z"},
        ],
    }


def test_a_foreign_secret_with_our_name_is_never_written() -> None:
    secrets = {"us-outbound": user_secret("us-outbound", token="C" * 43)}
    plan = run(secrets=secrets)
    assert "us-outbound" not in [write.name for write in plan.writes]
    assert [problem.reason for problem in plan.problems] == ["SecretConflict"]
    assert "Secret us-outbound exists and is not managed" in plan.problems[0].message


def test_rotation_of_a_user_source_is_refused_with_a_warning() -> None:
    spec = {"inbound": {"secretHash": "sha256:" + "a" * 64}, "outbound": {"secretRef": {"name": "out"}}}
    plan = run(spec=spec, secrets={"out": user_secret("out", token="B" * 43)}, rotation="inbound:x")
    assert [event.reason for event in plan.events] == ["RotationIgnored"]
    assert "us-handoff" not in [write.name for write in plan.writes]


def test_rotation_annotation_round_trip_and_rejects_garbage() -> None:
    value = rotation_request.rotation_value(inbound=True, outbound=False, nonce="abc")
    assert rotation_request.parse_rotation(value) == rotation_request.RotationRequest(True, False, "abc")
    with pytest.raises(rotation_request.InvalidRotation):
        rotation_request.parse_rotation("everything:abc")


def test_hashes_document_round_trips_and_rejects_tokens() -> None:
    hashes = inbound_hashes.InboundHashes(
        current="sha256:" + "a" * 64,
        previous=(inbound_hashes.PreviousHash("sha256:" + "b" * 64, NOW),),
    )
    assert inbound_hashes.parse_hashes(inbound_hashes.render_hashes(hashes)) == hashes
    with pytest.raises(tokens.MalformedCredential):
        inbound_hashes.parse_hashes(json.dumps({"current": "A" * 43}).encode())


def test_secrets_in_a_plan_do_not_print() -> None:
    plan = run()
    text = repr(plan)
    for write in plan.writes:
        for value in write.body["data"].values():
            assert value not in text


class TestCheckDue:
    """The periodic credentials check reads a steady peer only when time made something due."""

    NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    EVERY = timedelta(minutes=5)

    def ready(self, **extra: object) -> dict[str, object]:
        condition = {"type": condition_types.CREDENTIALS_READY, "status": "True", "observedGeneration": 3}
        return {"conditions": [condition], **extra}

    def due(self, status: Mapping[str, object], *, last_full: datetime | None = None) -> bool:
        return readiness.check_due(
            status,
            generation=3,
            now=self.NOW,
            last_full=self.NOW - timedelta(minutes=1) if last_full is None else last_full,
            full_every=self.EVERY,
        )

    def test_a_steady_ready_peer_is_not_read(self) -> None:
        later = "2026-05-01T12:30:00Z"
        status = self.ready(handoff={"expiresAt": later}, inbound={"previousExpiresAt": later})
        assert not self.due(status)

    def test_a_passed_handoff_or_overlap_deadline_is_due(self) -> None:
        passed = "2026-05-01T11:59:59Z"
        assert self.due(self.ready(handoff={"expiresAt": passed}))
        assert self.due(self.ready(inbound={"previousExpiresAt": passed}))
        assert self.due(self.ready(outbound={"previousExpiresAt": passed}))
        assert self.due(self.ready(outbound={"previousExpiresAt": "not a time"}))

    def test_not_ready_or_judged_for_another_generation_is_due(self) -> None:
        assert self.due({})
        assert self.due(
            {
                "conditions": [
                    {"type": condition_types.CREDENTIALS_READY, "status": "False", "observedGeneration": 3}
                ]
            }
        )
        assert self.due(
            {
                "conditions": [
                    {"type": condition_types.CREDENTIALS_READY, "status": "True", "observedGeneration": 2}
                ]
            }
        )

    def test_the_deadline_the_sweep_keeps_is_the_earliest_one_or_now(self) -> None:
        """The sweep keeps one value per peer; `due_by` on it answers as `check_due` on the status."""
        early, late = "2026-05-01T12:10:00Z", "2026-05-01T12:30:00Z"
        status = self.ready(handoff={"expiresAt": late}, outbound={"previousExpiresAt": early})
        assert readiness.check_deadline(status, generation=3) == datetime(2026, 5, 1, 12, 10, tzinfo=UTC)
        assert readiness.check_deadline(self.ready(), generation=3) is None
        assert readiness.check_deadline({}, generation=3) == readiness.DUE_NOW
        assert readiness.check_deadline(self.ready(), generation=4) == readiness.DUE_NOW
        bad = self.ready(inbound={"previousExpiresAt": "soon"})
        assert readiness.check_deadline(bad, generation=3) == readiness.DUE_NOW
        for case in (
            status,
            self.ready(),
            {},
            bad,
            self.ready(handoff={"expiresAt": "2026-05-01T11:00:00Z"}),
        ):
            deadline = readiness.check_deadline(case, generation=3)
            last = self.NOW - timedelta(minutes=1)
            assert readiness.due_by(
                deadline, now=self.NOW, last_full=last, full_every=self.EVERY
            ) == readiness.check_due(case, generation=3, now=self.NOW, last_full=last, full_every=self.EVERY)

    def test_the_safety_net_reads_every_period_and_after_a_restart(self) -> None:
        assert self.due(self.ready(), last_full=self.NOW - self.EVERY)
        assert readiness.check_due(
            self.ready(), generation=3, now=self.NOW, last_full=None, full_every=self.EVERY
        )


def test_a_rewritten_inbound_secret_of_a_secret_hash_peer_never_becomes_an_accepted_previous_hash() -> None:
    spec = {"inbound": {"secretHash": tokens.hash_token(SecretText("ours"))}}
    secrets: dict[str, dict[str, Any]] = {}
    status: dict[str, Any] = {}
    apply(run(spec=spec, secrets=secrets, status=status), secrets, status)
    attacker = tokens.hash_token(SecretText("attacker"))
    forged = json.dumps({"current": attacker, "previous": []}).encode()
    secrets["us-inbound"]["data"] = {api.INBOUND_HASHES_KEY: base64.b64encode(forged).decode()}
    # The user then changes the hash: the roll starts from what status published, not the forgery.
    changed = {"inbound": {"secretHash": tokens.hash_token(SecretText("next"))}}
    plan = run(spec=changed, secrets=secrets, status=status)
    accepted = [entry["hash"] for entry in plan.status["inbound"]["acceptedHashes"]]
    assert accepted == [changed["inbound"]["secretHash"], spec["inbound"]["secretHash"]]
    assert plan.status["inbound"]["restored"]["reason"] == "Altered"


def test_a_write_of_ours_interrupted_before_status_is_finished_without_a_restore_report() -> None:
    secrets, status = generated()
    rotation = run(secrets=secrets, status=status, rotation="inbound:n1", fresh=token_source())
    for number, write in enumerate(rotation.writes):  # the Secrets, then a crash before status
        body = json.loads(json.dumps(write.body))
        body["metadata"].update(uid=f"secret-{write.name}", resourceVersion=str(number + 10))
        secrets[write.name] = body
    resumed = run(secrets=secrets, status=status, rotation="inbound:n1", fresh=token_source())
    assert "InboundSecretRestored" not in [event.reason for event in resumed.events]
    assert "restored" not in resumed.status["inbound"]
    assert resumed.status["inbound"]["acceptedHashes"] == rotation.status["inbound"]["acceptedHashes"]


class TestPickDue:
    """What one sweep of the periodic credentials check reads."""

    NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    INTERVAL = timedelta(seconds=30)
    EVERY = timedelta(minutes=5)

    def pick(
        self, peers: Mapping[tuple[str, str], tuple[datetime, datetime | None]]
    ) -> list[tuple[tuple[str, str], bool]]:
        return readiness.pick_due(peers, now=self.NOW, interval=self.INTERVAL, full_every=self.EVERY)

    def test_deadlines_passed_are_read_from_the_cache_recent_reads_wait(self) -> None:
        minute = self.NOW - timedelta(minutes=1)
        peers = {
            ("ns", "expired"): (minute, self.NOW - timedelta(seconds=1)),
            ("ns", "not-ready"): (minute, readiness.DUE_NOW),
            ("ns", "later"): (minute, self.NOW + timedelta(hours=1)),
            ("ns", "steady"): (minute, None),
            ("ns", "just-read"): (self.NOW - timedelta(seconds=5), readiness.DUE_NOW),
        }
        assert sorted(self.pick(peers)) == [(("ns", "expired"), False), (("ns", "not-ready"), False)]

    def test_the_safety_net_reads_from_the_api_the_oldest_tenth_per_sweep(self) -> None:
        """100 peers read together at startup: 10 per sweep, oldest first, each from the API;
        a passed deadline is read at once whatever the share."""
        long_ago = self.NOW - timedelta(minutes=6)
        peers = {("ns", f"p{n:03d}"): (long_ago + timedelta(milliseconds=n), None) for n in range(100)}
        peers[("ns", "expired")] = (long_ago, readiness.DUE_NOW)
        picked = self.pick(peers)
        assert (("ns", "expired"), True) in picked
        safety = [key for key, fresh in picked if key != ("ns", "expired")]
        assert safety == [("ns", f"p{n:03d}") for n in range(11)]  # ceil(101 / 10) = 11
        assert all(fresh for _, fresh in picked)
