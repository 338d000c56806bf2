"""Direct mTLS: request a client certificate and let only pinned certificates through the handshake.

Python's `ssl` has no verify callback, so "accept exactly these self-signed certificates" is built
from what OpenSSL does offer: the pinned PEMs themselves are the trust store (a self-signed leaf in
the store is its own anchor; `VERIFY_X509_PARTIAL_CHAIN` makes any stored certificate an anchor),
with `CERT_OPTIONAL` so that a caller without a certificate still reaches the app and hears a JSON
`Certificate` refusal. An unpinned certificate fails the handshake. The app checks the leaf's
thumbprint against the index on every request anyway, so the handshake is a first filter, not the
decision (a pinned CA certificate would let its children through the handshake, never the app).

The trust store follows the index: the listening context carries an SNI callback (OpenSSL calls it
on every handshake, with or without SNI) that swaps in a context rebuilt whenever the index
version, or the server certificate files, changed. Limits: a thumbprint-only pin cannot pass the
handshake in direct mode (there is no certificate to put in the store; use a PEM pin or a header
mode, where the proxy checks the hash), and OpenSSL refuses expired client certificates.
No client CA names are sent, so the handshake does not list our peers' subjects to anyone.
"""

import os
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from federation_operator.server.index import PeerIndex


def build_context(*, cert_file: Path, key_file: Path, anchors: list[str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    context.verify_mode = ssl.CERT_OPTIONAL
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if anchors:
        context.load_verify_locations(cadata="".join(anchors))
    return context


class PinnedTLS:
    """The listening context plus the rebuilt-on-change context each handshake switches to."""

    def __init__(
        self,
        *,
        index: PeerIndex,
        cert_file: Path,
        key_file: Path,
        clock: Callable[[], datetime] = lambda: datetime.now(tz=UTC),
    ) -> None:
        self._index = index
        self._cert_file = cert_file
        self._key_file = key_file
        self._clock = clock
        self._stamp: tuple[int, float, float] | None = None
        self._current = self._rebuild()
        self.context = build_context(cert_file=cert_file, key_file=key_file, anchors=[])
        self.context.sni_callback = self._on_hello

    def _files_stamp(self) -> tuple[float, float]:
        return (os.stat(self._cert_file).st_mtime, os.stat(self._key_file).st_mtime)

    def _rebuild(self) -> ssl.SSLContext:
        stamp = (self._index.version, *self._files_stamp())
        context = build_context(
            cert_file=self._cert_file,
            key_file=self._key_file,
            anchors=self._index.trust_anchors(now=self._clock()),
        )
        self._stamp = stamp
        return context

    def current(self) -> ssl.SSLContext:
        """The context for the next handshake, rebuilt if the pins or server files changed.

        If a rebuild fails (a server certificate half-written during rotation), the previous
        context keeps serving and the rebuild is retried on the next handshake.
        """
        try:
            if self._stamp != (self._index.version, *self._files_stamp()):
                self._current = self._rebuild()
        except (OSError, ssl.SSLError, ValueError):
            pass
        return self._current

    def _on_hello(self, ssl_object: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        ssl_object.context = self.current()
