"""Fuzz the running server's headers: never a 5xx, never a 200 without both factors of one peer.

Every header mode is on and 127.0.0.1 is a trusted proxy, so every parser is reachable. Requests
mix valid and broken pieces: random/huge text, malformed XFCC, PEMs, base64 DER, Authorization.
"""

import base64
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation_operator.domain import api
from federation_operator.server.clientcert import CertSource, CertSourceConfig, der_from_pem, parse_networks
from tests.harness.server import AppThread, Identity, Keys, link


@pytest.fixture(scope="module")
def ids(keys: Keys) -> dict[str, Identity]:
    return {name: keys.identity(name) for name in ("a", "b", "stranger")}


@pytest.fixture(scope="module")
def server(keys: Keys, ids: dict[str, Identity]) -> Iterator[AppThread]:
    sources = CertSourceConfig(
        sources=frozenset(CertSource), trusted_proxies=parse_networks(["127.0.0.1"]), combine_headers=True
    )
    # Every example comes from 127.0.0.1: a huge bucket keeps the limiter from masking the app.
    thread = AppThread(keys=keys, cert_sources=sources, rate_limit_burst=1_000_000).start()
    thread.call(link, thread.index, ids["a"])
    thread.call(link, thread.index, ids["b"])
    yield thread
    thread.stop()


def cert_values(identity: Identity) -> dict[str, str]:
    der = der_from_pem(identity.pem)
    hexes = identity.thumbprint.removeprefix("sha256:")
    return {
        "x-forwarded-client-cert": f'Hash={hexes};Cert="{quote(identity.pem, safe="")}"',
        "ssl-client-cert": quote(identity.pem, safe=""),
        "x-forwarded-tls-client-cert": base64.b64encode(der).decode(),
    }


NAMES = ["x-forwarded-client-cert", "ssl-client-cert", "x-forwarded-tls-client-cert", "authorization"]
_latin = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300)


@st.composite
def requests(draw: st.DrawFn, identities: dict[str, Identity]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name in NAMES:
        choice = draw(
            st.sampled_from(["absent", "valid-a", "valid-b", "stranger", "random", "huge", "mangled"])
        )
        if choice == "absent":
            continue
        if name == "authorization":
            pieces = {
                "valid-a": f"Bearer {identities['a'].token.reveal()}",
                "valid-b": f"Bearer {identities['b'].token.reveal()}",
                "stranger": f"Bearer {identities['stranger'].token.reveal()}",
            }
        else:
            pieces = {
                "valid-a": cert_values(identities["a"])[name],
                "valid-b": cert_values(identities["b"])[name],
                "stranger": cert_values(identities["stranger"])[name],
            }
        if choice in pieces:
            headers[name] = pieces[choice]
        elif choice == "random":
            headers[name] = draw(_latin)
        elif choice == "huge":
            headers[name] = draw(st.sampled_from(["A", "%", '"', "Hash=", ","])) * draw(
                st.integers(8_000, 70_000)
            )
        else:
            base = draw(st.sampled_from(list(pieces.values())))
            cut = draw(st.integers(0, len(base)))
            headers[name] = base[:cut] + draw(_latin) + base[cut:]
    return headers


def carries(headers: dict[str, str], identity: Identity) -> bool:
    values = cert_values(identity)
    return any(
        values[name] in headers.get(name, "") or identity.thumbprint[7:] in headers.get(name, "")
        for name in values
    )


def test_header_fuzz_never_5xx_and_never_green_without_both_factors(
    server: AppThread, ids: dict[str, Identity]
) -> None:
    identities = ids
    path = st.sampled_from([api.PING_PATH, api.FORWARD_AUTH_PATH, api.FORWARD_AUTH_PATH + "/x?y=1"])
    seen: set[int] = set()
    with httpx.Client(timeout=10) as http:

        @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(headers=requests(identities), route=path)
        def probe(headers: dict[str, str], route: str) -> None:
            try:
                reply = http.get(server.http_url + route, headers=headers)
            except httpx.LocalProtocolError:
                return  # h11 refuses to send it (e.g. surrounding whitespace): nothing reached us
            except httpx.RemoteProtocolError:
                return  # the server closed a connection it could not parse: not a 5xx
            seen.add(reply.status_code)
            assert reply.status_code < 500, (reply.status_code, reply.text[:200])
            if reply.status_code == 200:
                token = headers.get("authorization", "")
                owner = next(i for i in identities.values() if i.token.reveal() in token)
                assert owner.name in {"a", "b"}
                assert carries(headers, owner), "a 200 must come with the token owner's certificate"

        probe()
    assert {200, 401} <= seen, f"the fuzzer must reach both green and red replies (saw {sorted(seen)})"
