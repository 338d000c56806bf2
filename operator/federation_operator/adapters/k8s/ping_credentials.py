"""What one ping presents (client certificate, CA bundle, outbound tokens), read through a shared cache.

The heartbeat and `kubectl federation ping` read the same objects the same way, so a ping from the
plugin presents exactly what the operator's next heartbeat would. How old a cached object the
heartbeat accepts is decided here too (`read_for_heartbeat`).
"""

import asyncio
import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from federation_operator.adapters.k8s import client as k8s
from federation_operator.adapters.k8s.credentials import read_outbound
from federation_operator.adapters.k8s.resources import CONFIGMAPS, FEDERATION_CERTS, SECRETS, Resource
from federation_operator.adapters.probe import TlsMaterial
from federation_operator.domain import certs, conditions, issuance, objects
from federation_operator.domain.credentials import peer_secrets
from federation_operator.domain.credentials.outbound_tokens import OutboundTokens
from federation_operator.domain.factors import Factor
from federation_operator.domain.reachability import Failure

# Credentials are re-read at most this often while pings succeed; at once after a spec change or a
# failure that a credential change could explain. Shared by all peers of the operator, so a
# FederationCert used by a thousand peers is read once per period, not a thousand times.
CREDENTIALS_MAX_AGE: Final = 60.0
# A peer's own outbound Secret changes only with a rotation or an edit, and either changes the
# outbound fingerprint in the peer's status (the credentials handler watches those Secrets), which
# makes the next cycle read it again. This age is only the safety net: at 10,000 peers, re-reading
# each peer's Secret every minute would be ~170 GETs per second for nothing.
OWN_SECRET_MAX_AGE: Final = 1800.0
# What the readers of a cached object use: held per peer (its outbound Secret) for the operator's
# lifetime, so managedFields and the like are dropped (`objects.kept_for_reading`).
_META_KEPT: Final = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "labels",
    "annotations",
    "ownerReferences",
    "deletionTimestamp",
)
_FIELDS_KEPT: Final = ("spec", "status", "type", "data", "stringData")
# Failures a changed credential object could explain: the next cycle reads everything again.
_CREDENTIAL_FACTORS: Final = frozenset({Factor.SECRET, Factor.CERTIFICATE, Factor.TLS})


class CredentialCache:
    """Objects the heartbeat reads (FederationCerts, their Secrets, CA bundles, outbound Secrets),
    shared by all peers of one operator, each re-read when older than the age a caller accepts.
    Concurrent readers of one object share one request. An absent object is not kept: a reader
    that finds nothing asks again next time (an object created meanwhile is found at once)."""

    def __init__(self, kube: k8s.Kube, *, clock: Any = time.monotonic) -> None:
        self._kube = kube
        self._clock = clock
        self._entries: dict[tuple[str, str, str], tuple[float, dict[str, Any] | None]] = {}
        self._inflight: dict[tuple[str, str, str], asyncio.Future[dict[str, Any] | None]] = {}
        self.reads = 0

    async def get(
        self, resource: Resource, namespace: str, name: str, *, max_age: float
    ) -> dict[str, Any] | None:
        key = (resource.plural, namespace, name)
        entry = self._entries.get(key)
        if entry is not None and entry[1] is not None and self._clock() - entry[0] <= max_age:
            return entry[1]
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            self.reads += 1
            value = await self._kube.get(resource, namespace, name)
            if value is not None:
                value = objects.kept_for_reading(value, metadata=_META_KEPT, fields=_FIELDS_KEPT)
            self._entries[key] = (self._clock(), value)
            future.set_result(value)
            return value
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved here, so that a future nobody else awaited stays quiet
            raise
        finally:
            del self._inflight[key]

    def forget(self, resource: Resource, namespace: str, name: str) -> None:
        self._entries.pop((resource.plural, namespace, name), None)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class Credentials:
    material: TlsMaterial
    outbound: OutboundTokens
    presented: dict[str, Any]
    header: str | None


class CacheReader:
    """`Kube.get` through the shared cache, with the age the caller accepts."""

    def __init__(self, cache: CredentialCache, namespace: str, *, max_age: float) -> None:
        self.cache, self.namespace, self.max_age = cache, namespace, max_age

    async def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        return await self.cache.get(resource, namespace or self.namespace, name, max_age=self.max_age)


class WatchedSecrets(Protocol):
    """The Secrets the operator's own watch holds (`controller/handlers/secret_cache.SecretCache`):
    (known, Secret or None); not known means ask the API."""

    def lookup(
        self, namespace: str, name: str, *, labelled: bool
    ) -> tuple[bool, Mapping[str, Any] | None]: ...


class WatchFirstReader:
    """Secrets as the operator's watch shows them, other objects (and Secrets the watch does not
    know: a user's Secret no peer watches yet, a scope not listed yet) through the cache."""

    def __init__(self, watched: WatchedSecrets, fallback: CacheReader, *, peer_name: str) -> None:
        self.watched, self.fallback = watched, fallback
        self.namespace = fallback.namespace
        # Only our generated outbound Secret is labelled, so only its absence from the watch is news.
        self._own = peer_secrets.outbound_secret_name(peer_name)

    async def get(self, resource: Resource, namespace: str | None, name: str) -> Mapping[str, Any] | None:
        if resource is SECRETS:
            known, found = self.watched.lookup(namespace or self.namespace, name, labelled=name == self._own)
            if known:
                return found
        return await self.fallback.get(resource, namespace, name)


# The presented certificate's thumbprint and expiry, parsed once per certificate rather than per ping.
_describe_certificate: Final = functools.lru_cache(maxsize=64)(certs.describe_pem)


async def load_credentials(
    reader: CacheReader,
    *,
    peer_name: str,
    spec: Mapping[str, Any],
    outbound_reader: CacheReader | WatchFirstReader | None = None,
) -> Credentials | Failure:
    """Everything one ping presents. A Failure names an object and key, never a value.

    `outbound_reader` reads the peer's outbound Secret (`reader` when not given)."""
    namespace = reader.namespace
    cert_name = str((spec.get("clientCertificateRef") or {}).get("name") or "")
    if not cert_name:
        return Failure(
            Factor.CERTIFICATE, "spec.clientCertificateRef is not set: no client certificate to present"
        )
    cert = await reader.get(FEDERATION_CERTS, namespace, cert_name)
    if cert is None:
        return Failure(
            Factor.CERTIFICATE, f"FederationCert {cert_name} (spec.clientCertificateRef) not found"
        )
    secret_name = str((cert.get("spec") or {}).get("secretName") or f"{cert_name}-tls")
    secret = await reader.get(SECRETS, namespace, secret_name)
    identity = issuance.read_client_identity(secret, secret_name=secret_name, describe=_describe_certificate)
    if isinstance(identity, str):
        return Failure(Factor.CERTIFICATE, f"{identity} (FederationCert {cert_name})")
    info = identity.info

    trust = spec.get("serverTrust") or {}
    ca_pem: str | None = None
    ref = trust.get("caBundleRef")
    if ref:
        kind, name, key = str(ref.get("kind")), str(ref.get("name")), str(ref.get("key") or "ca.crt")
        source = await reader.get(CONFIGMAPS if kind == "ConfigMap" else SECRETS, namespace, name)
        if source is None:
            return Failure(Factor.TLS, f"{kind} {name} (spec.serverTrust.caBundleRef) not found")
        if kind == "ConfigMap":
            value = (source.get("data") or {}).get(key)
            ca_pem = value if isinstance(value, str) else None
        else:
            raw = objects.secret_data(source).get(key)
            ca_pem = raw.decode("ascii", errors="replace") if raw is not None else None
        if not ca_pem:
            return Failure(Factor.TLS, f"{kind} {name} has no key {key} (spec.serverTrust.caBundleRef)")

    outbound = await read_outbound(
        outbound_reader or reader,  # type: ignore[arg-type]
        namespace=namespace,
        peer_name=peer_name,
        spec=spec,
    )
    if outbound.current is None:
        return Failure(Factor.SECRET, outbound.problem or "no outbound token")
    return Credentials(
        material=TlsMaterial(
            cert_pem=info.pem,
            key_pem=identity.key_pem,
            ca_pem=ca_pem,
            insecure=bool(trust.get("insecureSkipVerify")),
        ),
        outbound=outbound,
        presented={
            "name": cert_name,
            "thumbprint": info.thumbprint,
            "notAfter": conditions.rfc3339(info.not_after),
        },
        header=(spec.get("outbound") or {}).get("header") or None,
    )


def credential_key(body: Mapping[str, Any]) -> tuple[str, ...]:
    """Changes when what we present may have changed: the spec's references, or a token rotation
    (the credentials handler shows the new outbound fingerprint in status)."""
    spec = body.get("spec") or {}
    outbound_status = (body.get("status") or {}).get("outbound") or {}
    return (
        repr(spec.get("clientCertificateRef")),
        repr(spec.get("outbound")),
        repr(spec.get("serverTrust")),
        repr(outbound_status.get("fingerprint")),
        repr(outbound_status.get("previousExpiresAt")),
    )


class HeartbeatReads:
    """How fresh one peer's heartbeat needs its credentials: cached while nothing suggests a
    change, read again at once when the peer's references or fingerprints changed or the last
    failure was one a credential change could explain.

    A peer's first cycle trusts the caches too: nothing it knows of has changed yet, and after a
    restart every peer's first cycle falls within one interval, so reading fresh then meant ~3
    GETs per peer at once (30,000 at 10,000 peers, docs/benchmarks.md) for objects that the
    cache and the watch already hold. Its own outbound Secret comes from the operator's watch
    (`watched`) unless a change is suspected: the watch can trail the status event that
    announced a rotation, a GET cannot."""

    def __init__(self, cache: CredentialCache, *, watched: WatchedSecrets | None = None) -> None:
        self.cache = cache
        self.watched = watched
        self._key: tuple[str, ...] | None = None

    async def load(
        self, body: Mapping[str, Any], *, last_failure_factor: str | None
    ) -> Credentials | Failure:
        meta = body.get("metadata") or {}
        key = credential_key(body)
        changed = self._key is not None and key != self._key
        fresh = changed or last_failure_factor in _CREDENTIAL_FACTORS
        self._key = key
        namespace = str(meta.get("namespace"))
        peer_name = str(meta.get("name"))
        reader = CacheReader(self.cache, namespace, max_age=0.0 if fresh else CREDENTIALS_MAX_AGE)
        cached = CacheReader(self.cache, namespace, max_age=0.0 if fresh else OWN_SECRET_MAX_AGE)
        own: CacheReader | WatchFirstReader = cached
        if not fresh and self.watched is not None:
            own = WatchFirstReader(self.watched, cached, peer_name=peer_name)
        loaded = await load_credentials(
            reader, peer_name=peer_name, spec=body.get("spec") or {}, outbound_reader=own
        )
        if fresh and self.watched is not None:
            # The fresh read's copy of the peer's own outbound Secret would stay for the operator's
            # life (one per peer), yet the next cycles read it from the watch whenever the watch
            # knows it: kept only for a scope the watch does not hold.
            outbound = peer_secrets.outbound_secret_name(peer_name)
            if self.watched.lookup(namespace, outbound, labelled=True)[0]:
                self.cache.forget(SECRETS, namespace, outbound)
        return loaded
