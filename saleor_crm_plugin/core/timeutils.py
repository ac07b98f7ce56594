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
    """Fixed-width UTC text that sorts like the instant it names (used inside version keys)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
