"""FederationPeer credentials end to end: a real kopf operator against the sandbox API."""

import base64
import itertools
import json
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from federation_operator.controller.handlers import peers as peer_handlers
from federation_operator.controller.registration.peers import FULL_CHECK_EVERY
from federation_operator.domain import api, tokens
from federation_operator.domain.ingress.config import IngressConfig
from federation_operator.domain.tokens import SecretText
from federation_operator.plugin import cli
from tests.harness.kopf_state import change_spec_behind_kopfs_back
from tests.harness.net import free_port
from tests.harness.site import Site, SiteFactory
from tests.harness.waiting import wait_for, wait_settled

PEERS = api.PEER_PLURAL
CHECK = {"peer_check_interval": 0.3}
PIN = {"thumbprint": "sha256:" + "1" * 64}
FAST_HEARTBEAT = {"interval": "2s", "timeout": "1s", "slowThreshold": "500ms"}


@pytest.fixture
def site(site_factory: SiteFactory) -> Site:
    return site_factory("eu", **CHECK)


def peer_spec(**extra: Any) -> dict[str, Any]:
    return {"endpoint": "https://us.example:8443", "remoteCertificates": [PIN], **extra}


def secret_data(site: Site, name: str) -> dict[str, str] | None:
    secret = site.secret(name)
    if secret is None:
        return None
    return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}


def status(site: Site, name: str = "us") -> dict[str, Any]:
    return dict((site.get(PEERS, name) or {}).get("status") or {})


def ready(site: Site, name: str = "us") -> dict[str, Any]:
    site.wait_condition(PEERS, name, "CredentialsReady", "True")
    return status(site, name)


def hashes(site: Site, name: str = "us") -> dict[str, Any]:
    data = secret_data(site, f"{name}-inbound")
    assert data is not None
    result: dict[str, Any] = json.loads(data[api.INBOUND_HASHES_KEY])
    return result


def own_secrets(site: Site, name: str = "us") -> dict[str, dict[str, str] | None]:
    return {suffix: secret_data(site, name + suffix) for suffix in ("-inbound", "-outbound", "-handoff")}


def put_secret(site: Site, name: str, **values: str) -> None:
    data = {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}
    body = {"metadata": {"name": name}, "data": data}
    if site.secret(name) is None:
        site.core.create_namespaced_secret(site.namespace, body)
    else:
        site.core.replace_namespaced_secret(name, site.namespace, body)


def test_generated_credentials_are_stored_owned_labelled_and_reported(site: Site) -> None:
    peer = site.create(PEERS, "us", peer_spec())
    current = ready(site)
    secrets = own_secrets(site)
    handoff, outbound = secrets["-handoff"], secrets["-outbound"]
    assert handoff is not None
    assert outbound is not None
    our_inbound = SecretText(handoff[api.HANDOFF_REMOTE_OUTBOUND_KEY])
    assert hashes(site) == {"current": tokens.hash_token(our_inbound), "previous": []}
    assert handoff[api.HANDOFF_REMOTE_INBOUND_KEY] == outbound[api.OUTBOUND_TOKEN_KEY]
    assert current["inbound"] == {
        "fingerprint": tokens.fingerprint(tokens.hash_token(our_inbound)),
        "source": "Generated",
        "acceptedHashes": [{"hash": tokens.hash_token(our_inbound)}],
    }
    assert current["outbound"]["fingerprint"] == tokens.fingerprint(
        tokens.hash_token(SecretText(outbound["token"]))
    )
    assert current["handoff"]["secretName"] == "us-handoff"
    for suffix in ("-inbound", "-outbound", "-handoff"):
        meta = site.secret("us" + suffix).metadata
        assert meta.owner_references[0].uid == peer["metadata"]["uid"]
        assert meta.labels[api.LABEL_PEER] == "us"
        assert meta.labels[api.LABEL_MANAGED_BY] == api.MANAGER
        assert meta.labels[api.LABEL_ROLE] == suffix[1:]


def test_restarts_events_and_unrelated_edits_never_regenerate(site: Site) -> None:
    site.create(PEERS, "us", peer_spec())
    ready(site)
    before = own_secrets(site)
    site.stop_operator()
    site.start_operator()
    site.patch(PEERS, "us", {"spec": {"endpoint": "https://us2.example"}})
    site.patch(PEERS, "us", {"spec": {"remoteCertificates": [PIN, {"thumbprint": "sha256:" + "2" * 64}]}})
    site.patch(
        PEERS, "us", {"spec": {"heartbeat": {"interval": "20s", "timeout": "5s", "slowThreshold": "1s"}}}
    )
    site.patch(PEERS, "us", {"metadata": {"labels": {"team": "a"}}})
    generation = site.get(PEERS, "us")["metadata"]["generation"]  # type: ignore[index]
    wait_for(
        lambda: next(
            (c for c in status(site).get("conditions", []) if c.get("observedGeneration") == generation), None
        ),
        message="the edits were reconciled",
    )
    site.stop_operator()
    site.start_operator()
    ready(site)
    assert own_secrets(site) == before


def test_a_deleted_generated_outbound_secret_is_reported_not_regenerated_and_rotate_recovers(
    site: Site,
) -> None:
    # The outbound token exists nowhere else (a deleted `<peer>-inbound` is written back from the
    # hashes status publishes: tests/integration/test_trust_boundaries.py).
    site.create(PEERS, "us", peer_spec())
    first = ready(site)["outbound"]["fingerprint"]
    site.core.delete_namespaced_secret("us-outbound", site.namespace)
    condition = site.wait_condition(PEERS, "us", "CredentialsReady", "False", reason="SecretMissing")
    assert "kubectl federation rotate us --outbound" in condition["message"]
    assert site.secret("us-outbound") is None
    assert cli.main(["rotate", "us", "--outbound", "--kubeconfig", str(site.kubeconfig), "--wait"]) == 0
    after = ready(site)
    assert after["outbound"]["fingerprint"] != first
    assert site.secret("us-outbound") is not None


def test_inbound_rotation_keeps_the_previous_hash_for_the_overlap_then_drops_it(site: Site) -> None:
    site.create(PEERS, "us", peer_spec(credentials={"rotationOverlap": "2s"}))
    old = ready(site)
    old_hash = hashes(site)["current"]
    outbound_before = secret_data(site, "us-outbound")
    assert cli.main(["rotate", "us", "--inbound", "--kubeconfig", str(site.kubeconfig), "--wait"]) == 0
    rotated = wait_for(lambda: hashes(site)["previous"] and hashes(site), message="previous hash kept")
    assert rotated["previous"][0]["hash"] == old_hash
    assert rotated["current"] != old_hash
    assert api.ANNOTATION_ROTATE not in (site.get(PEERS, "us")["metadata"].get("annotations") or {})  # type: ignore[index]
    current = ready(site)
    assert current["inbound"]["fingerprint"] != old["inbound"]["fingerprint"]
    assert "rotatedAt" in current["inbound"]
    assert secret_data(site, "us-outbound") == outbound_before
    handoff = secret_data(site, "us-handoff")
    assert handoff is not None
    assert tokens.hash_token(SecretText(handoff["remote-outbound"])) == rotated["current"]
    wait_for(
        lambda: hashes(site)["previous"] == [], timeout=10, message="previous hash gone after the overlap"
    )
    wait_for(lambda: "previousExpiresAt" not in status(site)["inbound"], message="status says so")


def test_outbound_rotation_keeps_the_previous_token_for_the_fallback(site: Site) -> None:
    site.create(PEERS, "us", peer_spec(credentials={"rotationOverlap": "0s"}))
    ready(site)
    old = secret_data(site, "us-outbound")
    assert cli.main(["rotate", "us", "--outbound", "--kubeconfig", str(site.kubeconfig), "--wait"]) == 0
    new = wait_for(lambda: (data := secret_data(site, "us-outbound")) != old and data, message="rotated")
    assert old is not None
    assert new["token"] != old["token"]
    assert "previous-token" not in new  # an overlap of 0s means immediate


def test_user_secrets_are_mirrored_and_their_changes_apply_without_restart(site: Site) -> None:
    put_secret(site, "creds", inbound="sha256:" + "a" * 64, outbound="B" * 43)
    spec = peer_spec(
        inbound={"secretRef": {"name": "creds", "key": "inbound"}},
        outbound={"secretRef": {"name": "creds", "key": "outbound"}},
    )
    site.create(PEERS, "us", spec)
    current = ready(site)
    assert current["inbound"] == {
        "fingerprint": "a" * 12,
        "source": "SecretRef",
        "acceptedHashes": [{"hash": "sha256:" + "a" * 64}],
    }
    assert current["outbound"]["source"] == "SecretRef"
    assert hashes(site)["current"] == "sha256:" + "a" * 64
    assert site.secret("us-outbound") is None
    assert site.secret("us-handoff") is None
    token = "C" * 43
    put_secret(site, "creds", inbound=token, outbound="B" * 43)
    wait_for(lambda: hashes(site)["current"] == tokens.hash_token(SecretText(token)), message="mirrored")
    put_secret(site, "creds", inbound="not-a-token", outbound="B" * 43)
    condition = site.wait_condition(PEERS, "us", "CredentialsReady", "False", reason="SecretMalformed")
    assert "Secret creds" in condition["message"]
    assert "key inbound" in condition["message"]
    site.core.delete_namespaced_secret("creds", site.namespace)
    condition = site.wait_condition(PEERS, "us", "CredentialsReady", "False", reason="SecretNotFound")
    assert "Secret creds" in condition["message"]


def test_a_broken_peer_leaves_other_peers_ready(site: Site) -> None:
    site.create(PEERS, "broken", peer_spec(outbound={"secretRef": {"name": "absent", "key": "token"}}))
    site.create(PEERS, "us", peer_spec(inbound={"secretHash": "sha256:" + "d" * 64}))
    site.wait_condition(PEERS, "broken", "CredentialsReady", "False", reason="SecretNotFound")
    assert ready(site)["inbound"]["fingerprint"] == "d" * 12


def test_the_operator_never_writes_spec_or_a_users_secret(site: Site) -> None:
    put_secret(site, "creds", outbound="B" * 43)
    spec = peer_spec(outbound={"secretRef": {"name": "creds", "key": "outbound"}})
    created = site.create(PEERS, "us", spec)
    ready(site)
    assert cli.main(["rotate", "us", "--inbound", "--kubeconfig", str(site.kubeconfig), "--wait"]) == 0
    ready(site)
    user_secret = site.secret("creds")
    assert user_secret.metadata.owner_references is None
    assert site.get(PEERS, "us")["spec"] == created["spec"]  # type: ignore[index]
    site.delete(PEERS, "us")
    wait_for(lambda: site.get(PEERS, "us") is None, message="peer deleted")
    assert secret_data(site, "creds") == {"outbound": "B" * 43}


def test_deletion_removes_every_secret_the_operator_created(site: Site) -> None:
    site.create(PEERS, "us", peer_spec())
    ready(site)
    site.delete(PEERS, "us")
    wait_for(lambda: site.get(PEERS, "us") is None, message="peer deleted")
    assert own_secrets(site) == {"-inbound": None, "-outbound": None, "-handoff": None}


def test_an_unread_handoff_is_deleted_after_its_ttl(site: Site) -> None:
    site.create(PEERS, "us", peer_spec(credentials={"handoffTTL": "1s"}))
    assert ready(site)["handoff"]["secretName"] == "us-handoff"
    wait_for(lambda: site.secret("us-handoff") is None, timeout=10, message="handoff deleted")
    wait_for(lambda: "handoff" not in status(site), message="status.handoff cleared")
    # kopf posts Events from a queue of its own: wait for it rather than read once.
    wait_for(
        lambda: "HandoffExpired" in {event.reason for event in site.events()}, message="HandoffExpired event"
    )


def test_the_periodic_check_reads_a_steady_peer_only_every_full_check_period(site: Site) -> None:
    """With checks every 0.3 s, a Ready peer with nothing expiring is read in full once per
    FULL_CHECK_EVERY checks (3 s), not on every check: the timer alone makes no API call.

    A full read can GET the peer more than once within milliseconds (a status write that meets
    the heartbeat's and retries), so reads closer than 0.15 s count as one."""
    site.create(PEERS, "us", peer_spec())
    site.wait_condition(PEERS, "us", "CredentialsReady", "True")
    calls = site.sandbox.api.calls
    mark: int | None = None
    starts: list[float] = []  # when each new burst of reads of the peer by the operator was noticed
    last_seen = 0.0

    def reads() -> int:
        return sum(
            1
            for call in calls
            if call.verb == "get"
            and call.resource == PEERS
            and call.user_agent.startswith("federation-operator/")
        )

    def three_full_reads() -> bool:
        nonlocal mark, last_seen
        count, now = reads(), time.monotonic()
        if mark is None:  # what happened before the first look is not timed
            mark = count
        elif count > mark:
            if now - last_seen > 0.15:
                starts.append(now)
            last_seen, mark = now, count
        return len(starts) >= 3

    wait_for(three_full_reads, timeout=30, interval=0.01, message="three full reads of the peer")
    period = CHECK["peer_check_interval"] * FULL_CHECK_EVERY
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert min(gaps) > period / 2, gaps


def test_a_new_peer_is_judged_once_from_the_watch_and_its_own_writes_wake_nothing(site: Site) -> None:
    """One credentials pass per new peer: its Secrets come from the operator's watch (no GET or
    LIST of Secrets per pass), and the events of the three Secrets the pass wrote do not wake the
    peer again (before: ~4 passes per new peer, each reading the peer, three Secrets and a LIST).

    The peer is read once by that pass; a second read is allowed for a status write that meets
    the heartbeat's and re-reads. Measured once the operator's calls have been quiet for 1 s."""
    calls = site.sandbox.api.calls
    mark = len(calls)

    def counted() -> Counter[tuple[str, str]]:
        return Counter(
            (call.verb, call.resource)
            for call in calls[mark:]
            if call.user_agent.startswith("federation-operator/") and call.resource in (PEERS, "secrets")
        )

    site.create(PEERS, "us", peer_spec())
    ready(site)
    seen = wait_settled(counted, timeout=20, message="the operator's reads settle")
    assert seen[("create", "secrets")] == 3, seen
    assert seen[("list", "secrets")] == 0, seen
    assert seen[("get", PEERS)] <= 2, seen
    # The heartbeat's credential cache reads the outbound Secret once to ping; the pass reads none.
    assert seen[("get", "secrets")] <= 1, seen


def _passes(port: int) -> int:
    """`federation_credentials_passes_total` of the operator serving /metrics on `port`."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0
    found = [line for line in text.splitlines() if line.startswith("federation_credentials_passes_total ")]
    return int(float(found[0].rsplit(" ", 1)[1])) if found else 0


def test_a_restart_judges_converged_peers_without_a_call_per_peer(site_factory: SiteFactory) -> None:
    """After a restart every converged peer is judged again (its credentials pass) without an API
    call of its own: the pass judges the body the watch listed (a GET only when there is
    something to write), its Secrets come from the operator's Secret watch, and kopf stores no
    progress annotation (both resume handlers, credentials and edge, finish in one cycle). Before
    (docs/benchmarks.md, issue 17): a GET of the peer and two kopf PATCHes per peer.

    The peers are suspended (the credentials do not depend on it), so that no ping runs."""
    port = free_port()
    # The edge handlers too, as `federation-operator run` registers them (provider `none`): a peer
    # then has two resume handlers, and kopf's default of one handler per cycle stored progress.
    edge = IngressConfig(host="federation.example", labels=api.managed_labels(role=api.ROLE_INGRESS))
    site = site_factory("eu", metrics_port=port, metrics_host="127.0.0.1", ingress=edge)
    names = [f"us-{number}" for number in range(16)]
    for name in names:
        site.create(PEERS, name, peer_spec(suspend=True, heartbeat=FAST_HEARTBEAT))
    for name in names:
        ready(site, name)
        wait_for(
            lambda name=name: (
                status(site, name).get("reachability") == "Unknown"
                and any(c.get("reason") == "Suspended" for c in status(site, name).get("conditions", []))
            ),
            timeout=30,
            message=f"the heartbeat of {name} reported the suspension",
        )
    site.stop_operator()
    calls = site.sandbox.api.calls
    mark = len(calls)
    site.start_operator()
    wait_for(lambda: _passes(port) >= len(names), timeout=60, message="every peer judged again")

    def counted() -> Counter[tuple[str, str]]:
        return Counter(
            (call.verb, call.resource + (f"/{call.subresource}" if call.subresource else ""))
            for call in calls[mark:]
            if call.user_agent.startswith("federation-operator/")
        )

    # kopf's own writes (its progress annotations) follow the handlers: counted once the operator's
    # calls have been quiet for 1 s.
    seen = wait_settled(counted, timeout=30, message="the operator's calls settle")
    assert seen[("get", PEERS)] == 0, seen
    assert seen[("patch", PEERS)] == 0, seen
    assert seen[("create", "secrets")] == 0, seen
    assert seen[("list", "secrets")] == 1, "one LIST at startup fills the Secret cache"


def test_a_spec_change_kopf_believes_handled_reaches_the_credentials_within_the_check_interval(
    site_factory: SiteFactory,
) -> None:
    """kopf drops a change that returns to the last handled spec while its handlers are in progress
    (A -> B -> A), so the update handler may never run for the spec the peer ends with. The
    periodic check finds such a peer (its CredentialsReady was judged for an older generation:
    `readiness.check_deadline`) and reads it in full on its next sweep. Made here at once: the
    spec changes together with kopf's diff-base, so kopf runs no change handler at all."""
    # 3 s: the safety net (every peer read again FULL_CHECK_EVERY intervals after its last read,
    # 30 s here) comes after the deadline below, so only the generation rule can have found it.
    interval = 3.0
    site = site_factory("eu", peer_check_interval=interval)
    first, second = "sha256:" + "d" * 64, "sha256:" + "e" * 64
    site.create(PEERS, "us", peer_spec(inbound={"secretHash": first}))
    assert ready(site)["inbound"]["fingerprint"] == "d" * 12
    changed = change_spec_behind_kopfs_back(site, PEERS, "us", {"inbound": {"secretHash": second}})
    generation = changed["metadata"]["generation"]
    wait_for(
        lambda: (
            hashes(site)["current"] == second
            and (site.condition(PEERS, "us", "CredentialsReady") or {}).get("observedGeneration")
            == generation
        ),
        timeout=5 * interval,
        message="the new inbound hash stored and judged for the peer's generation",
    )
    assert status(site)["inbound"]["fingerprint"] == "e" * 12


def test_after_a_spec_change_kopf_believes_handled_the_peer_follows_its_new_secrets_edits(
    site_factory: SiteFactory,
) -> None:
    """A peer re-reads a user's Secret it names when that Secret changes (the Secret's event).
    Which Secrets a peer names comes from its spec as every event shows it, not only from the
    change handlers, which kopf skips for a change it believes handled (A -> B -> A)."""
    interval = 3.0  # the safety net re-reads every peer only after 30 s: after the deadline below
    site = site_factory("eu", peer_check_interval=interval)

    def fingerprint(token: str) -> str:
        return tokens.fingerprint(tokens.hash_token(SecretText(token)))

    put_secret(site, "creds-a", outbound="A" * 43)
    put_secret(site, "creds-b", outbound="B" * 43)
    site.create(PEERS, "us", peer_spec(outbound={"secretRef": {"name": "creds-a", "key": "outbound"}}))
    assert ready(site)["outbound"]["fingerprint"] == fingerprint("A" * 43)
    change_spec_behind_kopfs_back(
        site, PEERS, "us", {"outbound": {"secretRef": {"name": "creds-b", "key": "outbound"}}}
    )
    wait_for(
        lambda: status(site)["outbound"]["fingerprint"] == fingerprint("B" * 43),
        timeout=5 * interval,
        message="the peer presents creds-b",
    )
    put_secret(site, "creds-b", outbound="C" * 43)
    wait_for(
        lambda: status(site)["outbound"]["fingerprint"] == fingerprint("C" * 43),
        timeout=5 * interval,
        message="the peer follows the edit of creds-b",
    )


def test_a_start_over_many_peers_runs_at_most_reconcile_concurrency_passes_at_once(
    site_factory: SiteFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kopf hands every listed peer to its handlers at once; the credentials passes it starts wait
    at the operator's gate (`reconcile_concurrency`), so a start over thousands of peers does not
    hold every pass's reads, plans and writes in memory together. Every peer still converges.

    Without the gate the passes overlap: each waits on API calls in the client's threads. The
    periodic check (its own bound) is pushed out of the test's time; the peers are suspended, so
    that no ping runs."""
    in_flight, most = [0], [0]
    reconcile = peer_handlers.reconcile

    async def counted(*args: Any, **kwargs: Any) -> None:
        # A Secret event's pass (`unless`: it skips the events of the operator's own writes) is
        # not kopf's: its event can overtake the write's answer, and it is not gated.
        gated = kwargs.get("unless") is None
        in_flight[0] += gated  # the operator's one event loop: no lock needed
        most[0] = max(most[0], in_flight[0])
        try:
            await reconcile(*args, **kwargs)
        finally:
            in_flight[0] -= gated

    monkeypatch.setattr(peer_handlers, "reconcile", counted)
    site = site_factory("eu", operator=False, peer_check_interval=3600.0, reconcile_concurrency=2)
    names = [f"us-{number}" for number in range(10)]
    for name in names:
        site.create(PEERS, name, peer_spec(suspend=True))
    site.start_operator()
    for name in names:
        # Generous: two passes at a time on a loaded machine.
        site.wait_condition(PEERS, name, "CredentialsReady", "True", timeout=60)
    assert 1 <= most[0] <= 2, most
