"""``core.rows``' JSON columns decoded by orjson (``_json_from_db``): the same values as
Django's ``JSONField.from_db_value`` (the old converter, kept here as the oracle), for the
text PostgreSQL writes and for what orjson would read differently or refuse."""

from __future__ import annotations

import json

import pytest
from django.db import connection, models

from saleor_crm_plugin.core.rows import RowReader, _faster, _json_from_db
from saleor_crm_plugin.customers.models import Customer
from tests.json_values import same_value

FIELD = Customer._meta.get_field("metadata")
COLUMN = FIELD.get_col("t")

TEXTS = [
    '{"email": 1733011200123456, "first_name": 1733011200123457}',
    '{"a": "é€😀 \\u2028 tab\\there \\"quoted\\" back\\\\slash"}',
    '["size:xl", "color:red"]',
    "[0.1, -0.0, 0.0, 1e16, 1.5e-7, 1e308, 5e-324, 123456.789, 1.0, -2.5, 1E+2]",
    "[9223372036854775807, -9223372036854775808, 18446744073709551615]",
    # Beyond 64 bits: orjson would give floats, json.loads ints.
    "[18446744073709551616, -9223372036854775809, 123456789012345678901234567890]",
    "[0.1000000000000000055511151231257827021181583404541015625]",
    '{"nested": {"list": [true, false, null, [], {}]}}',
    '{"dup": 1, "dup": 2}',
    "null",
    '"just a string"',
    "12",
    "  [1]  ",
    # Not JSON: the converter hands the text back as Django's does.
    "not json",
    "[NaN, Infinity, -Infinity]",
    "[1e400]",
    "",
    "\ufeff[1]",
    "[1,]",
]


@pytest.mark.parametrize("text", [*TEXTS, None], ids=range(len(TEXTS) + 1))
def test_same_value_as_django(text: str | None) -> None:
    old = FIELD.from_db_value(text, COLUMN, connection)
    new = _json_from_db(text, COLUMN, connection)
    assert same_value(new, old), (new, old)


def test_only_plain_json_fields_take_it() -> None:
    assert _faster(FIELD.from_db_value) is _json_from_db

    class Decoder(json.JSONDecoder):
        pass

    with_decoder = models.JSONField(decoder=Decoder)
    converter = with_decoder.from_db_value
    assert _faster(converter) is converter
    other = Customer._meta.get_field("email").get_db_converters(connection)
    assert [_faster(f) for f in other] == other


@pytest.mark.django_db
def test_reader_reads_what_the_orm_reads() -> None:
    from tests.graphql.conftest import make_customer

    customer = make_customer(1)
    for value in (
        {"big": 2**70, "float": 0.1, "text": "é😀", "list": [1, None, True]},
        {"versions": {"email": 1733011200123456}},
        {},
    ):
        Customer.objects.filter(pk=customer.pk).update(metadata=value, field_versions=value)
        (read,) = RowReader(Customer).fetch("t.id = %s", [customer.pk])
        orm = Customer.objects.get(pk=customer.pk)
        assert same_value(read.metadata, orm.metadata)
        assert same_value(read.field_versions, orm.field_versions)
