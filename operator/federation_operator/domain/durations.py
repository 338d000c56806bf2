"""Go-style durations as Kubernetes users write them ("2160h", "30s", "1h30m", "500ms")."""

import re
from datetime import timedelta
from typing import Final

_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART_RE: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_WHOLE_RE: Final = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$")


class InvalidDuration(ValueError):
    pass


def parse_duration(text: str) -> timedelta:
    """Parse a positive duration made of `<number><unit>` parts, units ms, s, m, h."""
    if not _WHOLE_RE.match(text):
        raise InvalidDuration(f"invalid duration {text!r}: use e.g. 2160h, 30s, 1h30m, 500ms")
    seconds = sum(float(number) * _UNITS[unit] for number, unit in _PART_RE.findall(text))
    if seconds <= 0:
        raise InvalidDuration(f"invalid duration {text!r}: must be positive")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling in hours, minutes and seconds, as Go prints it."""
    total = round(value.total_seconds() * 1000)
    hours, rest = divmod(total, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    if seconds or millis:
        parts.append(f"{seconds}.{millis:03d}".rstrip("0").rstrip(".") + "s")
    return "".join(parts) or "0s"
