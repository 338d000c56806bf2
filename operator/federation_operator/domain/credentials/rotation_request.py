"""A rotation request: the `federation.ampora.io/rotate` annotation `kubectl federation rotate` sets.

`inbound:<nonce>`, `outbound:<nonce>` or `inbound,outbound:<nonce>`. The nonce names the request,
so a request already carried out is recognised and never carried out twice.
"""

from dataclasses import dataclass
from typing import Final

from federation_operator.domain import api

ROTATE_INBOUND: Final = "inbound"

ROTATE_OUTBOUND: Final = "outbound"


class InvalidRotation(ValueError):
    pass


@dataclass(frozen=True)
class RotationRequest:
    inbound: bool
    outbound: bool
    nonce: str


def rotation_value(*, inbound: bool, outbound: bool, nonce: str) -> str:
    """The annotation `kubectl federation rotate` sets: `inbound:<nonce>`, `outbound:<nonce>`, or both."""
    sides = [side for side, wanted in ((ROTATE_INBOUND, inbound), (ROTATE_OUTBOUND, outbound)) if wanted]
    if not sides:
        raise InvalidRotation("choose inbound, outbound or both")
    return ",".join(sides) + ":" + nonce


def parse_rotation(value: str | None) -> RotationRequest | None:
    if value is None:
        return None
    sides_text, _, nonce = value.partition(":")
    sides = {side.strip() for side in sides_text.split(",") if side.strip()}
    if not sides or not sides <= {ROTATE_INBOUND, ROTATE_OUTBOUND}:
        raise InvalidRotation(
            f"annotation {api.ANNOTATION_ROTATE}={value!r} is not inbound:<nonce>, outbound:<nonce> "
            "or inbound,outbound:<nonce>"
        )
    return RotationRequest(
        inbound=ROTATE_INBOUND in sides, outbound=ROTATE_OUTBOUND in sides, nonce=nonce or value
    )
