"""RFM recompute, segment maps, history and reporting: every business rule of the domain.

A run scores one channel as of a moment (``as_of``):

* **Who**: customers (not erased) with at least one paid order in the channel up to ``as_of``.
  A paid order has ``paid_at`` set and a sale status (not draft, cancelled or expired).
* **R**: whole days from the last paid order to ``as_of``; **F**: paid orders in the frequency
  window (``CRM_RFM_FREQUENCY_WINDOW_DAYS``, default 365, 0 = lifetime); **M**: money kept from
  those orders (``Order.total_charged``, which Saleor already nets of refunds).
* **Scores**: quintile cut points of the channel's population (see ``scoring``), R inverted.
* **Segment**: the channel's R x F map (``segments``).

The PostgreSQL engine does all of it set-wise (temporary tables, one statement per step); the
Python engine is the same algorithm for SQLite (the demo) and the reference the SQL is tested
against. A full run aggregates every order of the channel; an incremental run re-aggregates only
customers whose inputs may have changed since the previous run (``_dirty_customers``), then
re-scores everyone, because cut points are population-wide. Both leave identical rows.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TextIO

from django.db import connection, transaction
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.utils import timezone

from saleor_crm_plugin.conf import crm_settings
from saleor_crm_plugin.customers.models import (
    NON_SALE_STATUSES,
    Customer,
    CustomerChannelStats,
    Order,
)
from saleor_crm_plugin.rfm import scoring
from saleor_crm_plugin.rfm.error_codes import RfmErrorCode
from saleor_crm_plugin.rfm.exceptions import RfmError
from saleor_crm_plugin.rfm.models import (
    CustomerRfm,
    RfmRun,
    RfmRunKind,
    RfmSegmentHistory,
    RfmSegmentMap,
)
from saleor_crm_plugin.rfm.segments import (
    SegmentMap,
    build_segment_map,
    default_segment_map,
    names_from_json,
)
from saleor_crm_plugin.writeback.models import MetadataWriteback
from saleor_crm_plugin.writeback.services import queue_private_metadata

SEGMENT_KEY = "crm.rfm_segment"
SCORES_KEY = "crm.rfm_scores"
# Orders projected shortly before the previous run started may have committed after its
# snapshot; re-aggregating their customers again costs little and closes that gap.
SNAPSHOT_MARGIN = timedelta(minutes=5)
NO_SEGMENT = ""


# -- channels and settings ---------------------------------------------------------------------


@dataclass(frozen=True)
class Channel:
    channel_id: str
    slug: str
    currency: str


def channels() -> list[Channel]:
    """Channels that have sales, from the per-channel stats (far smaller than the orders)."""
    rows = (
        CustomerChannelStats.objects.values("channel_id")
        .annotate(slug=Max("channel_slug"), currency=Max("currency"))
        .order_by("channel_id")
    )
    return [Channel(r["channel_id"], r["slug"] or "", r["currency"] or "") for r in rows]


def resolve_channel(channel: str) -> Channel:
    """A channel by Saleor id or slug; raises ``RfmError(CHANNEL_NOT_FOUND)``."""
    for known in channels():
        if channel in (known.channel_id, known.slug):
            return known
    raise RfmError(
        RfmErrorCode.CHANNEL_NOT_FOUND, f"No orders are known in channel '{channel}'.", "channel"
    )


def default_window_days() -> int | None:
    days = crm_settings.RFM_FREQUENCY_WINDOW_DAYS
    return days or None


def _check_window(window_days: int | None) -> int | None:
    if window_days is None or window_days == 0:
        return None
    if not isinstance(window_days, int) or window_days < 0:
        raise RfmError(
            RfmErrorCode.INVALID_WINDOW,
            "The frequency window is a whole number of days (0 = lifetime).",
            "frequency_window_days",
        )
    return window_days


def latest_paid_at(channel_id: str) -> datetime | None:
    """The newest paid order of the channel: the natural ``as_of`` for historical data."""
    return (
        Order.objects.filter(channel_id=channel_id, paid_at__isnull=False)
        .exclude(status__in=NON_SALE_STATUSES)
        .aggregate(last=Max("paid_at"))["last"]
    )


# -- segment maps ------------------------------------------------------------------------------


def get_segment_map(channel_id: str) -> SegmentMap:
    row = RfmSegmentMap.objects.filter(channel_id=channel_id).first()
    if row is None:
        return default_segment_map()
    return SegmentMap.from_json(row.cells, row.names)


def set_segment_map(
    channel_id: str, segments: Iterable[tuple[str, str, Iterable[str]]]
) -> SegmentMap:
    """Replace the channel's map. Validated first (every cell exactly once), so a bad map is
    rejected whole with an ``RfmError`` and the stored one stays. Scores are unaffected; the
    next run assigns segments with the new map (and records the moves in the history)."""
    segment_map = build_segment_map(segments)
    cells, names = segment_map.to_json()
    RfmSegmentMap.objects.update_or_create(
        channel_id=channel_id, defaults={"cells": cells, "names": names}
    )
    return segment_map


def reset_segment_map(channel_id: str) -> SegmentMap:
    RfmSegmentMap.objects.filter(channel_id=channel_id).delete()
    return default_segment_map()


# -- recompute ---------------------------------------------------------------------------------


@dataclass
class _RunContext:
    run: RfmRun
    previous: RfmRun | None
    segment_map: SegmentMap
    window_start: datetime | None
    timings: dict[str, float] = field(default_factory=dict)


def recompute(
    channel_id: str,
    *,
    full: bool = False,
    as_of: datetime | None = None,
    frequency_window_days: int | bool | None = False,
    engine: str | None = None,
    write_back: bool | None = None,
) -> RfmRun:
    """Score every customer of the channel; returns the committed run.

    Incremental unless ``full``, there is no previous run, or the previous run used another
    window or a later ``as_of`` (time only moves forward for an incremental run). One
    transaction: readers see the previous scores until the new ones are complete. Runs of the
    same channel are serialised by a lock. ``engine`` ("sql" or "python") is for tests and
    benchmarks; the default is SQL on PostgreSQL and Python elsewhere."""
    as_of = as_of or timezone.now()
    if timezone.is_naive(as_of):
        raise RfmError(RfmErrorCode.INVALID_AS_OF, "as_of needs a time zone.", "as_of")
    window = (
        default_window_days()
        if frequency_window_days is False
        else _check_window(frequency_window_days)  # type: ignore[arg-type]
    )
    engine = engine or ("sql" if connection.vendor == "postgresql" else "python")
    write_back = crm_settings.RFM_WRITEBACK if write_back is None else write_back
    started = time.perf_counter()
    with transaction.atomic():
        _lock_channel(channel_id)
        previous = RfmRun.objects.filter(channel_id=channel_id).order_by("-pk").first()
        incremental = (
            not full
            and previous is not None
            and previous.frequency_window_days == window
            and previous.as_of <= as_of
        )
        segment_map = get_segment_map(channel_id)
        cells, names = segment_map.to_json()
        slug, currency = _channel_labels(channel_id)
        run = RfmRun.objects.create(
            channel_id=channel_id,
            channel_slug=slug,
            currency=currency,
            kind=RfmRunKind.INCREMENTAL if incremental else RfmRunKind.FULL,
            as_of=as_of,
            frequency_window_days=window,
            segment_cells=cells,
            segment_names=names,
            started_at=timezone.now(),
        )
        ctx = _RunContext(
            run=run,
            previous=previous if incremental else None,
            segment_map=segment_map,
            window_start=as_of - timedelta(days=window) if window else None,
        )
        runner = _SqlEngine(ctx) if engine == "sql" else _PythonEngine(ctx)
        runner.execute(write_back=write_back)
        run.finished_at = timezone.now()
        run.duration_ms = int((time.perf_counter() - started) * 1000)
        run.save()
    run.timings = ctx.timings  # type: ignore[attr-defined]
    return run


def recompute_all(*, full: bool = False, as_of: datetime | None = None) -> list[RfmRun]:
    """Every channel with sales, each in its own transaction."""
    return [recompute(c.channel_id, full=full, as_of=as_of) for c in channels()]


def nightly_recompute() -> list[RfmRun]:
    """What the beat task runs: incremental per channel, full when the channel's last full
    run is older than ``CRM_RFM_FULL_RECOMPUTE_DAYS`` (a periodic full run bounds the cost of
    any input change the incremental rules could ever miss)."""
    every = crm_settings.RFM_FULL_RECOMPUTE_DAYS
    runs = []
    for channel in channels():
        last_full = (
            RfmRun.objects.filter(channel_id=channel.channel_id, kind=RfmRunKind.FULL)
            .order_by("-pk")
            .first()
        )
        full = (
            not every
            or last_full is None
            or last_full.started_at < timezone.now() - timedelta(days=every)
        )
        runs.append(recompute(channel.channel_id, full=full))
    return runs


def _channel_labels(channel_id: str) -> tuple[str, str]:
    row = (
        CustomerChannelStats.objects.filter(channel_id=channel_id)
        .values("channel_id")
        .annotate(slug=Max("channel_slug"), currency=Max("currency"))
        .order_by("channel_id")
        .first()
    )
    if row is None:  # stats not built (yet): any order of the channel names it
        order = (
            Order.objects.filter(channel_id=channel_id)
            .values("channel_slug", "currency")
            .order_by()
            .first()
        )
        return (order["channel_slug"], order["currency"]) if order else ("", "")
    return row["slug"] or "", row["currency"] or ""


def _lock_channel(channel_id: str) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"crm-rfm:{channel_id}"])


def _metadata_suffix(channel_slug: str, channel_id: str) -> str:
    return f".{channel_slug or channel_id}"


class _PythonEngine:
    """The algorithm in Python over the ORM: SQLite (the demo) and the reference in tests."""

    def __init__(self, ctx: _RunContext) -> None:
        self.ctx = ctx
        self.run = ctx.run

    def _orders(self) -> QuerySet[Order]:
        return (
            Order.objects.filter(
                channel_id=self.run.channel_id,
                customer__isnull=False,
                customer__erased_at__isnull=True,
                paid_at__isnull=False,
                paid_at__lte=self.run.as_of,
            )
            .exclude(status__in=NON_SALE_STATUSES)
            .order_by()
        )

    def _dirty(self) -> set[int] | None:
        prev = self.ctx.previous
        if prev is None:
            return None
        run = self.run
        since = prev.started_at - SNAPSHOT_MARGIN
        dirty: set[int] = set(
            Order.objects.filter(
                channel_id=run.channel_id, customer__isnull=False, projected_at__gte=since
            ).values_list("customer_id", flat=True)
        )
        dirty |= set(Customer.objects.filter(updated_at__gte=since).values_list("pk", flat=True))
        for row in CustomerRfm.objects.filter(channel_id=run.channel_id).select_related("customer"):
            if (
                row.customer.order_count != row.customer_order_count
                or row.customer.erased_at is not None
            ):
                dirty.add(row.customer_id)
        crossing = Q(paid_at__gt=prev.as_of, paid_at__lte=run.as_of)
        if self.ctx.window_start is not None:
            prev_start = prev.as_of - timedelta(days=run.frequency_window_days or 0)
            crossing |= Q(paid_at__gt=prev_start, paid_at__lte=self.ctx.window_start)
        dirty |= set(
            Order.objects.filter(channel_id=run.channel_id, customer__isnull=False)
            .filter(crossing)
            .values_list("customer_id", flat=True)
        )
        return dirty

    def execute(self, *, write_back: bool) -> None:
        ctx, run = self.ctx, self.run
        t0 = time.perf_counter()
        dirty = self._dirty()
        orders = self._orders()
        if dirty is not None:
            orders = orders.filter(customer_id__in=dirty)
        in_window = Q() if ctx.window_start is None else Q(paid_at__gt=ctx.window_start)
        metrics = {
            row["customer_id"]: row
            for row in orders.values("customer_id").annotate(
                last_paid_at=Max("paid_at"),
                frequency=Count("pk", filter=in_window),
                monetary=Sum("total_charged", filter=in_window),
                order_count=Max("customer__order_count"),
            )
        }
        existing = {
            row.customer_id: row for row in CustomerRfm.objects.filter(channel_id=run.channel_id)
        }
        scope = set(existing) if dirty is None else dirty & set(existing)
        gone = [existing[cid] for cid in scope if cid not in metrics]
        if gone:
            RfmSegmentHistory.objects.filter(
                channel_id=run.channel_id,
                to_run__isnull=True,
                customer_id__in=[r.customer_id for r in gone],
            ).update(to_run=run)
            CustomerRfm.objects.filter(pk__in=[r.pk for r in gone]).delete()
            for r in gone:
                del existing[r.customer_id]
        creates, updates = [], []
        for customer_id, m in metrics.items():
            values = {
                "channel_slug": run.channel_slug,
                "currency": run.currency,
                "last_paid_at": m["last_paid_at"],
                "frequency": m["frequency"],
                "monetary": Decimal(m["monetary"] or 0).quantize(Decimal("0.001")),
                "customer_order_count": m["order_count"],
            }
            row = existing.get(customer_id)
            if row is None:
                row = CustomerRfm(customer_id=customer_id, channel_id=run.channel_id, **values)
                creates.append(row)
                existing[customer_id] = row
            elif any(getattr(row, k) != v for k, v in values.items()):
                for k, v in values.items():
                    setattr(row, k, v)
                updates.append(row)
        CustomerRfm.objects.bulk_create(creates, batch_size=1000)
        CustomerRfm.objects.bulk_update(updates, list(_METRIC_FIELDS), batch_size=1000)
        run.recomputed_count = len(metrics)
        ctx.timings["metrics"] = time.perf_counter() - t0

        t1 = time.perf_counter()
        rows = list(existing.values())
        days = {r.customer_id: (run.as_of - r.last_paid_at).days for r in rows}
        r_cuts = scoring.cut_points(list(days.values()))
        f_cuts = scoring.cut_points([r.frequency for r in rows])
        m_cuts = scoring.cut_points([r.monetary for r in rows])
        run.recency_cuts = r_cuts
        run.frequency_cuts = f_cuts
        run.monetary_cuts = [str(c) for c in m_cuts]
        changed, moves, opened = [], [], []
        for row in rows:
            r = scoring.recency_score(days[row.customer_id], r_cuts)
            f = scoring.ascending_score(row.frequency, f_cuts)
            m = scoring.ascending_score(row.monetary, m_cuts)
            segment = ctx.segment_map.segment_of(r, f)
            if (row.r_score, row.f_score, row.m_score, row.segment) == (r, f, m, segment):
                continue
            if segment != row.segment:
                if row.segment:
                    moves.append(row.customer_id)
                opened.append(row.customer_id)
            row.r_score, row.f_score, row.m_score, row.segment = r, f, m, segment
            row.changed_run_id = run.pk
            changed.append(row)
        RfmSegmentHistory.objects.filter(
            channel_id=run.channel_id, to_run__isnull=True, customer_id__in=opened
        ).update(to_run=run)
        RfmSegmentHistory.objects.bulk_create(
            [
                RfmSegmentHistory(
                    customer_id=row.customer_id,
                    channel_id=run.channel_id,
                    segment=row.segment,
                    from_run=run,
                )
                for row in changed
                if row.customer_id in set(opened)
            ],
            batch_size=1000,
        )
        CustomerRfm.objects.bulk_update(
            changed, ["r_score", "f_score", "m_score", "segment", "changed_run_id"], batch_size=1000
        )
        run.customer_count = len(rows)
        run.changed_count = len(changed)
        run.moved_count = len(moves)
        ctx.timings["score"] = time.perf_counter() - t1

        t2 = time.perf_counter()
        if write_back and changed:
            users = dict(
                Customer.objects.filter(
                    pk__in=[r.customer_id for r in changed],
                    saleor_user_id__isnull=False,
                    erased_at__isnull=True,
                ).values_list("pk", "saleor_user_id")
            )
            for row in changed:
                user_id = users.get(row.customer_id)
                if user_id:
                    suffix = _metadata_suffix(row.channel_slug, row.channel_id)
                    queue_private_metadata(
                        user_id,
                        {
                            SEGMENT_KEY: row.segment,
                            SCORES_KEY: row.scores,
                            SEGMENT_KEY + suffix: row.segment,
                            SCORES_KEY + suffix: row.scores,
                        },
                    )
        ctx.timings["write_back"] = time.perf_counter() - t2


_METRIC_FIELDS = (
    "channel_slug",
    "currency",
    "last_paid_at",
    "frequency",
    "monetary",
    "customer_order_count",
)


class _SqlEngine:
    """The same algorithm as ``_PythonEngine``, set-wise in PostgreSQL.

    ``rfm_new`` holds every customer's metrics for this run (a full run aggregates all orders;
    an incremental one aggregates the dirty customers and copies the rest), ``rfm_changed`` the
    rows that differ from what is stored, scored. Only those are written."""

    def __init__(self, ctx: _RunContext) -> None:
        self.ctx = ctx
        self.run = ctx.run
        self.t = {
            "order": Order._meta.db_table,
            "customer": Customer._meta.db_table,
            "rfm": CustomerRfm._meta.db_table,
            "hist": RfmSegmentHistory._meta.db_table,
            "wb": MetadataWriteback._meta.db_table,
        }

    def _exec(self, cur: Any, label: str, sql: str, params: Any = None) -> int:
        """Execute; keep the statement's time (the benchmark prints them) and row count."""
        started = time.perf_counter()
        cur.execute(sql, params)
        self.ctx.timings[f"sql:{label}"] = time.perf_counter() - started
        return cur.rowcount

    def _params(self) -> dict[str, Any]:
        run = self.run
        prev = self.ctx.previous
        return {
            "channel": run.channel_id,
            "slug": run.channel_slug,
            "currency": run.currency,
            "as_of": run.as_of,
            "window_start": self.ctx.window_start,
            "run": run.pk,
            "non_sale": [str(status.value) for status in NON_SALE_STATUSES],
            "since": prev.started_at - SNAPSHOT_MARGIN if prev else None,
            "prev_as_of": prev.as_of if prev else None,
            "prev_window_start": (
                prev.as_of - timedelta(days=run.frequency_window_days)
                if prev and run.frequency_window_days
                else None
            ),
        }

    def _aggregate_sql(self, only_dirty: bool) -> str:
        t = self.t
        dirty = "AND o.customer_id IN (SELECT customer_id FROM rfm_dirty)" if only_dirty else ""
        return f"""
            SELECT o.customer_id,
                   max(o.paid_at) AS last_paid_at,
                   count(*) FILTER (WHERE %(window_start)s::timestamptz IS NULL
                                       OR o.paid_at > %(window_start)s) AS frequency,
                   coalesce(sum(o.total_charged) FILTER (
                       WHERE %(window_start)s::timestamptz IS NULL
                          OR o.paid_at > %(window_start)s), 0)::numeric(20, 3) AS monetary,
                   %(slug)s::varchar AS channel_slug,
                   %(currency)s::varchar AS currency,
                   max(c.order_count) AS customer_order_count
              FROM {t["order"]} o
              JOIN {t["customer"]} c ON c.id = o.customer_id AND c.erased_at IS NULL
             WHERE o.channel_id = %(channel)s
               AND o.paid_at IS NOT NULL AND o.paid_at <= %(as_of)s
               AND o.status <> ALL(%(non_sale)s)
               {dirty}
             GROUP BY o.customer_id
        """

    def execute(self, *, write_back: bool) -> None:
        ctx, run, t = self.ctx, self.run, self.t
        p = self._params()
        incremental = ctx.previous is not None
        with connection.cursor() as cur:
            if crm_settings.RFM_WORK_MEM:
                # One big aggregate and three sorts: let them run in memory, for this
                # transaction only.
                cur.execute("SELECT set_config('work_mem', %s, true)", [crm_settings.RFM_WORK_MEM])
            cur.execute("DROP TABLE IF EXISTS rfm_dirty, rfm_new, rfm_changed")
            t0 = time.perf_counter()
            if incremental:
                self._exec(
                    cur,
                    "dirty",
                    f"""
                    CREATE TEMP TABLE rfm_dirty ON COMMIT DROP AS
                    SELECT customer_id FROM {t["order"]}
                     WHERE channel_id = %(channel)s AND customer_id IS NOT NULL
                       AND projected_at >= %(since)s
                    UNION
                    SELECT customer_id FROM {t["order"]}
                     WHERE channel_id = %(channel)s AND customer_id IS NOT NULL
                       AND paid_at > %(prev_as_of)s AND paid_at <= %(as_of)s
                    UNION
                    SELECT customer_id FROM {t["order"]}
                     WHERE channel_id = %(channel)s AND customer_id IS NOT NULL
                       AND paid_at > %(prev_window_start)s::timestamptz
                       AND paid_at <= %(window_start)s::timestamptz
                    UNION
                    SELECT id FROM {t["customer"]} WHERE updated_at >= %(since)s
                    UNION
                    SELECT r.customer_id FROM {t["rfm"]} r
                      JOIN {t["customer"]} c ON c.id = r.customer_id
                     WHERE r.channel_id = %(channel)s
                       AND (c.order_count <> r.customer_order_count OR c.erased_at IS NOT NULL)
                    """,
                    p,
                )
                cur.execute("CREATE INDEX ON rfm_dirty (customer_id)")
                cur.execute("ANALYZE rfm_dirty")
            run.recomputed_count = self._exec(
                cur,
                "aggregate",
                "CREATE TEMP TABLE rfm_new ON COMMIT DROP AS " + self._aggregate_sql(incremental),
                p,
            )
            if incremental:
                self._exec(
                    cur,
                    "keep",
                    f"""
                    INSERT INTO rfm_new
                    SELECT r.customer_id, r.last_paid_at, r.frequency, r.monetary,
                           r.channel_slug, r.currency, r.customer_order_count
                      FROM {t["rfm"]} r
                     WHERE r.channel_id = %(channel)s
                       AND NOT EXISTS (SELECT 1 FROM rfm_dirty d
                                        WHERE d.customer_id = r.customer_id)
                    """,
                    p,
                )
            cur.execute("ANALYZE rfm_new")  # a temp table has no statistics until asked
            ctx.timings["metrics"] = time.perf_counter() - t0

            t1 = time.perf_counter()
            days = "EXTRACT(DAY FROM (%(as_of)s::timestamptz - n.last_paid_at))::int"
            self._exec(
                cur,
                "cut_points",
                f"""
                SELECT percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]::float8[])
                           WITHIN GROUP (ORDER BY {days}),
                       percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]::float8[])
                           WITHIN GROUP (ORDER BY n.frequency),
                       percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]::float8[])
                           WITHIN GROUP (ORDER BY n.monetary),
                       count(*)
                  FROM rfm_new n
                """,
                p,
            )
            r_cuts, f_cuts, m_cuts, count = cur.fetchone()
            run.recency_cuts = list(r_cuts or [])
            run.frequency_cuts = list(f_cuts or [])
            run.monetary_cuts = [str(c) for c in (m_cuts or [])]
            run.customer_count = count
            self._apply(cur, p, list(r_cuts or []), list(f_cuts or []), list(m_cuts or []), days)
            ctx.timings["score"] = time.perf_counter() - t1

            t2 = time.perf_counter()
            if write_back and run.changed_count:
                self._write_back(cur, p)
            ctx.timings["write_back"] = time.perf_counter() - t2

    def _apply(
        self,
        cur: Any,
        p: dict[str, Any],
        r_cuts: list[int],
        f_cuts: list[int],
        m_cuts: list[Decimal],
        days: str,
    ) -> None:
        t, run = self.t, self.run
        incremental = self.ctx.previous is not None
        scope = "AND o.customer_id IN (SELECT customer_id FROM rfm_dirty)" if incremental else ""
        self._exec(
            cur,
            "delete_gone",
            f"""
            WITH gone AS (
                DELETE FROM {t["rfm"]} o
                 WHERE o.channel_id = %(channel)s {scope}
                   AND NOT EXISTS (SELECT 1 FROM rfm_new n WHERE n.customer_id = o.customer_id)
                RETURNING o.customer_id)
            UPDATE {t["hist"]} h SET to_run_id = %(run)s
              FROM gone WHERE h.customer_id = gone.customer_id
               AND h.channel_id = %(channel)s AND h.to_run_id IS NULL
            """,
            p,
        )
        if not r_cuts:
            return
        cells = sorted(self.ctx.segment_map.cells.items())
        values = ", ".join(f"({r}, {f}, %(cell_{r}_{f})s)" for (r, f), _ in cells)
        p = {
            **p,
            **{f"cell_{r}_{f}": slug for (r, f), slug in cells},
            **{f"rc{i}": c for i, c in enumerate(r_cuts)},
            **{f"fc{i}": c for i, c in enumerate(f_cuts)},
            **{f"mc{i}": c for i, c in enumerate(m_cuts)},
        }
        r_expr = "5 - (" + " + ".join(f"(x.d > %(rc{i})s)::int" for i in range(4)) + ")"
        f_expr = "1 + " + " + ".join(f"(n.frequency > %(fc{i})s)::int" for i in range(4))
        m_expr = "1 + " + " + ".join(f"(n.monetary > %(mc{i})s)::int" for i in range(4))
        self._exec(
            cur,
            "score",
            f"""
            CREATE TEMP TABLE rfm_changed ON COMMIT DROP AS
            SELECT n.*, s.r, s.f, s.m, map.slug AS segment, o.id AS rfm_id,
                   coalesce(o.segment, '') AS old_segment,
                   (o.id IS NULL OR (o.r_score, o.f_score, o.m_score, o.segment)
                       IS DISTINCT FROM (s.r, s.f, s.m, map.slug)) AS scores_changed
              FROM rfm_new n
             CROSS JOIN LATERAL (SELECT {days} AS d) x
             CROSS JOIN LATERAL (SELECT {r_expr} AS r, {f_expr} AS f, {m_expr} AS m) s
              JOIN (VALUES {values}) AS map(r, f, slug) ON map.r = s.r AND map.f = s.f
              LEFT JOIN {t["rfm"]} o
                ON o.customer_id = n.customer_id AND o.channel_id = %(channel)s
             WHERE o.id IS NULL
                OR (o.last_paid_at, o.frequency, o.monetary, o.customer_order_count,
                    o.channel_slug, o.currency, o.r_score, o.f_score, o.m_score, o.segment)
                   IS DISTINCT FROM
                   (n.last_paid_at, n.frequency, n.monetary, n.customer_order_count,
                    n.channel_slug, n.currency, s.r, s.f, s.m, map.slug)
            """,
            p,
        )
        cur.execute(
            """SELECT count(*) FILTER (WHERE scores_changed),
                      count(*) FILTER (WHERE rfm_id IS NOT NULL AND segment <> old_segment)
                 FROM rfm_changed"""
        )
        run.changed_count, run.moved_count = cur.fetchone()
        self._exec(
            cur,
            "history_close",
            f"""
            UPDATE {t["hist"]} h SET to_run_id = %(run)s
              FROM rfm_changed c
             WHERE h.customer_id = c.customer_id AND h.channel_id = %(channel)s
               AND h.to_run_id IS NULL AND c.segment <> c.old_segment
            """,
            p,
        )
        self._exec(
            cur,
            "history_open",
            f"""
            INSERT INTO {t["hist"]} (customer_id, channel_id, segment, from_run_id)
            SELECT customer_id, %(channel)s, segment, %(run)s FROM rfm_changed
             WHERE segment <> old_segment
            """,
            p,
        )
        self._exec(
            cur,
            "update",
            f"""
            UPDATE {t["rfm"]} o SET
                   last_paid_at = c.last_paid_at, frequency = c.frequency,
                   monetary = c.monetary, customer_order_count = c.customer_order_count,
                   channel_slug = c.channel_slug, currency = c.currency,
                   r_score = c.r, f_score = c.f, m_score = c.m, segment = c.segment,
                   changed_run_id = CASE WHEN c.scores_changed THEN %(run)s
                                         ELSE o.changed_run_id END
              FROM rfm_changed c WHERE o.id = c.rfm_id
            """,
            p,
        )
        self._exec(
            cur,
            "insert",
            f"""
            INSERT INTO {t["rfm"]} (customer_id, channel_id, channel_slug, currency,
                   last_paid_at, frequency, monetary, r_score, f_score, m_score, segment,
                   customer_order_count, changed_run_id)
            SELECT customer_id, %(channel)s, channel_slug, currency, last_paid_at, frequency,
                   monetary, r, f, m, segment, customer_order_count, %(run)s
              FROM rfm_changed WHERE rfm_id IS NULL
            """,
            p,
        )

    def _write_back(self, cur: Any, p: dict[str, Any]) -> None:
        """``queue_private_metadata`` for every changed customer in one statement, with its
        semantics: values merge into the object's row; a row changes (and becomes pending
        again) only if the merged values differ or were never sent."""
        t = self.t
        self._exec(
            cur,
            "write_back",
            f"""
            INSERT INTO {t["wb"]} AS w
                   (object_id, items, version, pending, attempts, last_error, updated_at)
            SELECT cu.saleor_user_id,
                   jsonb_build_object(
                       %(segment_plain)s, c.segment,
                       %(scores_plain)s, 'R' || c.r || 'F' || c.f || 'M' || c.m,
                       %(segment_key)s || coalesce(nullif(c.channel_slug, ''), %(channel)s),
                       c.segment,
                       %(scores_key)s || coalesce(nullif(c.channel_slug, ''), %(channel)s),
                       'R' || c.r || 'F' || c.f || 'M' || c.m),
                   1, true, 0, '', now()
              FROM rfm_changed c
              JOIN {t["customer"]} cu ON cu.id = c.customer_id
             WHERE c.scores_changed AND cu.saleor_user_id IS NOT NULL AND cu.erased_at IS NULL
            ON CONFLICT (object_id) DO UPDATE SET
                   items = w.items || EXCLUDED.items, version = w.version + 1, pending = true,
                   attempts = 0, last_error = '', updated_at = now()
             WHERE w.items || EXCLUDED.items <> w.items OR (NOT w.pending AND w.sent_at IS NULL)
            """,
            {
                **p,
                "segment_key": SEGMENT_KEY + ".",
                "scores_key": SCORES_KEY + ".",
                "segment_plain": SEGMENT_KEY,
                "scores_plain": SCORES_KEY,
            },
        )


# -- reading -----------------------------------------------------------------------------------


def latest_run(channel_id: str) -> RfmRun | None:
    return RfmRun.objects.filter(channel_id=channel_id).order_by("-pk").first()


def previous_run(run: RfmRun) -> RfmRun | None:
    return RfmRun.objects.filter(channel_id=run.channel_id, pk__lt=run.pk).order_by("-pk").first()


def get_run(run_id: int, channel_id: str | None = None, field: str = "run") -> RfmRun:
    run = RfmRun.objects.filter(pk=run_id).first()
    if run is None or (channel_id is not None and run.channel_id != channel_id):
        raise RfmError(RfmErrorCode.RUN_NOT_FOUND, f"There is no RFM run {run_id}.", field)
    return run


def recency_days(row: CustomerRfm, run: RfmRun) -> int:
    return (run.as_of - row.last_paid_at).days


def customer_rfm(customer_id: int, channel_id: str | None = None) -> list[CustomerRfm]:
    """A customer's current RFM, per channel (what a customer-facing resolver needs)."""
    rows = CustomerRfm.objects.filter(customer_id=customer_id)
    if channel_id is not None:
        rows = rows.filter(channel_id=channel_id)
    return list(rows.order_by("channel_id"))


def segment_of(customer_id: int, channel_id: str) -> str | None:
    """The customer's current segment in the channel (one index lookup)."""
    return (
        CustomerRfm.objects.filter(customer_id=customer_id, channel_id=channel_id)
        .values_list("segment", flat=True)
        .first()
    )


def segment_history(customer_id: int, channel_id: str) -> list[RfmSegmentHistory]:
    return list(
        RfmSegmentHistory.objects.filter(customer_id=customer_id, channel_id=channel_id)
        .select_related("from_run", "to_run")
        .order_by("from_run_id")
    )


def movement_matrix(from_run: RfmRun, to_run: RfmRun) -> dict[tuple[str, str], int]:
    """``{(segment at from_run, segment at to_run): customers}`` for one channel; ``""`` means
    not scored at that run (no paid order yet, or no longer eligible). Only customers present
    in at least one of the runs are counted."""
    if from_run.channel_id != to_run.channel_id:
        raise RfmError(RfmErrorCode.INVALID, "Both runs must belong to the same channel.", "to_run")
    if connection.vendor != "postgresql":
        before, after = _segments_at(from_run), _segments_at(to_run)
        counts: Counter[tuple[str, str]] = Counter()
        for customer_id in before.keys() | after.keys():
            counts[(before.get(customer_id, ""), after.get(customer_id, ""))] += 1
        return dict(counts)
    table = RfmSegmentHistory._meta.db_table
    at = (
        "SELECT customer_id, segment FROM {t} WHERE channel_id = %(channel)s "
        "AND from_run_id <= %({run})s AND (to_run_id IS NULL OR to_run_id > %({run})s)"
    )
    with connection.cursor() as cur:
        cur.execute(
            f"""
            SELECT coalesce(a.segment, ''), coalesce(b.segment, ''), count(*)
              FROM ({at.format(t=table, run="a")}) a
              FULL OUTER JOIN ({at.format(t=table, run="b")}) b USING (customer_id)
             GROUP BY 1, 2
            """,
            {"channel": from_run.channel_id, "a": from_run.pk, "b": to_run.pk},
        )
        return {(a, b): n for a, b, n in cur.fetchall()}


def _segments_at(run: RfmRun) -> dict[int, str]:
    rows = RfmSegmentHistory.objects.filter(
        channel_id=run.channel_id, from_run_id__lte=run.pk
    ).filter(Q(to_run__isnull=True) | Q(to_run_id__gt=run.pk))
    return dict(rows.values_list("customer_id", "segment"))


@dataclass(frozen=True)
class SegmentSummary:
    segment: str
    name: str
    customers: int
    revenue: Decimal
    revenue_share: Decimal  # 0..1 of the channel's revenue in the window
    orders: int
    average_order_value: Decimal | None
    moved_in: int  # from another segment since the previous run
    moved_out: int
    new: int  # first scored in this run
    lost: int  # no longer scored (e.g. only order cancelled) since the previous run


def segment_summary(channel_id: str) -> list[SegmentSummary]:
    """One row per segment of the channel's current map, in map order, including empty ones
    (a merchant expects to see "0 Champions" rather than a missing line)."""
    run = latest_run(channel_id)
    if run is None:
        return []
    names = names_from_json(run.segment_names) or default_segment_map().names
    totals = {
        r["segment"]: r
        for r in CustomerRfm.objects.filter(channel_id=channel_id)
        .values("segment")
        .annotate(customers=Count("pk"), revenue=Sum("monetary"), orders=Sum("frequency"))
        .order_by()
    }
    all_revenue = sum((r["revenue"] or Decimal(0) for r in totals.values()), Decimal(0))
    previous = previous_run(run)
    moves = movement_matrix(previous, run) if previous else {}
    moved_in: Counter[str] = Counter()
    moved_out: Counter[str] = Counter()
    new: Counter[str] = Counter()
    lost: Counter[str] = Counter()
    for (a, b), n in moves.items():
        if a == b:
            continue
        if not a:
            new[b] += n
        elif not b:
            lost[a] += n
        else:
            moved_in[b] += n
            moved_out[a] += n
    slugs = list(names) + sorted(set(totals) - set(names))
    out = []
    for slug in slugs:
        row = totals.get(slug, {})
        revenue = row.get("revenue") or Decimal(0)
        orders = row.get("orders") or 0
        out.append(
            SegmentSummary(
                segment=slug,
                name=names.get(slug, slug),
                customers=row.get("customers") or 0,
                revenue=revenue,
                revenue_share=(revenue / all_revenue) if all_revenue else Decimal(0),
                orders=orders,
                average_order_value=(revenue / orders).quantize(Decimal("0.01"))
                if orders
                else None,
                moved_in=moved_in[slug],
                moved_out=moved_out[slug],
                new=new[slug],
                lost=lost[slug],
            )
        )
    return out


@dataclass(frozen=True)
class SegmentFilter:
    """Filters for a segment's customer list; every field optional and combined with AND."""

    segment: str | None = None
    r_scores: Sequence[int] = ()
    f_scores: Sequence[int] = ()
    m_scores: Sequence[int] = ()
    min_monetary: Decimal | None = None
    max_monetary: Decimal | None = None
    min_frequency: int | None = None
    max_recency_days: int | None = None
    changed_in_last_run: bool = False
    search: str = ""
    with_email: bool = False


def segment_customers(channel_id: str, filters: SegmentFilter | None = None) -> QuerySet:
    """The channel's scored customers, best first (monetary, then pk as a unique tiebreaker).

    Raises ``RfmError`` on a score outside 1-5 or a segment the map does not know."""
    filters = filters or SegmentFilter()
    qs = CustomerRfm.objects.filter(channel_id=channel_id).select_related("customer")
    if filters.segment:
        known = set(get_segment_map(channel_id).names)
        if filters.segment not in known:
            raise RfmError(
                RfmErrorCode.INVALID_SEGMENT,
                f"Unknown segment '{filters.segment}'; known: {', '.join(sorted(known))}.",
                "segment",
            )
        qs = qs.filter(segment=filters.segment)
    for name, scores in (
        ("r_score", filters.r_scores),
        ("f_score", filters.f_scores),
        ("m_score", filters.m_scores),
    ):
        if scores:
            if any(s not in range(1, 6) for s in scores):
                raise RfmError(RfmErrorCode.INVALID, "Scores are 1 to 5.", name)
            qs = qs.filter(**{f"{name}__in": list(scores)})
    if filters.min_monetary is not None:
        qs = qs.filter(monetary__gte=filters.min_monetary)
    if filters.max_monetary is not None:
        qs = qs.filter(monetary__lte=filters.max_monetary)
    if filters.min_frequency is not None:
        qs = qs.filter(frequency__gte=filters.min_frequency)
    if filters.max_recency_days is not None or filters.changed_in_last_run:
        run = latest_run(channel_id)
        if run is not None and filters.max_recency_days is not None:
            qs = qs.filter(
                last_paid_at__gt=run.as_of - timedelta(days=filters.max_recency_days + 1)
            )
        if filters.changed_in_last_run:
            qs = qs.filter(changed_run_id=run.pk if run else -1)
    if filters.search:
        term = filters.search.strip()
        qs = qs.filter(
            Q(customer__email__icontains=term)
            | Q(customer__first_name__icontains=term)
            | Q(customer__last_name__icontains=term)
        )
    if filters.with_email:
        qs = qs.exclude(customer__email="")
    return qs.order_by("-monetary", "pk")


CSV_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "saleor_user_id",
    "channel",
    "segment",
    "segment_name",
    "r_score",
    "f_score",
    "m_score",
    "recency_days",
    "frequency",
    "monetary",
    "currency",
    "last_paid_at",
)


def export_segment_csv(out: TextIO, channel_id: str, filters: SegmentFilter | None = None) -> int:
    """Write the filtered customers as CSV for e-mail tools; returns the row count.

    Only customers with an e-mail address (nothing to send to otherwise); erased customers are
    never scored, so never exported. Text cells that a spreadsheet would run as a formula are
    prefixed with ``'`` (CSV injection)."""
    filters = filters or SegmentFilter()
    if not filters.with_email:
        filters = SegmentFilter(**{**filters.__dict__, "with_email": True})
    rows = segment_customers(channel_id, filters)
    run = latest_run(channel_id)
    names = (names_from_json(run.segment_names) if run else {}) or get_segment_map(channel_id).names
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for row in _chunked(rows):
        customer = row.customer
        writer.writerow(
            [
                _safe(customer.email),
                _safe(customer.first_name),
                _safe(customer.last_name),
                customer.saleor_user_id or "",
                row.channel_slug or row.channel_id,
                row.segment,
                _safe(names.get(row.segment, row.segment)),
                row.r_score,
                row.f_score,
                row.m_score,
                recency_days(row, run) if run else "",
                row.frequency,
                row.monetary,
                row.currency,
                row.last_paid_at.isoformat(),
            ]
        )
        count += 1
    return count


def _chunked(qs: QuerySet, size: int = 2000) -> Iterator[CustomerRfm]:
    yield from qs.iterator(chunk_size=size)


def _safe(value: str) -> str:
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def cut_points_table(run: RfmRun) -> list[tuple[str, list[str]]]:
    """Human-readable score bounds: for each score 1..5 the value range it covers."""
    out = []
    for label, cuts, inverted in (
        ("recency days", run.recency_cuts, True),
        ("frequency", run.frequency_cuts, False),
        ("monetary", run.monetary_cuts, False),
    ):
        bounds = []
        for score in range(1, 6):
            i = 5 - score if inverted else score - 1
            lo = cuts[i - 1] if i > 0 else None
            hi = cuts[i] if i < len(cuts) else None
            if lo is not None and hi is not None and str(lo) == str(hi):
                bounds.append("-")  # equal cut points: nobody can get this score
                continue
            bounds.append(
                f"{'' if lo is None else f'>{lo}'}{'' if hi is None else f' <={hi}'}".strip()
                or "all"
            )
        out.append((label, bounds))
    return out
