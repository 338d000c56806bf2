from datetime import UTC, datetime, timedelta, timezone

import pytest

from federation_operator.domain.times import parse_rfc3339, rfc3339


def test_rfc3339_is_utc_seconds_with_z() -> None:
    moment = datetime(2026, 11, 28, 13, 0, 5, 999, tzinfo=timezone(timedelta(hours=1)))
    assert rfc3339(moment) == "2026-11-28T12:00:05Z"


@pytest.mark.parametrize("value", [None, "", "yesterday", 42, "2026-13-01T00:00:00Z"])
def test_unreadable_timestamps_are_none_not_errors(value: object) -> None:
    assert parse_rfc3339(value) is None


def test_round_trip_and_naive_means_utc() -> None:
    moment = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert parse_rfc3339(rfc3339(moment)) == moment
    assert parse_rfc3339("2026-11-28T12:00:00") == moment
