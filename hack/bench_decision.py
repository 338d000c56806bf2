"""The federation server's auth decision at N peers against 10, each call's inputs built as a request
builds them.

    python hack/bench_decision.py [--peers 10000] [--rounds 5] [--calls 20000]

(`hack/bench_scale.py --index-server` runs the same timing after its memory and readiness figures.)

A request on the direct-TLS listener hands the server two objects made for that request alone:
the client certificate's DER (`ssl_object.getpeercert(binary_form=True)` returns a new bytes
object) and the Authorization header's text (aiohttp's parser decodes it per request). From them
`clientcert.resolve` computes the thumbprint (SHA-256 of the DER) and `decision.decide` parses the
bearer token, asks the rate limiter and `PeerIndex.authenticate` (server/app.py `_answer`).

Every timed call here builds both from the caller's number alone, the same way on both sides: the
DER is one real certificate's bytes with the caller's number in its last four bytes (each peer
pins the SHA-256 of exactly those bytes), the header is `Bearer ` + a 43-character token ending
in the caller's number (each peer's status accepts that token's hash). Nothing per caller is read
from a prebuilt list: the only memory that grows with the number of peers is the server's own.

Loops, each the best of `--rounds` rounds of `--calls` calls (this thread's CPU time, the two
sides and all loops taking turns in every round), the callers in a scattered order:
- `wire`: building the DER and the header only (the floor every other loop includes);
- `decide`: wire + `resolve` + `decide`: the decision as `_answer` runs it;
- `inputs`: wire + `thumbprint_of_der` + `parse_bearer`: what `authenticate` is given;
- `authenticate`: inputs + `PeerIndex.authenticate`;
- `unpinned`: inputs + `authenticate` for a certificate no peer pins (rotating as well).
Reported: decide - wire (the decision from the wire's bytes) and authenticate - inputs (the
index's lookup and comparison alone), each at N peers over the same 10 callers, over 1,024
rotating callers and over all N, against a server of 10 peers serving its 10 callers. Only
public functions of the server are called, so a snapshot of older code (`PYTHONPATH`) runs the
same loops.
"""

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from federation_operator.domain import tokens
from federation_operator.domain.certs import issue_certificate, thumbprint_of_der
from federation_operator.server.clientcert import CertSourceConfig, der_from_pem, resolve
from federation_operator.server.decision import ROUTE_PING, decide
from federation_operator.server.index import PeerIndex, parse_bearer
from federation_operator.server.ratelimit import FailureLimiter

NAMESPACE: Final = "default"
Loop = Callable[[], None]
SMALL: Final = 10
# A prime coprime with every size used here: k -> k * STEP % count visits every caller once
# per `count` calls, far apart in the index.
STEP: Final = 7919
# 37 base64url characters; the caller's number (6 digits) completes the 43 of a token.
TOKEN_HEAD: Final = "Zq3vN0pX9kLr2Tb7HwYc4Ms8Ud1Ge5Jf6Ai0R"
SOURCE: Final = "127.0.0.1"
STRANGERS: Final = 1 << 24  # added to a caller's number: a certificate no peer pins


def certificate_der_head() -> bytes:
    """A real ECDSA client certificate's DER without its last four bytes (part of the signature)."""
    issued = issue_certificate(subject="bench", validity=timedelta(days=1), now=datetime.now(UTC))
    return der_from_pem(issued.info.pem)[:-4]


def _token_text(number: int) -> str:
    text = f"{TOKEN_HEAD}{number:06d}"
    assert tokens.is_token(text), "a token is 43 base64url characters"
    return text


def peer_objects(peers: int, der_head: bytes) -> list[dict[str, Any]]:
    """FederationPeers shaped like the operator's: caller `n`'s certificate pinned by thumbprint,
    its token's hash accepted in status."""
    objects = []
    for number in range(peers):
        thumbprint = thumbprint_of_der(der_head + number.to_bytes(4, "big"))
        digest = tokens.hash_token(tokens.SecretText(_token_text(number)))
        objects.append(
            {
                "apiVersion": "federation.ampora.io/v1alpha1",
                "kind": "FederationPeer",
                "metadata": {"namespace": NAMESPACE, "name": f"peer-{number:05d}"},
                "spec": {
                    "endpoint": "https://127.0.0.1:9",
                    "remoteCertificates": [{"thumbprint": thumbprint}],
                },
                "status": {"reachability": "Degraded", "inbound": {"acceptedHashes": [{"hash": digest}]}},
            }
        )
    return objects


@dataclass(frozen=True)
class Timing:
    """Best microseconds per call of each loop (see the module docstring)."""

    wire: float
    decide: float
    inputs: float
    authenticate: float
    unpinned: float

    @property
    def decision(self) -> float:
        return self.decide - self.wire

    @property
    def lookup(self) -> float:
        return self.authenticate - self.inputs


def loops(*, index: PeerIndex, peers: int, callers: int, der_head: bytes, calls: int) -> dict[str, Loop]:
    """The loops over `callers` of the index's `peers` callers (at most `peers`), by name."""
    count = min(callers, peers)
    now = datetime.now(UTC)
    monotonic = time.monotonic()
    config = CertSourceConfig()
    no_headers: dict[str, list[str]] = {}

    def wire() -> None:
        for k in range(calls):
            number = k * STEP % count * STEP % peers
            der = der_head + number.to_bytes(4, "big")
            header = f"Bearer {TOKEN_HEAD}{number:06d}"
        assert len(der) > 4
        assert header

    def decided() -> None:
        limiter = FailureLimiter()
        for k in range(calls):
            number = k * STEP % count * STEP % peers
            der = der_head + number.to_bytes(4, "big")
            header = f"Bearer {TOKEN_HEAD}{number:06d}"
            presented = resolve(
                config=config, remote=SOURCE, headers=no_headers, over_tls=True, tls_der=der, now=now
            )
            decision = decide(
                index=index,
                limiter=limiter,
                presented=presented,
                authorization=header,
                source=SOURCE,
                route=ROUTE_PING,
                now=now,
                monotonic=monotonic,
            )
        assert decision.status == 200, decision

    def inputs() -> None:
        for k in range(calls):
            number = k * STEP % count * STEP % peers
            der = der_head + number.to_bytes(4, "big")
            header = f"Bearer {TOKEN_HEAD}{number:06d}"
            thumbprint = thumbprint_of_der(der)
            token = parse_bearer(header)
        assert thumbprint
        assert token is not None

    def authenticated() -> None:
        for k in range(calls):
            number = k * STEP % count * STEP % peers
            der = der_head + number.to_bytes(4, "big")
            header = f"Bearer {TOKEN_HEAD}{number:06d}"
            thumbprint = thumbprint_of_der(der)
            result = index.authenticate(thumbprint=thumbprint, token=parse_bearer(header), now=now)
        assert result.ok, result

    def unpinned() -> None:
        for k in range(calls):
            number = k * STEP % count * STEP % peers
            der = der_head + (STRANGERS + number).to_bytes(4, "big")
            header = f"Bearer {TOKEN_HEAD}{number:06d}"
            thumbprint = thumbprint_of_der(der)
            result = index.authenticate(thumbprint=thumbprint, token=parse_bearer(header), now=now)
        assert not result.ok, result

    return {
        "wire": wire,
        "decide": decided,
        "inputs": inputs,
        "authenticate": authenticated,
        "unpinned": unpinned,
    }


def time_sides(sides: list[dict[str, Loop]], *, calls: int, rounds: int) -> list[Timing]:
    """Best CPU time per call (microseconds) of every loop of every side. The sides and loops
    take turns round after round, so a change in the machine's load hits each alike; the clock is
    this thread's CPU time, so time spent descheduled on the shared machine does not count."""
    best = [dict.fromkeys(side, float("inf")) for side in sides]
    for _ in range(rounds):
        for side, figures in zip(sides, best, strict=True):
            for name, loop in side.items():
                started = time.thread_time()
                loop()
                figures[name] = min(figures[name], (time.thread_time() - started) / calls * 1e6)
    return [Timing(**figures) for figures in best]


def build_index(peers: int, der_head: bytes) -> PeerIndex:
    index = PeerIndex()
    for obj in peer_objects(peers, der_head):
        index.upsert_peer(obj)
    index.mark_synced()
    return index


def report(*, peers: int, calls: int, rounds: int) -> None:
    """One line per caller mix: 10 peers (its 10 callers) against `peers` peers, and the ratios."""
    der_head = certificate_der_head()
    small_index = build_index(SMALL, der_head)
    big_index = build_index(peers, der_head)
    for callers in dict.fromkeys(min(callers, peers) for callers in (SMALL, 1024, peers)):
        small, big = time_sides(
            [
                loops(index=small_index, peers=SMALL, callers=SMALL, der_head=der_head, calls=calls),
                loops(index=big_index, peers=peers, callers=callers, der_head=der_head, calls=calls),
            ],
            calls=calls,
            rounds=rounds,
        )
        print(
            f"auth_decision_us callers={callers} "
            f"peers={SMALL} wire={small.wire:.2f} decide={small.decision:.2f} "
            f"authenticate={small.lookup:.2f} unpinned={small.unpinned - small.inputs:.2f} "
            f"peers={peers} wire={big.wire:.2f} decide={big.decision:.2f} "
            f"authenticate={big.lookup:.2f} unpinned={big.unpinned - big.inputs:.2f} "
            f"ratio decide={big.decision / small.decision:.2f} authenticate={big.lookup / small.lookup:.2f} "
            f"unpinned={(big.unpinned - big.inputs) / (small.unpinned - small.inputs):.2f} "
            f"ratio_with_inputs decide={big.decide / small.decide:.2f}",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--peers", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    report(peers=args.peers, calls=args.calls, rounds=args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
