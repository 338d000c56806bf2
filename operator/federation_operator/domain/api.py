"""Names that are API: the CRD group, kinds, labels, annotations and Secret layouts.

Every other module takes these from here, so that a rename is one edit and a reader can see in
one page what the operator writes into a cluster. Pure: no I/O, no third-party imports.
"""

from typing import Final

GROUP: Final = "federation.ampora.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

CERT_KIND: Final = "FederationCert"
CERT_PLURAL: Final = "federationcerts"
PEER_KIND: Final = "FederationPeer"
PEER_PLURAL: Final = "federationpeers"

FINALIZER: Final = f"{GROUP}/finalizer"
MANAGER: Final = "federation-operator"

# Labels on everything the operator creates. `managed-by` is how cleanup and the federation
# server's watches find our objects; `role` says what an object is for.
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
LABEL_PEER: Final = f"{GROUP}/peer"
LABEL_CERT: Final = f"{GROUP}/cert"
LABEL_ROLE: Final = f"{GROUP}/role"

ROLE_CLIENT_CERT: Final = "client-certificate"
ROLE_INBOUND: Final = "inbound"
ROLE_OUTBOUND: Final = "outbound"
ROLE_HANDOFF: Final = "handoff"
ROLE_TRUST_BUNDLE: Final = "trust-bundle"
ROLE_INGRESS: Final = "ingress"

# Annotations a user (or `kubectl federation`) sets to ask for something explicit; the operator
# acts on them once and removes them. Never used to carry secrets.
ANNOTATION_REISSUE: Final = f"{GROUP}/reissue"
ANNOTATION_ROTATE: Final = f"{GROUP}/rotate"
# On a client-certificate Secret: the thumbprint it was issued with (public), and the reissue
# request it answered, so that a repeated or stale event never re-issues twice for one request.
ANNOTATION_THUMBPRINT: Final = f"{GROUP}/thumbprint"
ANNOTATION_REISSUED_FOR: Final = f"{GROUP}/reissued-for"

# Secret layouts.
# FederationCert: a kubernetes.io/tls Secret with the standard keys.
TLS_CERT_KEY: Final = "tls.crt"
TLS_KEY_KEY: Final = "tls.key"
# FederationPeer, inbound: the hashes this side accepts (never a token), as JSON:
#   {"current": "sha256:<hex>", "previous": [{"hash": "sha256:<hex>", "expiresAt": "<RFC3339>"}]}
# The operator mirrors every inbound source (generated, spec.inbound.secretHash,
# spec.inbound.secretRef) into this one Secret, so the federation server watches one kind of object.
INBOUND_SECRET_SUFFIX: Final = "-inbound"
INBOUND_HASHES_KEY: Final = "hashes.json"
# FederationPeer, outbound (generated only): the token we present, and during rotation the
# previous one, used as a fallback until the remote accepts the new one.
OUTBOUND_SECRET_SUFFIX: Final = "-outbound"
OUTBOUND_TOKEN_KEY: Final = "token"
OUTBOUND_PREVIOUS_TOKEN_KEY: Final = "previous-token"
OUTBOUND_PREVIOUS_EXPIRES_KEY: Final = "previous-expires-at"
# FederationPeer, handoff: the remote's copy of both tokens, shown once.
HANDOFF_SECRET_SUFFIX: Final = "-handoff"
HANDOFF_REMOTE_OUTBOUND_KEY: Final = "remote-outbound"  # = our inbound token
HANDOFF_REMOTE_INBOUND_KEY: Final = "remote-inbound"  # = our outbound token

# The federation server's HTTP surface.
PING_PATH: Final = "/api/federation/ping"
FORWARD_AUTH_PATH: Final = "/api/federation/auth"
HEADER_PEER: Final = "X-Federation-Peer"
HEADER_NAMESPACE: Final = "X-Federation-Namespace"


def managed_labels(*, role: str) -> dict[str, str]:
    """Labels every object the operator creates carries."""
    return {LABEL_MANAGED_BY: MANAGER, LABEL_PART_OF: "federation", LABEL_ROLE: role}
