from datetime import timedelta

import pytest

from federation_operator.domain.durations import InvalidDuration, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2160h", timedelta(days=90)),
        ("30s", timedelta(seconds=30)),
        ("1h30m", timedelta(minutes=90)),
        ("500ms", timedelta(milliseconds=500)),
        ("1.5h", timedelta(minutes=90)),
    ],
)
def test_go_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "1d", "-1s", "0s", "1h 30m", "h"])
def test_invalid_or_non_positive_durations_are_refused_with_a_hint(text: str) -> None:
    with pytest.raises(InvalidDuration, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["2160h", "30s", "1h30m", "1m0.5s", "500ms"])
def test_formatting_round_trips(text: str) -> None:
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)
