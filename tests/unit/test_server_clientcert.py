"""Client certificate sources: direct TLS, Envoy XFCC, ingress-nginx, Traefik; trusted proxies only."""

import base64
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation_operator.domain.certs import CertificateInfo, issue_certificate
from federation_operator.server.clientcert import (
    CertSource,
    CertSourceConfig,
    ClientCertError,
    der_from_pem,
    is_trusted,
    parse_networks,
    resolve,
    split_xfcc,
    thumbprint_from_nginx,
    thumbprint_from_traefik,
    thumbprint_from_xfcc,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)
ALL = frozenset(CertSource)  # with combine_headers=True
PROXIES = parse_networks(["10.0.0.0/8", "fd00::/8", "127.0.0.1"])


@cache
def cert(label: str) -> CertificateInfo:
    return issue_certificate(subject=label, validity=timedelta(days=1), now=NOW).info


def der(label: str) -> bytes:
    return der_from_pem(cert(label).pem)


def bare_hex(label: str) -> str:
    return cert(label).thumbprint.removeprefix("sha256:")


def xfcc_cert(label: str) -> str:
    """As Envoy writes it: URL-encoded PEM, quoted."""
    return f'Cert="{quote(cert(label).pem, safe="")}"'


def nginx_value(label: str) -> str:
    """As nginx's $ssl_client_escaped_cert writes it."""
    return quote(cert(label).pem, safe="")


def traefik_value(*labels: str, escaped: bool = True) -> str:
    chain = ",".join(base64.b64encode(der(label)).decode() for label in labels)
    return quote(chain, safe=",") if escaped else chain


def test_xfcc_cert_gives_the_certificates_thumbprint() -> None:
    value = f'By=spiffe://proxy;Hash={bare_hex("a")};{xfcc_cert("a")};Subject="CN=a"'
    assert thumbprint_from_xfcc(value) == cert("a").thumbprint


def test_xfcc_hash_alone_is_enough() -> None:
    assert thumbprint_from_xfcc(f"Hash={bare_hex('a')}") == cert("a").thumbprint


def test_xfcc_takes_the_last_element_the_one_our_proxy_appended() -> None:
    value = f"Hash={bare_hex('forged')};{xfcc_cert('forged')},Hash={bare_hex('a')}"
    assert thumbprint_from_xfcc(value) == cert("a").thumbprint


def test_xfcc_hash_and_cert_must_agree() -> None:
    with pytest.raises(ClientCertError, match="disagree"):
        thumbprint_from_xfcc(f"Hash={bare_hex('b')};{xfcc_cert('a')}")


def test_xfcc_quoted_values_keep_separators_and_escapes() -> None:
    elements = split_xfcc(r'Subject="CN=x, O=\"y\"; z";URI=spiffe://a,By=b')
    assert elements == [{"subject": 'CN=x, O="y"; z', "uri": "spiffe://a"}, {"by": "b"}]


def test_xfcc_keys_are_case_insensitive() -> None:
    assert thumbprint_from_xfcc(f"HASH={bare_hex('a')}") == cert("a").thumbprint


@pytest.mark.parametrize(
    "value",
    [
        "",
        "By=x",
        "Hash=nothex",
        'Cert="unterminated',
        "Cert=%ZZ",
        "noequals",
        "=value",
        'Cert="-----BEGIN%20CERTIFICATE-----%0A!!!%0A-----END%20CERTIFICATE-----"',
        "Hash=\\",
        "a=\x00b",
    ],
)
def test_malformed_xfcc_is_a_client_cert_error(value: str) -> None:
    with pytest.raises(ClientCertError):
        thumbprint_from_xfcc(value)


def test_nginx_escaped_pem() -> None:
    assert thumbprint_from_nginx(nginx_value("a")) == cert("a").thumbprint


def test_nginx_garbage_is_refused() -> None:
    with pytest.raises(ClientCertError):
        thumbprint_from_nginx("not a certificate")


@pytest.mark.parametrize("escaped", [True, False])
def test_traefik_base64_der_first_of_chain(escaped: bool) -> None:
    assert thumbprint_from_traefik(traefik_value("a", "b", escaped=escaped)) == cert("a").thumbprint


@pytest.mark.parametrize("value", ["", "@@@", base64.b64encode(b"not der").decode(), "A" * 200_000])
def test_traefik_garbage_is_refused(value: str) -> None:
    with pytest.raises(ClientCertError):
        thumbprint_from_traefik(value)


@pytest.mark.parametrize(
    ("remote", "trusted"),
    [
        ("10.1.2.3", True),
        ("127.0.0.1", True),
        ("127.0.0.2", False),
        ("::ffff:10.0.0.1", True),
        ("fd12::1", True),
        ("192.168.0.1", False),
        (None, False),
        ("not-an-ip", False),
    ],
)
def test_trusted_proxy_networks(remote: str | None, trusted: bool) -> None:
    assert is_trusted(remote, PROXIES) is trusted


def test_no_trusted_networks_trust_nobody() -> None:
    assert not is_trusted("127.0.0.1", ())


def headers(**values: Sequence[str]) -> dict[str, Sequence[str]]:
    return {name.replace("_", "-"): list(value) for name, value in values.items()}


def test_direct_tls_certificate_by_default() -> None:
    presented = resolve(
        config=CertSourceConfig(), remote="192.0.2.1", headers={}, over_tls=True, tls_der=der("a"), now=NOW
    )
    assert (presented.thumbprint, presented.source) == (cert("a").thumbprint, CertSource.DIRECT)


def test_header_modes_are_off_by_default() -> None:
    presented = resolve(
        config=CertSourceConfig(trusted_proxies=PROXIES),
        remote="10.0.0.1",
        headers=headers(ssl_client_cert=[nginx_value("a")]),
        over_tls=False,
        tls_der=None,
        now=NOW,
    )
    assert presented.thumbprint is None
    assert presented.refusal is None


@pytest.mark.parametrize(
    ("source", "name", "value"),
    [
        (CertSource.XFCC, "x-forwarded-client-cert", f"Hash={bare_hex('a')}"),
        (CertSource.NGINX, "ssl-client-cert", None),
        (CertSource.TRAEFIK, "x-forwarded-tls-client-cert", None),
    ],
    # Named, not derived from the values: the XFCC value holds a fresh certificate's hash, and
    # parallel workers must collect the same test ids.
    ids=["xfcc", "nginx", "traefik"],
)
def test_each_header_mode_from_a_trusted_proxy(source: CertSource, name: str, value: str | None) -> None:
    value = value or (nginx_value("a") if source is CertSource.NGINX else traefik_value("a"))
    config = CertSourceConfig(sources=frozenset({source}), trusted_proxies=PROXIES)
    presented = resolve(
        config=config, remote="10.0.0.1", headers={name: [value]}, over_tls=False, tls_der=None, now=NOW
    )
    assert (presented.thumbprint, presented.source) == (cert("a").thumbprint, source)
    untrusted = resolve(
        config=config, remote="192.0.2.1", headers={name: [value]}, over_tls=False, tls_der=der("a"), now=NOW
    )
    assert untrusted.thumbprint is None
    assert untrusted.refusal is not None
    assert "trusted proxy" in untrusted.refusal


def test_each_listener_has_one_certificate_source() -> None:
    config = CertSourceConfig(
        sources=frozenset({CertSource.DIRECT, CertSource.NGINX}), trusted_proxies=PROXIES
    )
    forwarded = headers(ssl_client_cert=[nginx_value("a")])
    on_tls = resolve(
        config=config, remote="10.0.0.1", headers=forwarded, over_tls=True, tls_der=der("b"), now=NOW
    )
    assert on_tls.thumbprint == cert("b").thumbprint, "the TLS listener trusts only its handshake"
    on_plain = resolve(
        config=config, remote="10.0.0.1", headers=forwarded, over_tls=False, tls_der=None, now=NOW
    )
    assert on_plain.thumbprint == cert("a").thumbprint


def test_header_modes_combine_only_on_purpose_and_two_headers_in_one_request_are_refused() -> None:
    with pytest.raises(ValueError, match="combine_headers"):
        CertSourceConfig(sources=frozenset({CertSource.XFCC, CertSource.NGINX}), trusted_proxies=PROXIES)
    config = CertSourceConfig(
        sources=frozenset({CertSource.XFCC, CertSource.NGINX}), trusted_proxies=PROXIES, combine_headers=True
    )
    both = headers(ssl_client_cert=[nginx_value("a")], x_forwarded_client_cert=[f"Hash={bare_hex('b')}"])
    presented = resolve(config=config, remote="10.0.0.1", headers=both, over_tls=False, tls_der=None, now=NOW)
    assert presented.thumbprint is None
    assert presented.refusal is not None
    assert "several" in presented.refusal


def test_a_forwarded_certificate_outside_its_validity_dates_is_refused() -> None:
    config = CertSourceConfig(sources=frozenset({CertSource.NGINX}), trusted_proxies=PROXIES)
    forwarded = headers(ssl_client_cert=[nginx_value("a")])
    info = cert("a")
    for moment, word in (
        (info.not_before - timedelta(seconds=1), "not valid yet"),
        (info.not_after + timedelta(seconds=1), "expired"),
    ):
        presented = resolve(
            config=config, remote="10.0.0.1", headers=forwarded, over_tls=False, tls_der=None, now=moment
        )
        assert presented.thumbprint is None
        assert presented.refusal is not None
        assert word in presented.refusal


def test_several_xfcc_headers_join_and_the_last_element_wins() -> None:
    config = CertSourceConfig(sources=frozenset({CertSource.XFCC}), trusted_proxies=PROXIES)
    presented = resolve(
        config=config,
        remote="10.0.0.1",
        headers=headers(x_forwarded_client_cert=[f"Hash={bare_hex('forged')}", f"Hash={bare_hex('a')}"]),
        over_tls=False,
        tls_der=None,
        now=NOW,
    )
    assert presented.thumbprint == cert("a").thumbprint


def test_several_nginx_headers_are_ambiguous_and_refused() -> None:
    config = CertSourceConfig(sources=frozenset({CertSource.NGINX}), trusted_proxies=PROXIES)
    presented = resolve(
        config=config,
        remote="10.0.0.1",
        headers=headers(ssl_client_cert=[nginx_value("a"), nginx_value("b")]),
        over_tls=False,
        tls_der=None,
        now=NOW,
    )
    assert presented.refusal is not None


def test_unreadable_header_is_a_refusal_not_an_exception() -> None:
    config = CertSourceConfig(sources=ALL, trusted_proxies=PROXIES, combine_headers=True)
    presented = resolve(
        config=config,
        remote="10.0.0.1",
        headers=headers(ssl_client_cert=["junk"]),
        over_tls=False,
        tls_der=None,
        now=NOW,
    )
    assert presented.refusal is not None
    assert "junk" not in presented.refusal


def test_empty_header_counts_as_absent() -> None:
    config = CertSourceConfig(sources=ALL, trusted_proxies=(), combine_headers=True)
    presented = resolve(
        config=config,
        remote="192.0.2.1",
        headers=headers(ssl_client_cert=[" "]),
        over_tls=False,
        tls_der=None,
        now=NOW,
    )
    assert presented == resolve(
        config=config, remote="192.0.2.1", headers={}, over_tls=False, tls_der=None, now=NOW
    )


_header_text = st.one_of(
    st.text(max_size=400),
    st.text(alphabet='Hash=Cert";,\\%0aAZ-BEGIN CERTIFICATE', max_size=400),
    st.builds(lambda s: "Cert=" + quote(s), st.text(max_size=200)),
    st.builds(
        lambda s: f'Cert="{quote("-----BEGIN CERTIFICATE-----" + s + "-----END CERTIFICATE-----")}"',
        st.text(max_size=200),
    ),
)


@settings(max_examples=500, deadline=None)
@given(value=_header_text)
def test_parsers_raise_only_client_cert_error(value: str) -> None:
    for parse in (thumbprint_from_xfcc, thumbprint_from_nginx, thumbprint_from_traefik):
        try:
            result = parse(value)
        except ClientCertError:
            continue
        assert result.startswith("sha256:")
        assert len(result) == len("sha256:") + 64
