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
version, or the server certificate files, changed. A rebuild costs CPU quadratic in the pinned
PEMs (OpenSSL 3.0 re-sorts its store on every certificate added: 7.1 s at 10,000). Up to
`INLINE_ANCHORS` PEMs it takes at most ~30 ms and runs in the handshake that needs it, so a new pin
passes at once; beyond, it runs in a thread, from a file (OpenSSL's file loader releases the GIL,
`cadata` does not), while handshakes keep the previous store until the new one is ready: the
event loop goes on answering. The exception is the first store after the initial list, which
every pinned caller needs: it is built in the handshake whatever its size.

Limits: a thumbprint-only pin cannot pass the handshake in direct mode (there is no certificate
to put in the store; use a PEM pin or a header mode, where the proxy checks the hash), and
OpenSSL refuses expired client certificates.
No client CA names are sent, so the handshake does not list our peers' subjects to anyone.
"""

import logging
import os
import ssl
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from federation_operator.server.index import PeerIndex

logger = logging.getLogger(__name__)

# Pinned PEMs up to which the trust store is rebuilt inside the handshake (30 ms of CPU at 256).
INLINE_ANCHORS: Final = 256

_Stamp = tuple[int, float, float]


def build_context(
    *, cert_file: Path, key_file: Path, anchors: list[str], via_file: bool = False
) -> ssl.SSLContext:
    """`via_file`: load the anchors from a temporary file, which OpenSSL reads without holding
    the GIL (a rebuild in a thread then does not stall the event loop); `cadata` holds it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    context.verify_mode = ssl.CERT_OPTIONAL
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if anchors and via_file:
        with tempfile.NamedTemporaryFile("w", prefix="pinned-", suffix=".pem") as file:
            file.write("".join(anchors))
            file.flush()
            context.load_verify_locations(cafile=file.name)
    elif anchors:
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
        inline_anchors: int = INLINE_ANCHORS,
    ) -> None:
        self._index = index
        self._cert_file = cert_file
        self._key_file = key_file
        self._clock = clock
        self._inline_anchors = inline_anchors
        self._stamp: _Stamp | None = None
        # The stamp a background rebuild is building, while one runs (at most one at a time).
        self._building: _Stamp | None = None
        # Whether the store in use was built from a synced index: the first one after the
        # initial list is built in the handshake whatever its size, as every pinned caller's
        # first call needs it (a store built beside would refuse them all meanwhile).
        self._synced_store = index.synced
        stamp = self._current_stamp()
        self._current = self._build()
        self._stamp = stamp
        self.context = build_context(cert_file=cert_file, key_file=key_file, anchors=[])
        self.context.sni_callback = self._on_hello

    def _current_stamp(self) -> _Stamp:
        return (self._index.version, os.stat(self._cert_file).st_mtime, os.stat(self._key_file).st_mtime)

    def _build(self, anchors: list[str] | None = None, *, via_file: bool = False) -> ssl.SSLContext:
        return build_context(
            cert_file=self._cert_file,
            key_file=self._key_file,
            anchors=anchors if anchors is not None else self._index.trust_anchors(now=self._clock()),
            via_file=via_file,
        )

    def current(self) -> ssl.SSLContext:
        """The context for the next handshake, rebuilt if the pins or server files changed.

        If a rebuild fails (a server certificate half-written during rotation), the previous
        context keeps serving and the rebuild is retried on the next handshake.
        """
        # What this handshake gets: a background build started below swaps in for the next ones.
        context = self._current
        try:
            stamp = self._current_stamp()
            if stamp != self._stamp and self._building is None:
                anchors = self._index.trust_anchors(now=self._clock())
                if len(anchors) <= self._inline_anchors or not self._synced_store:
                    synced = self._index.synced
                    context = self._current = self._build(anchors)
                    self._stamp, self._synced_store = stamp, synced
                else:
                    self._building = stamp
                    threading.Thread(
                        target=self._build_in_background,
                        args=(stamp, anchors),
                        name="trust-store",
                        daemon=True,
                    ).start()
        except (OSError, ssl.SSLError, ValueError):
            pass
        return context

    def _build_in_background(self, stamp: _Stamp, anchors: list[str]) -> None:
        """Swap the new context in when ready; a change meanwhile starts the next build on the
        next handshake (the stamp differs again). Reference assignments are atomic."""
        try:
            self._current = self._build(anchors, via_file=True)
            self._stamp = stamp
        except (OSError, ssl.SSLError, ValueError) as error:
            logger.warning(
                "trust store rebuild failed (%s); retrying on the next handshake", type(error).__name__
            )
        finally:
            self._building = None

    def _on_hello(self, ssl_object: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        ssl_object.context = self.current()
