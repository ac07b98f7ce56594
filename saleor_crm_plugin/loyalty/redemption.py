"""Points into a Saleor gift card.

Two steps, because a row lock must never be held over an HTTP call:

1. *Reserve*: lock the account, check the balance, debit the points from the lots that expire
   first (a ``redeem`` entry) and record a ``Redemption``. The lock makes concurrent redemptions
   of one balance queue behind each other, so they can never overdraw it.
2. *Create* the gift card through Saleor's GraphQL API with the app token. On a definite
   refusal the reservation is *released* (a ``release`` entry restores the very same lots). When
   the outcome is unknown (timeout, 5xx: the card may exist), the card is looked up by its tag;
   if Saleor cannot be asked either, the reservation stays open and ``settle_reservations``
   finishes it later. Points are never lost and never spent twice.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from saleor_crm_plugin.core.saleor_api import SaleorApiError, SaleorClient, saleor_document
from saleor_crm_plugin.customers.models import Customer
from saleor_crm_plugin.loyalty.config import ProgramConfig, program_config
from saleor_crm_plugin.loyalty.error_codes import LoyaltyErrorCode
from saleor_crm_plugin.loyalty.exceptions import LoyaltyError
from saleor_crm_plugin.loyalty.ledger import Posting
from saleor_crm_plugin.loyalty.models import (
    EntryKind,
    EntrySource,
    LedgerEntry,
    LotConsumption,
    LotStatus,
    LoyaltyAccount,
    Redemption,
    RedemptionStatus,
)

logger = logging.getLogger(__name__)

GIFT_CARD_CREATE = saleor_document(
    "CrmLoyaltyGiftCardCreate",
    """
mutation CrmLoyaltyGiftCardCreate($input: GiftCardCreateInput!) {
  giftCardCreate(input: $input) {
    giftCard { id last4CodeChars }
    errors { field code message }
  }
}
""",
)

GIFT_CARD_BY_TAG = saleor_document(
    "CrmLoyaltyGiftCardByTag",
    """
query CrmLoyaltyGiftCardByTag($tags: [String!]) {
  giftCards(first: 1, filter: { tags: $tags }) {
    edges { node { id last4CodeChars } }
  }
}
""",
)

PROGRAM_TAG = "crm-loyalty"


@dataclass(frozen=True)
class RedemptionResult:
    redemption_id: int
    status: str
    points: int
    amount: Decimal
    currency: str
    gift_card_id: str
    gift_card_last4: str
    balance: int


def redemption_tag(redemption: Redemption) -> str:
    return f"crm-loyalty-redemption-{redemption.pk}"


def validate_amount(points: int, balance: int, config: ProgramConfig) -> None:
    if points <= 0:
        raise LoyaltyError(LoyaltyErrorCode.INVALID, "points", "Points must be positive.")
    if points < config.redemption_min_points:
        raise LoyaltyError(
            LoyaltyErrorCode.BELOW_MINIMUM,
            "points",
            f"Redeem at least {config.redemption_min_points} points.",
        )
    if config.redemption_max_points and points > config.redemption_max_points:
        raise LoyaltyError(
            LoyaltyErrorCode.ABOVE_MAXIMUM,
            "points",
            f"Redeem at most {config.redemption_max_points} points at once.",
        )
    if points > balance:
        raise LoyaltyError(
            LoyaltyErrorCode.INSUFFICIENT_POINTS,
            "points",
            f"The balance is {max(balance, 0)} points.",
        )


def redeem_points(
    *,
    customer: Customer,
    channel_id: str,
    points: int,
    idempotency_key: str = "",
    requested_by: str = "",
    client: SaleorClient | None = None,
    now: datetime | None = None,
) -> RedemptionResult:
    """Turn ``points`` into a gift card for the customer. Raises ``LoyaltyError`` when refused
    (nothing debited) or when Saleor refused the card (points given back). A retried request
    with the same ``idempotency_key`` returns the first outcome instead of redeeming twice."""
    if customer.saleor_user_id is None or customer.is_erased or not customer.email:
        raise LoyaltyError(
            LoyaltyErrorCode.NOT_ELIGIBLE,
            "customer",
            "Only registered customers with an e-mail address can redeem points.",
        )
    key = f"redemption:{idempotency_key or uuid.uuid4()}"
    with transaction.atomic():
        account = (
            LoyaltyAccount.objects.select_for_update(of=("self",))
            .select_related("customer")
            .filter(customer=customer, channel_id=channel_id)
            .first()
        )
        if account is None:
            raise LoyaltyError(
                LoyaltyErrorCode.NOT_FOUND, "channel", "No loyalty account in this channel."
            )
        existing = Redemption.objects.filter(idempotency_key=key).first()
        if existing is not None:
            if existing.account_id != account.pk or existing.points != points:
                raise LoyaltyError(
                    LoyaltyErrorCode.DUPLICATE,
                    "idempotency_key",
                    "This idempotency key was used for a different redemption.",
                )
            return _result(existing, account.balance)
        config = program_config(account.channel_id, account.channel_slug)
        if not config.enabled:
            raise LoyaltyError(
                LoyaltyErrorCode.PROGRAM_DISABLED,
                "channel",
                "The loyalty program is not enabled in this channel.",
            )
        validate_amount(points, account.balance, config)
        amount = (Decimal(points) * config.redemption_rate).quantize(Decimal("0.01"))
        if amount <= 0 or not account.currency:
            raise LoyaltyError(
                LoyaltyErrorCode.INVALID, "points", "These points are worth nothing to redeem."
            )
        work = Posting(account, config, now or timezone.now())
        redemption = Redemption.objects.create(
            account=account,
            idempotency_key=key,
            points=points,
            amount=amount,
            currency=account.currency,
            status=RedemptionStatus.RESERVED,
            requested_by=requested_by,
            created_at=work.now,
        )
        entry = work.post(
            kind=EntryKind.REDEEM,
            source=EntrySource.REDEMPTION,
            source_id=str(redemption.pk),
            key=key,
            points=-points,
            reason=f"Gift card of {amount} {account.currency}",
            staff_user_id=requested_by,
        )
        taken = work.consume(points, entry)
        if taken != points:  # cannot happen while balance = lots - debt holds
            raise RuntimeError(f"Lots of account {account.pk} do not cover its balance.")
        account.lifetime_redeemed += points
        work.activity()
        work.finish()
    return create_gift_card(redemption.pk, client=client)


def create_gift_card(redemption_id: int, *, client: SaleorClient | None = None) -> RedemptionResult:
    """Step 2 (also used to retry an open reservation)."""
    redemption = Redemption.objects.select_related("account", "account__customer").get(
        pk=redemption_id
    )
    if redemption.status != RedemptionStatus.RESERVED:
        return _result(redemption, redemption.account.balance)
    client = client or _client()
    if client is None:
        release(redemption.pk, "Saleor write-back is not configured.")
        raise LoyaltyError(
            LoyaltyErrorCode.SALEOR_ERROR,
            None,
            "Gift cards cannot be created right now; your points were returned.",
        )
    Redemption.objects.filter(pk=redemption.pk).update(attempts=redemption.attempts + 1)
    account = redemption.account
    customer = account.customer
    variables: dict[str, Any] = {
        "input": {
            "balance": {"amount": float(redemption.amount), "currency": redemption.currency},
            "userEmail": customer.email,
            "assignedTo": customer.saleor_user_id,
            "channel": account.channel_slug or None,
            "isActive": True,
            "addTags": [PROGRAM_TAG, redemption_tag(redemption)],
            "note": f"Loyalty redemption of {redemption.points} points",
        }
    }
    try:
        data = client.execute(GIFT_CARD_CREATE, variables)
    except SaleorApiError as exc:
        if exc.errors:  # Saleor rejected the request itself: nothing was created
            return _refused(redemption, str(exc))
        # The card may exist (timeout, 5xx). If Saleor does not show it yet it may still be
        # in flight: keep the reservation; ``settle_reservations`` decides a bit later.
        return _settle_unknown(redemption, client, str(exc), release_if_missing=False)
    payload = data.get("giftCardCreate") or {}
    errors = payload.get("errors") or []
    card = payload.get("giftCard")
    if errors or not card:
        message = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors) or "no card"
        return _refused(redemption, message)
    return _completed(redemption, card)


def _client() -> SaleorClient | None:
    from saleor_crm_plugin.core.saleor_target import get_saleor_client

    return get_saleor_client()


def _refused(redemption: Redemption, message: str) -> RedemptionResult:
    release(redemption.pk, message)
    raise LoyaltyError(
        LoyaltyErrorCode.SALEOR_ERROR,
        None,
        f"Saleor could not create the gift card ({message}); your points were returned.",
    )


def _settle_unknown(
    redemption: Redemption, client: SaleorClient, message: str, *, release_if_missing: bool
) -> RedemptionResult:
    """The request may or may not have created the card: ask Saleor by the redemption's tag."""
    try:
        data = client.execute(GIFT_CARD_BY_TAG, {"tags": [redemption_tag(redemption)]})
    except SaleorApiError as exc:
        Redemption.objects.filter(pk=redemption.pk).update(last_error=f"{message}; {exc}"[:2000])
        logger.warning("Redemption %s left reserved: %s", redemption.pk, message)
        redemption.refresh_from_db()
        return _result(redemption, redemption.account.balance)
    edges = ((data.get("giftCards") or {}).get("edges")) or []
    if edges:
        return _completed(redemption, edges[0]["node"])
    if release_if_missing:
        return _refused(redemption, message)
    Redemption.objects.filter(pk=redemption.pk).update(last_error=message[:2000])
    redemption.refresh_from_db()
    return _result(redemption, redemption.account.balance)


def _completed(redemption: Redemption, card: dict[str, Any]) -> RedemptionResult:
    Redemption.objects.filter(pk=redemption.pk, status=RedemptionStatus.RESERVED).update(
        status=RedemptionStatus.COMPLETED,
        gift_card_id=card.get("id") or "",
        gift_card_last4=card.get("last4CodeChars") or "",
        finished_at=timezone.now(),
        last_error="",
    )
    redemption.refresh_from_db()
    account = LoyaltyAccount.objects.get(pk=redemption.account_id)
    return _result(redemption, account.balance)


def release(redemption_id: int, error: str) -> bool:
    """Give a reservation's points back to the lots they came from. Idempotent."""
    with transaction.atomic():
        redemption = Redemption.objects.select_for_update().get(pk=redemption_id)
        account = (
            LoyaltyAccount.objects.select_for_update(of=("self",))
            .select_related("customer")
            .get(pk=redemption.account_id)
        )
        if redemption.status != RedemptionStatus.RESERVED:
            return False
        config = program_config(account.channel_id, account.channel_slug)
        work = Posting(account, config, timezone.now())
        entry = work.post(
            kind=EntryKind.RELEASE,
            source=EntrySource.REDEMPTION,
            source_id=str(redemption.pk),
            key=f"{redemption.idempotency_key}:release",
            points=redemption.points,
            reason="Gift card not created; points returned",
            data={"error": error[:500]},
        )
        redeem_entry = LedgerEntry.objects.get(idempotency_key=redemption.idempotency_key)
        for used in LotConsumption.objects.filter(entry=redeem_entry).select_related("lot"):
            lot = work.dirty_lots.get(used.lot_id, used.lot)
            lot.remaining += used.points
            if lot.status == LotStatus.SPENT:
                lot.status = LotStatus.ACTIVE
            work.touch(lot)
            work.consumed(entry, lot, -used.points)
            work.pay_debt(lot, entry)
        account.lifetime_redeemed -= redemption.points
        work.finish()
        redemption.status = RedemptionStatus.RELEASED
        redemption.last_error = error[:2000]
        redemption.finished_at = work.now
        redemption.save(update_fields=["status", "last_error", "finished_at"])
    return True


def settle_reservations(
    *, older_than: timedelta = timedelta(minutes=2), client: SaleorClient | None = None
) -> int:
    """Beat task: finish reservations whose outcome was unknown (Saleor was unreachable)."""
    cutoff = timezone.now() - older_than
    settled = 0
    for redemption_id in Redemption.objects.filter(
        status=RedemptionStatus.RESERVED, created_at__lt=cutoff
    ).values_list("pk", flat=True):
        redemption = Redemption.objects.select_related("account").get(pk=redemption_id)
        current = client or _client()
        if current is None:
            break
        with contextlib.suppress(LoyaltyError):  # raised after a release: points are back
            _settle_unknown(
                redemption,
                current,
                redemption.last_error or "unknown outcome",
                release_if_missing=True,
            )
        redemption.refresh_from_db()
        settled += int(redemption.status != RedemptionStatus.RESERVED)
    return settled


def _result(redemption: Redemption, balance: int) -> RedemptionResult:
    return RedemptionResult(
        redemption_id=redemption.pk,
        status=redemption.status,
        points=redemption.points,
        amount=redemption.amount,
        currency=redemption.currency,
        gift_card_id=redemption.gift_card_id,
        gift_card_last4=redemption.gift_card_last4,
        balance=balance,
    )
