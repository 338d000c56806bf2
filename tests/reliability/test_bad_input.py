"""Invalid FederationPeer and FederationCert specs, generated: rejected at the API, or reported.

Each generated spec is a valid one with one thing broken (a wrong type, a bad duration, too many
pins, pem and thumbprint together, a non-https endpoint, a malformed hash, a huge string). The
sandbox validates like the API server (schema, CEL); what it accepts, the operator must report as
a condition with a message. One sandbox and operator serve every example, with a good peer made
first: the operator's thread never dies, no handler fails with an unexpected exception, and the
good peer stays CredentialsReady with byte-identical Secrets.
"""

import itertools
import logging
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException
from tests.harness.reliability import CERTS, PEERS, count, peer_spec, secret_bytes
from tests.harness.site import Site
from tests.harness.waiting import wait_for

HEX64 = "0123456789abcdef" * 4
GOOD_PIN = {"thumbprint": "sha256:" + HEX64}
HUGE = "x" * 70_000
_names = itertools.count()

# No dict among them: unknown fields are pruned (as by the API server), which would make it valid.
wrong_types = st.one_of(st.integers(), st.booleans(), st.lists(st.integers(), max_size=2), st.just("text"))
bad_durations = st.sampled_from(["30", "1d", "-1s", "0s", "1.5.5h", "h", "", "9999999999h", "P1D"])
bad_hashes = st.sampled_from(
    ["sha256:" + HEX64.upper(), "sha256:" + HEX64[:-1], HEX64, "md5:" + HEX64[:32], "sha256:" + "g" * 64]
)


def mutated(base: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {**base}
    node = spec
    for key in path[:-1]:
        node[key] = dict(node.get(key) or {})
        node = node[key]
    node[path[-1]] = value
    return spec


def peer_cases() -> st.SearchStrategy[dict[str, Any]]:
    base = peer_spec()
    pins = st.lists(st.just(GOOD_PIN), min_size=9, max_size=12)
    return st.one_of(
        wrong_types.map(lambda v: mutated(base, ("endpoint",), v)),
        st.sampled_from(["http://us.example", "ftp://us.example", "us.example:8443", "HTTPS://x"]).map(
            lambda v: mutated(base, ("endpoint",), v)
        ),
        st.just(mutated(base, ("endpoint",), "https://" + HUGE)),
        pins.map(lambda v: mutated(base, ("remoteCertificates",), v)),
        st.just(mutated(base, ("remoteCertificates",), [])),
        wrong_types.map(lambda v: mutated(base, ("remoteCertificates",), v)),
        st.just(mutated(base, ("remoteCertificates",), [{"pem": "x", "thumbprint": GOOD_PIN["thumbprint"]}])),
        bad_hashes.map(lambda v: mutated(base, ("remoteCertificates",), [{"thumbprint": v}])),
        st.sampled_from(
            [
                "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "-----BEGIN CERTIFICATE-----" + HUGE,
            ]
        ).map(lambda v: mutated(base, ("remoteCertificates",), [{"pem": v}])),
        bad_hashes.map(lambda v: mutated(base, ("inbound",), {"secretHash": v})),
        st.just(
            mutated(
                base,
                ("inbound",),
                {"secretHash": GOOD_PIN["thumbprint"], "secretRef": {"name": "s", "key": "k"}},
            )
        ),
        st.just(mutated(base, ("inbound",), {"secretRef": {"name": HUGE[:300], "key": "k"}})),
        bad_durations.map(lambda v: mutated(base, ("heartbeat",), {"interval": v})),
        st.just(mutated(base, ("heartbeat",), {"interval": "10s", "timeout": "20s"})),
        wrong_types.map(lambda v: mutated(base, ("heartbeat",), v)),
        wrong_types.filter(lambda v: not isinstance(v, bool)).map(lambda v: mutated(base, ("suspend",), v)),
        st.just(mutated(base, ("outbound",), {"secretRef": {"name": "s"}, "header": "Bad Header!"})),
    )


def cert_cases() -> st.SearchStrategy[dict[str, Any]]:
    base: dict[str, Any] = {"subject": "eu"}
    return st.one_of(
        bad_durations.map(lambda v: mutated(base, ("duration",), v)),
        st.sampled_from(["30m", "87601h"]).map(lambda v: mutated(base, ("duration",), v)),
        st.just({**base, "duration": "24h", "renewBefore": "48h"}),
        bad_durations.map(lambda v: mutated(base, ("renewBefore",), v)),
        st.sampled_from(["DSA", "rsa", "", "P-384"]).map(
            lambda v: mutated(base, ("privateKey",), {"algorithm": v})
        ),
        st.sampled_from(["", HUGE]).map(lambda v: mutated(base, ("subject",), v)),
        wrong_types.map(lambda v: mutated(base, ("subject",), v)),
        st.sampled_from(["UPPER", "a_b", "-x", HUGE[:300]]).map(lambda v: mutated(base, ("secretName",), v)),
        wrong_types.map(lambda v: mutated(base, ("privateKey",), v)),
    )


def reported(site: Site, plural: str, name: str) -> dict[str, Any] | None:
    """A condition of the object that is False and says why, if any."""
    for item in ((site.get(plural, name) or {}).get("status") or {}).get("conditions") or []:
        if item.get("status") == "False" and str(item.get("message", "")).strip():
            return dict(item)
    return None


def submit(site: Site, plural: str, spec: dict[str, Any]) -> None:
    """Either a 422 with a message, or a condition with a message (never silence)."""
    name = f"bad-{next(_names)}"
    rejection: ApiException | None = None
    try:
        site.create(plural, name, spec)
    except ApiException as error:
        rejection = error
    if rejection is not None:
        assert rejection.status == 422, (rejection.status, rejection.reason)
        assert '"message"' in (rejection.body or "")
        return
    wait_for(lambda: reported(site, plural, name), timeout=30, message=f"a condition on {plural}/{name}")


@pytest.fixture
def guarded(reliability_site: Site, operator_logs: pytest.LogCaptureFixture) -> Site:
    """The site with a good cert and peer in place; afterwards they must be exactly as they were."""
    site = reliability_site
    site.create(CERTS, "good-cert", {"subject": "good"})
    site.create(PEERS, "good", peer_spec("good-cert"))
    site.wait_condition(CERTS, "good-cert", "Ready", "True")
    site.wait_condition(PEERS, "good", "CredentialsReady", "True")
    return site


def assert_unharmed(site: Site, before: dict[str, dict[str, bytes]], logs: pytest.LogCaptureFixture) -> None:
    assert site.operator is not None
    assert site.operator._thread.is_alive(), "the operator thread died"
    site.wait_condition(PEERS, "good", "CredentialsReady", "True")
    site.wait_condition(CERTS, "good-cert", "Ready", "True")
    after = secret_bytes(site.sandbox)
    assert {name: after[name] for name in before} == before
    crashed = [
        record.getMessage()
        for record in logs.records
        if record.levelno >= logging.ERROR and "failed with an exception" in record.getMessage()
    ]
    assert not crashed, crashed


EXAMPLES = count("RELIABILITY_BAD_EXAMPLES", 40)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("resource", "cases"), [(PEERS, peer_cases), (CERTS, cert_cases)], ids=["peer", "cert"]
)
def test_invalid_specs_are_rejected_or_reported_and_harm_nothing(
    guarded: Site,
    operator_logs: pytest.LogCaptureFixture,
    resource: Any,
    cases: Callable[[], st.SearchStrategy[dict[str, Any]]],
) -> None:
    before = secret_bytes(guarded.sandbox)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(spec=cases())
    def check(spec: dict[str, Any]) -> None:
        submit(guarded, resource, spec)

    check()
    assert_unharmed(guarded, before, operator_logs)


def test_an_integer_beyond_int64_is_a_422_not_a_server_error(reliability_site: Site) -> None:
    """Found by the property test: CEL's conversion of the spec overflowed into a sandbox 500."""
    with pytest.raises(ApiException) as raised:
        reliability_site.create(CERTS, "huge-int", {"subject": 2**70})
    assert raised.value.status == 422
