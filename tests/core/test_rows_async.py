"""``core.rows`` reads skip ``ensure_connection`` when connected, but still refuse, as it
does, to run in a thread running an event loop."""

from __future__ import annotations

import asyncio
import os

import pytest
from django.core.exceptions import SynchronousOnlyOperation
from django.db import connections

from saleor_crm_plugin.core.rows import RowReader
from saleor_crm_plugin.customers.models import Customer

pytestmark = pytest.mark.django_db


def test_reads_refuse_an_event_loops_thread_as_django_does(monkeypatch) -> None:
    """Even where the loop's context already has a connection (opened while Django allowed
    it, ``DJANGO_ALLOW_ASYNC_UNSAFE``): its reads refuse once that is no longer allowed."""
    read = RowReader(Customer).fetch
    outcomes = []

    async def in_loop() -> None:
        connection = connections["default"]  # this context's own (``asgiref.Local``)
        monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        try:
            connection.ensure_connection()
            assert connection.connection is not None
            outcomes.append(len(read("t.id = %s", [0])))  # allowed, as Django allows it
            monkeypatch.delenv("DJANGO_ALLOW_ASYNC_UNSAFE")
            with pytest.raises(SynchronousOnlyOperation):
                read("t.id = %s", [0])
            outcomes.append("refused")
        finally:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
            connection.close()
            monkeypatch.delenv("DJANGO_ALLOW_ASYNC_UNSAFE")

    asyncio.run(in_loop())
    assert outcomes == [0, "refused"]
    assert read("t.id = %s", [0]) == []  # the test's own connection reads as before
