"""Where the caller's client certificate comes from: our own TLS handshake, or a trusted proxy.

The federation server runs either as the TLS endpoint itself (`direct`) or behind a proxy that
terminates mTLS and forwards the certificate in a header:

- `xfcc`: Envoy / Envoy Gateway `x-forwarded-client-cert`: `Hash=<hex>;Cert="<url-encoded PEM>"`.
  Each proxy on the path appends one element after a comma; we take the LAST element, the one
  added by the proxy directly in front of us (the only one whose address we trust). Earlier
  elements come from hops or clients we cannot vouch for. Configure the proxy with `SanitizeSet`
  (or `AppendForward`) so a client cannot supply the last element itself.
- `nginx`: ingress-nginx `ssl-client-cert` (`$ssl_client_escaped_cert`: URL-encoded PEM).
- `traefik`: Traefik `X-Forwarded-Tls-Client-Cert`: base64 DER without PEM armour (URL-escaped
  by Traefik v2), a comma-separated chain whose first entry is the leaf.

Header modes are off unless configured, and a header is honoured only when the connection comes
from a configured trusted proxy network; anywhere else it is refused (factor `Certificate`), since
anybody can write a header.

Exactly one certificate source per listener (issue #13: a trusted address's header beat the TLS
connection's own certificate, and a client-injected XFCC beat the proxy-verified
`ssl-client-cert`): a request on our TLS listener is judged by its handshake alone, headers
ignored; a request on the plain listener by headers alone. Several header modes can only be
enabled together with `combine_headers` (a flag), and a request carrying more than one enabled
header is refused as ambiguous. A forwarded certificate is refused outside its validity dates,
as OpenSSL refuses it in direct mode (Envoy's bare `Hash=` carries no dates: Envoy checked them
in its own handshake). Pure: parsing and decisions only; every parse error is a
`ClientCertError`, whose message never quotes the header.
"""

import base64
import binascii
import enum
import functools
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final
from urllib.parse import unquote

from cryptography import x509

from federation_operator.domain.certs import THUMBPRINT_PREFIX, thumbprint_of_der
from federation_operator.domain.pinning import InvalidPin, normalize_thumbprint

HEADER_XFCC: Final = "x-forwarded-client-cert"
HEADER_NGINX: Final = "ssl-client-cert"
HEADER_TRAEFIK: Final = "x-forwarded-tls-client-cert"
_PEM_RE: Final = re.compile(
    r"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----", re.ASCII
)
_HEX64: Final = re.compile(r"^[0-9a-f]{64}$")
# A certificate's DER is a few KiB; anything much larger is not one of ours.
_MAX_DER: Final = 64 * 1024
# Parsed header values are remembered (a proxy sends the same value for every call of one
# client); only values up to this size, a bounded number of them, so memory stays under ~2 MiB.
_CACHED_VALUE_MAX: Final = 8 * 1024
_CACHED_VALUES: Final = 256
# Remote addresses whose trust decision a config remembers before it starts over.
_REMEMBERED_REMOTES: Final = 4096

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class CertSource(enum.StrEnum):
    DIRECT = "direct"
    XFCC = "xfcc"
    NGINX = "nginx"
    TRAEFIK = "traefik"


_HEADER_OF: Final = {
    CertSource.XFCC: HEADER_XFCC,
    CertSource.NGINX: HEADER_NGINX,
    CertSource.TRAEFIK: HEADER_TRAEFIK,
}


class ClientCertError(ValueError):
    """A forwarded certificate we cannot read. The message never contains the header value."""


@dataclass(frozen=True)
class CertSourceConfig:
    sources: frozenset[CertSource] = frozenset({CertSource.DIRECT})
    trusted_proxies: tuple[Network, ...] = ()
    # Several header modes at once only on purpose (`--combine-cert-headers`).
    combine_headers: bool = False
    # remote -> trusted, per config: `is_trusted`'s own cache hashes the networks tuple on every
    # call, which costs more than the lookup on the auth hot path.
    _trusted: dict[str | None, bool] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        headers = [source for source in self.sources if source in _HEADER_OF]
        if len(headers) > 1 and not self.combine_headers:
            raise ValueError(
                f"several client-certificate header modes ({', '.join(sorted(headers))}) need "
                "combine_headers: a client could send one header while the proxy sets the other"
            )

    @property
    def header_names(self) -> list[str]:
        return [
            _HEADER_OF[source] for source in CertSource if source in _HEADER_OF and source in self.sources
        ]

    def trusts(self, remote: str | None) -> bool:
        """`is_trusted(remote, self.trusted_proxies)`, remembered."""
        known = self._trusted.get(remote)
        if known is None:
            known = is_trusted(remote, self.trusted_proxies)
            if len(self._trusted) >= _REMEMBERED_REMOTES:
                self._trusted.clear()
            self._trusted[remote] = known
        return known


@dataclass(frozen=True)
class Presented:
    """The outcome: a thumbprint, or nothing presented, or a refusal (factor `Certificate`)."""

    thumbprint: str | None = None
    source: CertSource | None = None
    refusal: str | None = field(default=None)
    # The forwarded certificate's validity (None when the header carries only a hash).
    not_before: datetime | None = None
    not_after: datetime | None = None


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """`--trusted-proxy` values (CIDR or a single address)."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)


def is_trusted(remote: str | None, networks: tuple[Network, ...]) -> bool:
    if remote is None or not networks:
        return False
    return _is_trusted(remote, networks)


@functools.lru_cache(maxsize=4096)
def _is_trusted(remote: str, networks: tuple[Network, ...]) -> bool:
    """Cached: the same proxy addresses come back on every request."""
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def der_from_pem(text: str) -> bytes:
    """The DER of the first CERTIFICATE block of a PEM text."""
    match = _PEM_RE.search(text)
    if match is None:
        raise ClientCertError("no PEM certificate block")
    return _b64_der("".join(match.group(1).split()))


def _b64_der(text: str) -> bytes:
    try:
        der = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ClientCertError("certificate is not valid base64") from error
    if not der or len(der) > _MAX_DER or der[0] != 0x30:
        raise ClientCertError("certificate is not DER")
    return der


def split_xfcc(value: str) -> list[dict[str, str]]:
    """Envoy's XFCC grammar: elements by `,`, pairs by `;`, `key=value`, values may be quoted.

    Inside double quotes `,;=` are literal and a backslash escapes the next character. Keys are
    case-insensitive (returned lowercase), values case-sensitive.
    """
    elements: list[dict[str, str]] = []
    pairs: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    if "\x00" in value:
        raise ClientCertError("NUL in x-forwarded-client-cert")
    if '"' not in value and "\\" not in value:
        # Nothing quoted (Envoy's usual `Hash=<hex>;Cert=<url-encoded>`): plain splits are
        # equivalent and several times faster than the character loop on the auth hot path.
        return [
            _xfcc_element([pair.replace("=", "\x00", 1) for pair in element.split(";")])
            for element in value.split(",")
        ]
    # An unquoted `=` is marked with NUL (refused above as input), so that a quoted `=` stays
    # literal when the pair is split into key and value.
    for char in value:
        if escaped:
            current.append(char)
            escaped = False
        elif quoted:
            if char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
            else:
                current.append(char)
        elif char == '"':
            quoted = True
        elif char == "=":
            current.append("\x00")
        elif char in ",;":
            pairs.append("".join(current))
            current = []
            if char == ",":
                elements.append(_xfcc_element(pairs))
                pairs = []
        else:
            current.append(char)
    if quoted or escaped:
        raise ClientCertError("unterminated quoted value in x-forwarded-client-cert")
    pairs.append("".join(current))
    elements.append(_xfcc_element(pairs))
    return elements


def _xfcc_element(pairs: list[str]) -> dict[str, str]:
    element: dict[str, str] = {}
    for pair in pairs:
        if not pair.strip():
            continue
        key, separator, value = pair.partition("\x00")
        if not separator or not key.strip():
            raise ClientCertError("x-forwarded-client-cert pair without key=value")
        element[key.strip().lower()] = value.replace("\x00", "=")
    return element


def thumbprint_from_xfcc(value: str) -> str:
    """The thumbprint from the last XFCC element: its `Cert` (checked against `Hash`) or `Hash`."""
    element = split_xfcc(value)[-1]
    from_cert = None
    if element.get("cert"):
        from_cert = thumbprint_of_der(der_from_pem(unquote(element["cert"])))
    from_hash = None
    if _HEX64.match(element.get("hash", "")):
        from_hash = THUMBPRINT_PREFIX + element["hash"]
    elif element.get("hash"):
        try:
            from_hash = normalize_thumbprint(element["hash"])
        except InvalidPin as error:
            raise ClientCertError("x-forwarded-client-cert Hash is not a SHA-256 hex digest") from error
    if from_cert is not None and from_hash is not None and from_cert != from_hash:
        raise ClientCertError("x-forwarded-client-cert Hash and Cert disagree")
    result = from_cert or from_hash
    if result is None:
        raise ClientCertError("x-forwarded-client-cert has neither Hash nor Cert in its last element")
    return result


def thumbprint_from_nginx(value: str) -> str:
    """ingress-nginx `ssl-client-cert`: the URL-encoded PEM of the client certificate."""
    return thumbprint_of_der(der_from_pem(unquote(value)))


def thumbprint_from_traefik(value: str) -> str:
    """Traefik: base64 DER without armour, maybe URL-escaped, chain by `,`: the first is the leaf."""
    first = unquote(value).split(",", 1)[0]
    return thumbprint_of_der(_b64_der("".join(first.split())))


_PARSERS: Final = {
    CertSource.XFCC: thumbprint_from_xfcc,
    CertSource.NGINX: thumbprint_from_nginx,
    CertSource.TRAEFIK: thumbprint_from_traefik,
}


_SOURCE_OF_HEADER: Final = {header: source for source, header in _HEADER_OF.items()}


def _forwarded_der(source: CertSource, value: str) -> bytes | None:
    """The certificate's DER when the header carries it (for its dates), else None."""
    if source is CertSource.NGINX:
        return der_from_pem(unquote(value))
    if source is CertSource.TRAEFIK:
        return _b64_der("".join(unquote(value).split(",", 1)[0].split()))
    cert = split_xfcc(value)[-1].get("cert")
    return der_from_pem(unquote(cert)) if cert else None


def _parse(header: str, value: str) -> Presented:
    """A trusted forwarded header's value (keyed by header name: an enum hashes in Python)."""
    source = _SOURCE_OF_HEADER[header]
    try:
        thumbprint = _PARSERS[source](value)
        der = _forwarded_der(source, value)
        if der is None:
            return Presented(thumbprint=thumbprint, source=source)
        try:
            certificate = x509.load_der_x509_certificate(der)
        except ValueError as error:
            raise ClientCertError("forwarded certificate is not an X.509 certificate") from error
        return Presented(
            thumbprint=thumbprint,
            source=source,
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
        )
    except ClientCertError as error:
        return Presented(source=source, refusal=str(error))


def _within_dates(presented: Presented, now: datetime) -> Presented:
    if presented.not_before is not None and now < presented.not_before:
        return Presented(source=presented.source, refusal="the forwarded client certificate is not valid yet")
    if presented.not_after is not None and now > presented.not_after:
        return Presented(source=presented.source, refusal="the forwarded client certificate has expired")
    return presented


# Pure, and its answers are frozen: safe to share between calls.
_parse_remembered: Final = functools.lru_cache(maxsize=_CACHED_VALUES)(_parse)


def resolve(
    *,
    config: CertSourceConfig,
    remote: str | None,
    headers: Mapping[str, Sequence[str]],
    over_tls: bool,
    tls_der: bytes | None,
    now: datetime,
) -> Presented:
    """Decide which certificate the caller presented.

    `over_tls`: the request came on our own TLS listener, where only its handshake (`tls_der`)
    counts. Otherwise only forwarded headers count: `headers` maps lowercase header names to
    every value received under that name.
    """
    if over_tls:
        if CertSource.DIRECT in config.sources and tls_der is not None:
            return Presented(thumbprint=thumbprint_of_der(tls_der), source=CertSource.DIRECT)
        return Presented()
    present = [
        (source, values)
        for source in _PARSERS
        if source in config.sources
        and (values := [value for value in headers.get(_HEADER_OF[source], ()) if value.strip()])
    ]
    if not present:
        return Presented()
    source, values = present[0]
    if not config.trusts(remote):
        return Presented(
            source=source, refusal=f"header {_HEADER_OF[source]} is accepted only from a trusted proxy"
        )
    if len(present) > 1:
        names = ", ".join(_HEADER_OF[source] for source, _ in present)
        return Presented(source=source, refusal=f"several client-certificate headers ({names})")
    if source is not CertSource.XFCC and len(values) > 1:
        return Presented(source=source, refusal=f"several {_HEADER_OF[source]} headers")
    value = ",".join(values)
    if len(value) <= _CACHED_VALUE_MAX:
        return _within_dates(_parse_remembered(_HEADER_OF[source], value), now)
    return _within_dates(_parse(_HEADER_OF[source], value), now)
