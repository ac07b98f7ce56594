"""``core.bulk._copy_text`` against the implementation it replaced, byte for byte.

The new text path skips the NUL join/count/split for text columns holding nothing to escape,
lays the rows out by slice assignment and one join, and takes the columns' kinds (and the
finite/aware checks) from ``prepared_columns`` (``_Prepared.known``). The reference below is
the previous code, verbatim: every generated block (all column kinds, None, escapes, NULs,
unicode, lone surrogates, enums, JSON text, lists, floats, naive datetimes, mixed kinds) must
give the same bytes, or the same refusal (None) that sends the rows to psycopg's
``write_row``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from saleor_crm_plugin.core import bulk
from saleor_crm_plugin.loyalty.models import (
    EntryKind,
    EntrySource,
    LedgerEntry,
    LotStatus,
    PointLot,
)

_NONE = type(None)


def _reference_copy_column(kind: type, values: list[Any]) -> list[str] | None:
    """``_copy_column`` as it was before (the NUL join, count, escape and split for text)."""
    if kind is str:
        joined = "\x00".join(values)
        if joined.count("\x00") != len(values) - 1:
            return None
        return bulk._escaped(joined, bulk._COPY_ESCAPES).split("\x00")
    if kind is int:
        return bulk._distinct_texts(values)
    if kind is bool:
        return list(map(bulk._COPY_BOOL, values))
    if kind is Decimal:
        return bulk._distinct_texts(values) if all(map(Decimal.is_finite, values)) else None
    if kind is datetime:
        return None if None in set(map(bulk._TZINFO, values)) else bulk._distinct_texts(values)
    return None


def _reference_copy_text(by_column: list[Sequence[Any]]) -> bytes | None:
    """``_copy_text`` as it was before (kinds from each column, ``zip`` and a join per row)."""
    texts: list[Sequence[str]] = []
    for column in by_column:
        kinds = bulk._text_kinds(set(map(type, column)))
        if _NONE not in kinds:
            if len(kinds) != 1:
                if not column:
                    texts.append(())
                    continue
                return None
            converted = _reference_copy_column(next(iter(kinds)), list(column))
            if converted is None:
                return None
            texts.append(converted)
            continue
        kinds.discard(_NONE)
        if not kinds:
            texts.append([bulk._COPY_NULL] * len(column))
            continue
        if len(kinds) != 1:
            return None
        converted = _reference_copy_column(kinds.pop(), [v for v in column if v is not None])
        if converted is None:
            return None
        following = iter(converted).__next__
        texts.append([bulk._COPY_NULL if v is None else following() for v in column])
    if not texts or not texts[0]:
        return None
    try:
        return ("\n".join(map("\t".join, zip(*texts, strict=True))) + "\n").encode()
    except UnicodeEncodeError:
        return None


_CHARS = ["a", "Z", "0", " ", ",", '"', "{", "}", "N", "\\", "\t", "\n", "\r", "é", "€", "😀"]
_ZONES = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]


def _text(rng: random.Random, *, plain: bool) -> str:
    chars = [*_CHARS[:9], "é", "€", "😀"] if plain else _CHARS
    text = "".join(rng.choice(chars) for _ in range(rng.randrange(0, 8)))
    if not plain and rng.random() < 0.03:
        text += rng.choice(["\x00", "\ud800"])  # refused by COPY text / by encoding
    return text


def _value(rng: random.Random, kind: str) -> Any:
    if kind in ("str", "plain"):
        return _text(rng, plain=kind == "plain")
    if kind == "int":
        return rng.choice([0, -1, 7, 2**40, -(2**62), rng.randrange(10**6)])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "decimal":
        if rng.random() < 0.03:
            return Decimal(rng.choice(["NaN", "Infinity", "-Infinity"]))
        return rng.choice([Decimal("1.0"), Decimal("1.00"), Decimal("-0"), Decimal("1E+3")]) + (
            Decimal(rng.randrange(10**5)) / 100
        )
    if kind == "datetime":
        moment = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(10**4))
        moment = moment.replace(microsecond=rng.choice([0, 1, 999999]))
        if rng.random() < 0.03:
            return moment.replace(tzinfo=None)  # naive: written row by row
        return moment.astimezone(rng.choice(_ZONES))
    if kind == "utc":  # a few instants, repeated, some with ``fold`` set
        moment = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(20))
        return moment.replace(fold=rng.randrange(2), microsecond=rng.choice([0, 5]))
    if kind == "text_enum":
        return rng.choice([*LotStatus, *EntryKind, "plain"])
    if kind == "int_enum":
        return rng.choice([*bulk.enum.IntEnum("Link", "A B"), 3])
    if kind == "json":
        return rng.choice(["[]", "{}", '{"a": "\\t"}'])
    if kind == "list":
        return [rng.randrange(3)]
    if kind == "float":
        return rng.random()
    raise AssertionError(kind)


_KINDS = [
    "str", "plain", "plain", "int", "bool", "decimal", "datetime", "utc", "utc", "text_enum",
    "int_enum", "json", "list", "float",
]  # fmt: skip


def _column(rng: random.Random, rows: int) -> list[Any]:
    kind = rng.choice(_KINDS)
    nulls = rng.choice([0.0, 0.0, 0.3, 1.0])
    column = [None if rng.random() < nulls else _value(rng, kind) for _ in range(rows)]
    if rng.random() < 0.05 and column:  # another kind slipped in
        column[rng.randrange(rows)] = _value(rng, rng.choice(_KINDS))
    return column


def test_copy_text_is_the_previous_bytes_on_generated_columns():
    rng = random.Random(15)
    written = refused = 0
    for _ in range(6000):
        rows = rng.choice([0, 1, 2, 3, 7, 20])
        columns = [_column(rng, rows) for _ in range(rng.randrange(1, 7))]
        if rng.random() < 0.5:
            columns = [tuple(column) for column in columns]  # as ``zip`` gives them
        expected = _reference_copy_text(columns)
        assert bulk._copy_text(columns) == expected, columns
        written += expected is not None
        refused += expected is None
    assert written > 1000 and refused > 1000  # both outcomes well covered


def test_unequal_columns_are_refused_as_zip_refused_them():
    with pytest.raises(ValueError):
        _reference_copy_text([["a", "b"], [1]])
    with pytest.raises(ValueError):
        bulk._copy_text([["a", "b"], [1]])


def _lots(rng: random.Random, count: int) -> list[PointLot]:
    return [
        PointLot(
            account_id=rng.randrange(1, 50),
            key=_text(rng, plain=rng.random() < 0.8) + str(n),
            source=rng.choice([*EntrySource, "order"]),
            source_id=_text(rng, plain=True),
            order_id=_text(rng, plain=rng.random() < 0.9),
            proportional=rng.random() < 0.5,
            status=rng.choice([*LotStatus, "pending"]),
            points=rng.randrange(-(10**6), 10**6),
            base_points=rng.randrange(100),
            multiplier=Decimal(rng.choice(["1", "1.0", "1.500", "-0", "2E+1", "0.001"])),
            revision=rng.randrange(3),
            earned_at=_value(rng, "datetime").replace(tzinfo=UTC),
            confirm_after=None if rng.random() < 0.5 else _value(rng, "datetime"),
            created_at=_value(rng, "datetime").replace(tzinfo=rng.choice(_ZONES)),
        )
        for n in range(count)
    ]


def _entries(rng: random.Random, count: int) -> list[LedgerEntry]:
    return [
        LedgerEntry(
            account_id=rng.randrange(1, 50),
            lot_id=None if rng.random() < 0.3 else rng.randrange(1, 10**9),
            kind=rng.choice([*EntryKind]),
            source=rng.choice([*EntrySource]),
            source_id=_text(rng, plain=True),
            points=rng.randrange(-50, 50),
            reason=_text(rng, plain=rng.random() < 0.7),
            idempotency_key=f"k{n}",
            data=rng.choice([{}, {}, {"base": 3, "was": "\t"}, [1, "x"], {"m": "1.5"}]),
            created_at=_value(rng, "datetime").replace(tzinfo=UTC),
        )
        for n in range(count)
    ]


@pytest.mark.filterwarnings("ignore:DateTimeField .* received a naive datetime:RuntimeWarning")
@pytest.mark.parametrize("make", [_lots, _entries])
def test_prepared_kinds_give_the_bytes_of_a_fresh_pass(make):
    """Through ``prepared_columns`` (the kinds it records): the same block as the previous
    code on the same columns as a plain list, for generated point lots and ledger entries."""
    rng = random.Random(150)
    model = make(rng, 1)[0]._meta.model
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    used = 0
    for _ in range(300):
        rows = make(rng, rng.choice([1, 2, 5, 30]))
        prepared = bulk.prepared_columns(rows, fields, json_text=True)
        assert isinstance(prepared, bulk._Prepared)
        used += len(prepared.known)
        expected = _reference_copy_text(list(prepared))
        assert bulk._copy_text(prepared) == expected
        # A column swapped in after preparation is not taken for the recorded one.
        index = rng.randrange(len(prepared))
        prepared[index] = [float(n) for n in range(len(rows))]
        assert bulk._copy_text(prepared) == _reference_copy_text(list(prepared)) is None
    assert used > 300 * 5  # most columns came with their kinds


def test_prepared_columns_is_still_a_list_of_the_same_columns():
    rng = random.Random(1500)
    rows = _lots(rng, 12)
    fields = [f for f in PointLot._meta.concrete_fields if not f.primary_key]
    prepared = bulk.prepared_columns(rows, fields, extra_pk=True, json_text=True)
    assert isinstance(prepared, list)
    assert len(prepared) == len(fields) + 1
    for index, (column, kinds) in prepared.known.items():
        assert column is prepared[index]
        assert kinds == bulk._text_kinds(set(map(type, column)))


def _reference_datetime_elements(values: list[Any]) -> list[str] | None:
    """``_element_texts``' datetime branch as it was before (``str`` of every value)."""
    if None in set(map(bulk._TZINFO, values)):
        return None
    return ('"' + '"\x00"'.join(map(str, values)) + '"').split("\x00")


def test_utc_texts_are_str_of_each_value_through_memo_replacements(monkeypatch):
    """The UTC memo (``_utc_texts``) against ``str``: generated columns of UTC datetimes, some
    equal, some with ``fold`` set, mixed with other offsets and naive values (which take the
    previous paths), COPY text and array literals both, with the memo replaced every few
    calls (a small ``_UTC_TEXTS_MAX``)."""
    monkeypatch.setattr(bulk, "_UTC_TEXTS_MAX", 50)
    monkeypatch.setattr(bulk, "_UTC_TEXTS", {})
    rng = random.Random(15015)
    memo_hits = 0
    for _ in range(3000):
        values = [_value(rng, "utc") for _ in range(rng.choice([1, 3, 10, 40]))]
        if rng.random() < 0.3:
            values[rng.randrange(len(values))] = _value(rng, "datetime")
        if rng.random() < 0.1:  # an equal instant at another offset
            values.append(values[0].astimezone(_ZONES[1]))
        memo_hits += len(set(values) & set(bulk._UTC_TEXTS))
        assert bulk._element_texts(datetime, values) == _reference_datetime_elements(values)
        assert bulk._copy_column(datetime, values) == _reference_copy_column(datetime, values)
        assert bulk._copy_text([values]) == _reference_copy_text([values])
        assert len(bulk._UTC_TEXTS) <= 50
        assert all(str(key) == text for key, text in bulk._UTC_TEXTS.items())
    assert memo_hits > 1000
