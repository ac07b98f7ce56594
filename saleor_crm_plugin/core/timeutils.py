"""Aware datetimes from the shapes Saleor uses: ISO with offset, ``Z`` suffix, model values."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_datetime(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            result = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"Not a datetime: {value!r}") from exc
    else:
        raise ValueError(f"Not a datetime: {value!r}")
    if result.tzinfo is None:
        # Saleor runs with USE_TZ=True; a naive value can only be UTC.
        result = result.replace(tzinfo=UTC)
    return result.astimezone(UTC)


def isoformat(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def version_stamp(value: datetime) -> str:
    """Fixed-width UTC text that sorts like the instant it names (used inside version keys).

    ``strftime("%Y-%m-%dT%H:%M:%S.%f")``'s text: for years from 1000 on that is ``isoformat``
    with every microsecond digit, less its ``+00:00`` (half the CPU: ``strftime`` goes
    through a Python-level format rewrite, once per event); earlier years keep ``strftime``,
    whose ``%Y`` does not pad them to four digits."""
    utc = value.astimezone(UTC)
    if utc.year >= 1000:
        return utc.isoformat(timespec="microseconds")[:-6]
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%f")
