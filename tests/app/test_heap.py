"""App processes settle their heap at start (``core/heap.py``); plugin mode never does."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator

import pytest
from django.test import override_settings

from saleor_crm_plugin.core import heap


@pytest.fixture
def restore_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restore_collector")
def test_settle_freezes_and_raises_the_young_threshold() -> None:
    gc.set_threshold(700, 10, 10)
    kept = object()
    holder = [kept]  # a container alive now: frozen, never walked again
    with override_settings(CRM_GC_YOUNG_THRESHOLD=12345):
        assert heap.settle() is True
    assert gc.get_threshold() == (12345, 10, 10)
    assert gc.get_freeze_count() > 0
    assert not any(o is holder for o in gc.get_objects())  # frozen objects are not tracked
    # Cycles made afterwards are still collected.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1


@pytest.mark.usefixtures("restore_collector")
def test_zero_leaves_the_collector_alone() -> None:
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    with override_settings(CRM_GC_YOUNG_THRESHOLD=0):
        assert heap.settle() is False
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


@pytest.mark.usefixtures("restore_collector")
def test_celery_worker_signals_settle_the_heap() -> None:
    from celery import signals

    import saleor_crm_plugin.app.celery  # noqa: F401  (connects the receivers)

    gc.set_threshold(700, 10, 10)
    with override_settings(CRM_GC_YOUNG_THRESHOLD=4321):
        signals.worker_process_init.send(sender=None)
        assert gc.get_threshold() == (4321, 10, 10)
        gc.set_threshold(700, 10, 10)
        signals.worker_init.send(sender=None)
        assert gc.get_threshold() == (4321, 10, 10)


def test_wsgi_module_settles_the_heap_with_the_schema_built() -> None:
    code = (
        "import gc, sys\n"
        "from saleor_crm_plugin.app import wsgi\n"
        "assert 'saleor_crm_plugin.graphql.api' in sys.modules\n"
        "print(gc.get_threshold()[0], gc.get_freeze_count() > 0)\n"
    )
    env = {
        "DJANGO_SETTINGS_MODULE": "saleor_crm_plugin.app.settings",
        "CRM_GC_YOUNG_THRESHOLD": "2222",
        "SECRET_KEY": "test",
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["2222", "True"]
