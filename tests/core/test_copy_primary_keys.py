"""``core.bulk.insert_rows`` sets the ids it took from the sequence as ``row.pk = pk`` did
(``_set_primary_keys``: a store in the row's ``__dict__`` where the assignment is exactly that),
for new instances made every way the code base makes them, and keeps the assignment for any
class where it could be something else."""

from __future__ import annotations

import random
from typing import Any

import pytest
from django.db import connection

from saleor_crm_plugin.core import bulk
from saleor_crm_plugin.core.rows import new_instance
from saleor_crm_plugin.customers.models import Customer, Order
from saleor_crm_plugin.loyalty.models import LoyaltyAccount

pg_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL's")


def _customers(rng: random.Random, tag: str) -> list[Customer]:
    rows = []
    for n in range(rng.randrange(1, 9)):
        how = rng.randrange(3)
        if how == 0:
            row = Customer(email=f"{tag}{n}@example.com")
        elif how == 1:
            row = new_instance(Customer, email=f"{tag}{n}@example.com")
        else:
            row = Customer(email=f"{tag}{n}@example.com")
            del row.__dict__["id"]  # a key that is not there yet: added at the end
        rows.append(row)
    return rows


def _state(rows: list[Any]) -> list[Any]:
    return [
        [(key, value) for key, value in row.__dict__.items() if key != "_state"]
        + [row._state.adding, row._state.db]
        for row in rows
    ]


@pg_only
@pytest.mark.django_db
@pytest.mark.parametrize("seed", range(20))
def test_ids_are_set_as_the_assignment_set_them(seed: int, monkeypatch: Any) -> None:
    new = _customers(random.Random(seed), "new")
    bulk.insert_rows(Customer, new)
    monkeypatch.setattr(bulk, "_dict_settable", lambda cls, attname: False)
    old = _customers(random.Random(seed), "old")
    bulk.insert_rows(Customer, old)
    assert all(type(row.pk) is int for row in new)
    stored = Customer.objects.filter(email__startswith="new").values_list("email", "pk")
    assert {row.email: row.pk for row in new} == dict(stored)
    offset = old[0].pk - new[0].pk
    for row in old:
        row.__dict__["id"] -= offset
        row.__dict__["email"] = "new" + row.email.removeprefix("old")
        for name in ("created_at", "updated_at"):  # the time of each write
            row.__dict__[name] = None
    for row in new:
        for name in ("created_at", "updated_at"):
            row.__dict__[name] = None
    assert _state(new) == _state(old)


def test_only_the_plain_assignment_takes_the_dict() -> None:
    assert bulk._dict_settable(Customer, "id")
    assert bulk._dict_settable(Order, "id")
    pk = LoyaltyAccount._meta.pk
    assert bulk._dict_settable(LoyaltyAccount, pk.attname) == (not pk.is_relation)

    class Odd:  # not a model: its ``pk`` is whatever it is
        pk = None

    assert not bulk._dict_settable(Odd, "id")


@pg_only
@pytest.mark.django_db
def test_a_short_answer_still_fails_as_zip_did(monkeypatch: Any) -> None:
    rows = [Customer(email=f"s{n}@example.com") for n in range(3)]
    with pytest.raises(ValueError):
        bulk._set_primary_keys(rows, Customer._meta, [(1,), (2,)])
