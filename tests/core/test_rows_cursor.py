"""``core.rows`` reads past Django's cursor wrapper when it would do nothing but check and
translate errors: the checks and translations must be Django's, and execute wrappers and
query logging must still see every read."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from django.db import DatabaseError, ProgrammingError, connections, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from saleor_crm_plugin.core import rows
from saleor_crm_plugin.core.rows import RowReader
from saleor_crm_plugin.customers.models import Customer
from tests.graphql.conftest import make_customer

pytestmark = pytest.mark.django_db
connection = connections["default"]


def test_errors_are_djangos() -> None:
    with pytest.raises(ProgrammingError) as raised:  # django.db's, not psycopg's
        rows._select(connection, "SELECT no_such_column FROM saleor_crm_plugin_customer", [], False)
    assert isinstance(raised.value.__cause__, psycopg.errors.UndefinedColumn)


def test_a_broken_transaction_refuses_reads_as_django_does() -> None:
    make_customer(1)
    with transaction.atomic():
        with pytest.raises(DatabaseError), transaction.atomic(savepoint=False):
            rows._select(connection, "SELECT 1 / 0", [], False)
        assert connection.needs_rollback
        with pytest.raises(TransactionManagementError):
            RowReader(Customer).fetch("t.id = %s", [1])


def test_execute_wrappers_and_query_logging_see_every_read() -> None:
    customer = make_customer(1)
    seen: list[str] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        assert [c.pk for c in RowReader(Customer).fetch("t.id = %s", [customer.pk])] == [
            customer.pk
        ]
    assert len(seen) == 1 and "saleor_crm_plugin_customer" in seen[0]
    with CaptureQueriesContext(connection) as queries:
        RowReader(Customer).fetch("t.id = %s", [customer.pk])
    assert len(queries) == 1
    assert not connection.execute_wrappers and not connection.queries_logged
    assert [c.pk for c in RowReader(Customer).fetch("t.id = %s", [customer.pk])] == [customer.pk]
