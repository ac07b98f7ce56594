"""Expiry of spendable lots, and the warning before it.

``points_expiring`` is the hook for anything that wants to tell the customer (e-mail, a
storefront banner, a Saleor notification): it is sent once per lot, from the beat task, after
the warning is recorded, so a crashed listener never causes a second warning for the same lot
and never blocks the expiry itself.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import django.dispatch
from django.db import transaction
from django.utils import timezone

from saleor_crm_plugin.loyalty.config import program_config
from saleor_crm_plugin.loyalty.ledger import Posting
from saleor_crm_plugin.loyalty.models import (
    EntryKind,
    LotStatus,
    LoyaltyAccount,
    PointLot,
)

logger = logging.getLogger(__name__)

# Sent with ``account`` (LoyaltyAccount), ``points`` (int), ``expires_at`` (earliest expiry of
# the warned lots) and ``lots`` (list of PointLot), once per lot, before the points expire.
points_expiring = django.dispatch.Signal()


@dataclass(frozen=True)
class ExpiryRun:
    expired_lots: int
    expired_points: int


def expire_due(*, now: datetime | None = None, batch: int = 500) -> ExpiryRun:
    """Expire what is left of lots past their expiry date. One transaction per account; safe
    to run concurrently with earning and redemption (the account row is locked)."""
    now = now or timezone.now()
    lots_done = points_done = 0
    while True:
        account_ids = list(
            PointLot.objects.filter(status=LotStatus.ACTIVE, expires_at__lte=now, remaining__gt=0)
            .order_by("account_id")
            .values_list("account_id", flat=True)
            .distinct()[:batch]
        )
        if not account_ids:
            break
        for account_id in account_ids:
            n, points = _expire_account(account_id, now)
            lots_done += n
            points_done += points
        if len(account_ids) < batch:
            break
    # Lots that expired with nothing left (fully spent lots stay "spent"): close them quietly.
    PointLot.objects.filter(status=LotStatus.ACTIVE, expires_at__lte=now, remaining=0).update(
        status=LotStatus.SPENT
    )
    return ExpiryRun(lots_done, points_done)


def _expire_account(account_id: int, now: datetime) -> tuple[int, int]:
    with transaction.atomic():
        account = (
            LoyaltyAccount.objects.select_for_update(of=("self",))
            .select_related("customer")
            .get(pk=account_id)
        )
        config = program_config(account.channel_id, account.channel_slug)
        work = Posting(account, config, now)
        lots = list(
            PointLot.objects.filter(
                account=account, status=LotStatus.ACTIVE, expires_at__lte=now, remaining__gt=0
            ).order_by("expires_at", "pk")
        )
        total = 0
        for lot in lots:
            entry = work.post(
                kind=EntryKind.EXPIRE,
                source=lot.source,
                source_id=lot.source_id,
                key=f"{lot.key}:expire",
                points=-lot.remaining,
                lot=lot,
                reason="Points expired",
                data={"expires_at": lot.expires_at.isoformat() if lot.expires_at else None},
            )
            work.consumed(entry, lot, lot.remaining)
            total += lot.remaining
            lot.remaining = 0
            lot.status = LotStatus.EXPIRED
            work.touch(lot)
        work.finish()
    return len(lots), total


def warn_expiring(*, now: datetime | None = None) -> int:
    """Send ``points_expiring`` for lots entering their channel's warning window. Returns the
    number of accounts warned."""
    now = now or timezone.now()
    candidates = PointLot.objects.filter(
        status=LotStatus.ACTIVE,
        remaining__gt=0,
        warned_at__isnull=True,
        expires_at__isnull=False,
        expires_at__gt=now,
    ).select_related("account", "account__customer")
    # The widest window any channel may use is not known up front: filter per channel.
    grouped: dict[int, list[PointLot]] = defaultdict(list)
    for lot in candidates.order_by("account_id", "expires_at", "pk").iterator(chunk_size=2000):
        account = lot.account
        config = program_config(account.channel_id, account.channel_slug)
        if lot.expires_at is not None and lot.expires_at <= now + timedelta(
            days=config.expiry_warning_days
        ):
            grouped[account.pk].append(lot)
    for lots in grouped.values():
        PointLot.objects.filter(pk__in=[lot.pk for lot in lots], warned_at__isnull=True).update(
            warned_at=now
        )
        account = lots[0].account
        points = sum(lot.remaining for lot in lots)
        expires_at = min(lot.expires_at for lot in lots if lot.expires_at is not None)
        for receiver, response in points_expiring.send_robust(
            sender=LoyaltyAccount, account=account, points=points, expires_at=expires_at, lots=lots
        ):
            if isinstance(response, Exception):
                logger.warning(
                    "points_expiring receiver %r failed for account %s: %s",
                    receiver,
                    account.pk,
                    response,
                )
    return len(grouped)
