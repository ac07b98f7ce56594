"""Bonuses (signup, birthday, review, referral) and staff adjustments."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime

from django.db import transaction
from django.utils import timezone

from saleor_crm_plugin.customers.models import Customer
from saleor_crm_plugin.loyalty.config import ProgramConfig, program_config
from saleor_crm_plugin.loyalty.earning import (
    _Book,
    _evaluate_tier,
    _signup_bonus,
    lot_exists,
    reverse_active,
)
from saleor_crm_plugin.loyalty.error_codes import LoyaltyErrorCode
from saleor_crm_plugin.loyalty.exceptions import LoyaltyError
from saleor_crm_plugin.loyalty.ledger import Posting, lock_account
from saleor_crm_plugin.loyalty.models import (
    EntryKind,
    EntrySource,
    LedgerEntry,
    LotStatus,
    LoyaltyAccount,
    PointLot,
)

logger = logging.getLogger(__name__)


# -- bonuses and staff adjustments -----------------------------------------------------------


@dataclass(frozen=True)
class BonusResult:
    awarded: bool
    points: int
    code: LoyaltyErrorCode | None = None
    lot_id: int | None = None


def _require_registered(customer: Customer, field_name: str = "customer") -> None:
    if customer.saleor_user_id is None or customer.is_erased:
        raise LoyaltyError(
            LoyaltyErrorCode.NOT_ELIGIBLE,
            field_name,
            "Only registered customers take part in the loyalty program.",
        )


def _channel_config(channel_id: str, channel_slug: str = "") -> ProgramConfig:
    if not channel_id:
        raise LoyaltyError(LoyaltyErrorCode.REQUIRED, "channel", "A channel is required.")
    config = program_config(channel_id, channel_slug)
    if not config.enabled:
        raise LoyaltyError(
            LoyaltyErrorCode.PROGRAM_DISABLED,
            "channel",
            "The loyalty program is not enabled in this channel.",
        )
    return config


def open_account(
    customer: Customer,
    channel_id: str,
    channel_slug: str = "",
    currency: str = "",
    *,
    now: datetime | None = None,
) -> LoyaltyAccount:
    """Join the program in a channel explicitly (sign-up bonus included)."""
    _require_registered(customer)
    config = _channel_config(channel_id, channel_slug)
    with transaction.atomic():
        account, created = lock_account(customer, channel_id, channel_slug, currency)
        work = Posting(account, config, now or timezone.now())
        if created:
            _signup_bonus(work)
            _evaluate_tier(work, _Book([], config), reason="joined")
        work.finish()
    return account


def _bonus(
    customer: Customer,
    channel_id: str,
    *,
    key: str,
    source: EntrySource,
    points: int,
    reason: str,
    source_id: str = "",
    channel_slug: str = "",
    staff_user_id: str = "",
    now: datetime | None = None,
    kind: EntryKind = EntryKind.BONUS,
) -> BonusResult:
    config = _channel_config(channel_id, channel_slug)
    now = now or timezone.now()
    with transaction.atomic():
        account, created = lock_account(customer, channel_id, channel_slug)
        work = Posting(account, config, now)
        if created:
            _signup_bonus(work)
        existing = PointLot.objects.filter(key=key).first()
        if existing is not None:
            work.finish()
            return BonusResult(
                False, existing.points, LoyaltyErrorCode.ALREADY_AWARDED, existing.pk
            )
        lot, _ = work.credit(
            key=key,
            source=source,
            points=points,
            kind=kind,
            source_id=source_id,
            reason=reason,
            staff_user_id=staff_user_id,
        )
        work.finish()
    return BonusResult(True, points, None, lot.pk)


def award_review_bonus(
    *,
    customer: Customer,
    channel_id: str,
    review_id: str,
    channel_slug: str = "",
    approved_at: datetime | None = None,
) -> BonusResult:
    """Points for an approved review (for the reviews domain). Idempotent per review; at most
    ``review_bonus_cap`` per calendar month/year of approval. A capped or disabled bonus is a
    result (``awarded=False`` with a code), not an error: the review itself is fine."""
    _require_registered(customer)
    if not review_id:
        raise LoyaltyError(LoyaltyErrorCode.REQUIRED, "review_id", "A review id is required.")
    config = _channel_config(channel_id, channel_slug)
    if config.review_bonus <= 0:
        return BonusResult(False, 0, LoyaltyErrorCode.NOT_ELIGIBLE)
    approved_at = approved_at or timezone.now()
    key = f"review:{review_id}"
    if config.review_bonus_cap:
        start = approved_at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        if config.review_bonus_period == "year":
            start = start.replace(month=1)
        with transaction.atomic():
            account, _ = lock_account(customer, channel_id, channel_slug)
            if lot_exists(key):
                lot = PointLot.objects.get(key=key)
                return BonusResult(False, lot.points, LoyaltyErrorCode.ALREADY_AWARDED, lot.pk)
            used = PointLot.objects.filter(
                account=account, source=EntrySource.REVIEW, earned_at__gte=start
            ).count()
            if used >= config.review_bonus_cap:
                return BonusResult(False, 0, LoyaltyErrorCode.CAP_REACHED)
            return _bonus(
                customer,
                channel_id,
                key=key,
                source=EntrySource.REVIEW,
                points=config.review_bonus,
                reason="Approved review",
                source_id=review_id,
                channel_slug=channel_slug,
                now=approved_at,
            )
    return _bonus(
        customer,
        channel_id,
        key=key,
        source=EntrySource.REVIEW,
        points=config.review_bonus,
        reason="Approved review",
        source_id=review_id,
        channel_slug=channel_slug,
        now=approved_at,
    )


def revoke_review_bonus(review_id: str, *, reason: str = "Review removed") -> int:
    """Take back a review bonus (review unpublished). Returns the points reversed."""
    with transaction.atomic():
        lot = PointLot.objects.filter(key=f"review:{review_id}").first()
        if lot is None:
            return 0
        account = LoyaltyAccount.objects.select_for_update(of=("self",)).select_related("customer")
        account = account.get(pk=lot.account_id)
        lot.refresh_from_db()
        delta = lot.points - lot.reversed_points
        if delta <= 0 or lot.status == LotStatus.EXPIRED:
            return 0
        work = Posting(
            account, program_config(account.channel_id, account.channel_slug), timezone.now()
        )
        reverse_active(work, lot, delta, reason=reason)
        work.finish()
    return delta


def award_referral(
    *,
    referrer: Customer,
    referee: Customer,
    channel_id: str,
    channel_slug: str = "",
    now: datetime | None = None,
) -> tuple[BonusResult, BonusResult]:
    """Both sides of a referral, once per referred customer, never to oneself (same customer or
    same e-mail). Call it when the referee qualifies (e.g. their first paid order)."""
    _require_registered(referrer, "referrer")
    _require_registered(referee, "referee")
    same_email = bool(referrer.email) and referrer.email.lower() == referee.email.lower()
    if referrer.pk == referee.pk or same_email:
        raise LoyaltyError(
            LoyaltyErrorCode.SELF_REFERRAL, "referee", "Customers cannot refer themselves."
        )
    config = _channel_config(channel_id, channel_slug)
    referee_key = f"referral:{channel_id}:{referee.pk}:referee"
    if lot_exists(referee_key):
        raise LoyaltyError(
            LoyaltyErrorCode.ALREADY_AWARDED,
            "referee",
            "This customer's referral has already been rewarded.",
        )
    with transaction.atomic():
        # Lock both accounts in a fixed order so two crossing referrals cannot deadlock.
        for customer in sorted((referrer, referee), key=lambda c: c.pk):
            lock_account(customer, channel_id, channel_slug)
        source_id = f"{referrer.saleor_user_id}->{referee.saleor_user_id}"
        results = []
        for customer, points, side in (
            (referrer, config.referral_referrer_bonus, "referrer"),
            (referee, config.referral_referee_bonus, "referee"),
        ):
            if points <= 0:
                results.append(BonusResult(False, 0, LoyaltyErrorCode.NOT_ELIGIBLE))
                continue
            results.append(
                _bonus(
                    customer,
                    channel_id,
                    key=f"referral:{channel_id}:{referee.pk}:{side}",
                    source=EntrySource.REFERRAL,
                    points=points,
                    reason="Referral bonus" + (" (welcome)" if side == "referee" else ""),
                    source_id=source_id,
                    channel_slug=channel_slug,
                    now=now,
                )
            )
        if not any(r.awarded for r in results):
            # Nothing to credit still marks the referee as referred (no second referrer).
            pass
    return results[0], results[1]


def award_birthdays(*, today: date | None = None) -> int:
    """Daily: a birthday bonus for customers whose metadata says today is their birthday
    (``YYYY-MM-DD`` or ``MM-DD``; 29 February counts on 28 February in other years)."""
    now = timezone.now()
    today = today or now.date()
    awarded = 0
    accounts = LoyaltyAccount.objects.select_related("customer").filter(
        customer__erased_at__isnull=True, customer__saleor_user_id__isnull=False
    )
    for account in accounts.order_by("pk").iterator(chunk_size=500):
        config = program_config(account.channel_id, account.channel_slug)
        if not config.enabled or config.birthday_bonus <= 0:
            continue
        birthday = parse_birthday(
            (account.customer.metadata or {}).get(config.birthday_metadata_key)
        )
        if birthday is None or not _is_birthday(birthday, today):
            continue
        result = _bonus(
            account.customer,
            account.channel_id,
            key=f"birthday:{account.pk}:{today.year}",
            source=EntrySource.BIRTHDAY,
            points=config.birthday_bonus,
            reason="Birthday bonus",
            channel_slug=account.channel_slug,
            now=now,
        )
        awarded += int(result.awarded)
    return awarded


def parse_birthday(value: object) -> tuple[int, int] | None:
    if not isinstance(value, str):
        return None
    text = value.strip().lstrip("-")
    parts = text.split("-")
    try:
        if len(parts) == 3:
            parsed = date(int(parts[0]), int(parts[1]), int(parts[2]))
            return parsed.month, parsed.day
        if len(parts) == 2:
            month, day = int(parts[0]), int(parts[1])
            date(2000, month, day)  # validates (2000 is a leap year)
            return month, day
    except ValueError:
        return None
    return None


def _is_birthday(birthday: tuple[int, int], today: date) -> bool:
    month, day = birthday
    if (month, day) == (2, 29):
        try:
            date(today.year, 2, 29)
        except ValueError:
            return (today.month, today.day) == (2, 28)
    return (today.month, today.day) == (month, day)


def adjust_points(
    *,
    customer: Customer,
    channel_id: str,
    points: int,
    reason: str,
    staff_user_id: str = "",
    idempotency_key: str = "",
    channel_slug: str = "",
    allow_negative: bool = False,
    bonus: bool = False,
    now: datetime | None = None,
) -> LedgerEntry:
    """Staff correction (+ or -) or custom bonus (``bonus=True``, + only). A retried request
    with the same ``idempotency_key`` returns the original entry instead of posting twice."""
    _require_registered(customer)
    if not reason or not reason.strip():
        raise LoyaltyError(LoyaltyErrorCode.REQUIRED, "reason", "Give a reason for the adjustment.")
    if points == 0:
        raise LoyaltyError(LoyaltyErrorCode.INVALID, "points", "Points must not be zero.")
    if bonus and points < 0:
        raise LoyaltyError(LoyaltyErrorCode.INVALID, "points", "A bonus must be positive.")
    config = _channel_config(channel_id, channel_slug)
    now = now or timezone.now()
    key = f"staff:{idempotency_key}" if idempotency_key else ""
    with transaction.atomic():
        account, created = lock_account(customer, channel_id, channel_slug)
        if key:
            existing = LedgerEntry.objects.filter(idempotency_key=key).first()
            if existing is not None:
                if existing.account_id != account.pk or existing.points != points:
                    raise LoyaltyError(
                        LoyaltyErrorCode.DUPLICATE,
                        "idempotency_key",
                        "This idempotency key was used for a different adjustment.",
                    )
                return existing
        key = key or f"staff:{account.pk}:{LedgerEntry.objects.filter(account=account).count()}"
        work = Posting(account, config, now)
        if created:
            _signup_bonus(work)
        if points > 0:
            _, entry = work.credit(
                key=key,
                source=EntrySource.STAFF,
                points=points,
                kind=EntryKind.BONUS if bonus else EntryKind.ADJUST,
                reason=reason.strip(),
                staff_user_id=staff_user_id,
            )
        else:
            debit = -points
            if debit > account.balance and not allow_negative:
                raise LoyaltyError(
                    LoyaltyErrorCode.INSUFFICIENT_POINTS,
                    "points",
                    f"The balance is {account.balance} points; cannot take {debit}.",
                )
            entry = work.post(
                kind=EntryKind.ADJUST,
                source=EntrySource.STAFF,
                key=key,
                points=points,
                reason=reason.strip(),
                staff_user_id=staff_user_id,
            )
            shortfall = debit - work.consume(debit, entry)
            account.debt += shortfall
        work.finish()
    return entry
