"""``version_stamp`` (inside every event's version key) is ``strftime``'s text, made by
``isoformat`` where the two agree (years from 1000 on) and by ``strftime`` before."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from saleor_crm_plugin.core.timeutils import version_stamp


def _strftime(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def test_version_stamp_is_strftimes_text() -> None:
    rng = random.Random(8)
    zones = [UTC, ZoneInfo("Europe/Paris"), ZoneInfo("America/St_Johns"), timezone(timedelta(0))]
    values = [
        datetime(2026, 12, 1, 14, 0, tzinfo=UTC),
        datetime(2026, 12, 1, 14, 0, 0, 1, tzinfo=UTC),
        datetime(1000, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=-1))),  # 1000 in UTC
        datetime(1000, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),  # 999 in UTC
        datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1, 1, 1, 5, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Paris")),
    ]
    for _ in range(2000):
        values.append(
            datetime(
                rng.randint(1, 9998),
                rng.randint(1, 12),
                rng.randint(1, 28),
                rng.randint(0, 23),
                rng.randint(0, 59),
                rng.randint(0, 59),
                rng.choice([0, rng.randint(0, 999_999)]),
                tzinfo=rng.choice(zones),
            )
        )
    for value in values:
        assert version_stamp(value) == _strftime(value), value
    assert version_stamp(values[4]) == "999-12-31T23:59:59.999999"  # strftime does not pad
    assert version_stamp(values[0]) == "2026-12-01T14:00:00.000000"
