"""Loyalty types. Resolvers only read what ``loyalty.services`` computes."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import graphene
from graphene.utils.str_converters import to_camel_case
from graphql.language import ast

from saleor_crm_plugin.customers.models import Customer
from saleor_crm_plugin.graphql.core.connection import (
    CountableConnection,
    connection_field,
    paginate_queryset,
)
from saleor_crm_plugin.graphql.core.types import CrmMoney, money
from saleor_crm_plugin.graphql.loyalty.dataloaders import (
    LoyaltyAccountsByCustomerIdLoader,
    LoyaltyAccountViewLoader,
)
from saleor_crm_plugin.loyalty import services
from saleor_crm_plugin.loyalty.config import TierRule
from saleor_crm_plugin.loyalty.models import EntryKind, EntrySource, LotStatus, LoyaltyAccount

LoyaltyEntryKindEnum = graphene.Enum(
    "LoyaltyEntryKind", [(kind.name, kind.value) for kind in EntryKind]
)
LoyaltyEntrySourceEnum = graphene.Enum(
    "LoyaltyEntrySource", [(source.name, source.value) for source in EntrySource]
)
LoyaltyLotStatusEnum = graphene.Enum(
    "LoyaltyLotStatus", [(status.name, status.value) for status in LotStatus]
)


class LoyaltyTier(graphene.ObjectType):
    code = graphene.String(required=True)
    name = graphene.String(required=True)
    threshold = graphene.Float(
        required=True, description="Spend or points over the tier period needed for the tier."
    )
    multiplier = graphene.Float(required=True, description="Earn multiplier of the tier.")

    class Meta:
        description = "A tier of the loyalty program."

    @staticmethod
    def resolve_threshold(root: TierRule, info: Any) -> float:
        return float(root.threshold)

    @staticmethod
    def resolve_multiplier(root: TierRule, info: Any) -> float:
        return float(root.multiplier)


class LoyaltyExpiringPoints(graphene.ObjectType):
    points = graphene.Int(required=True)
    expires_at = graphene.DateTime(required=True)

    class Meta:
        description = "Spendable points that expire at the same moment."


class LoyaltyLedgerEntry(graphene.ObjectType):
    kind = graphene.Field(LoyaltyEntryKindEnum, required=True)
    source = graphene.Field(LoyaltyEntrySourceEnum, required=True)
    source_id = graphene.String(
        required=True, description="What caused it, e.g. the Saleor Order ID for order points."
    )
    points = graphene.Int(required=True, description="Change of the spendable balance.")
    pending_points = graphene.Int(required=True, description="Change of the pending points.")
    reason = graphene.String(required=True)
    created_at = graphene.DateTime(required=True)

    class Meta:
        interfaces = (graphene.relay.Node,)
        description = "One line of a loyalty account's append-only ledger."


class LoyaltyLedgerEntryCountableConnection(CountableConnection):
    class Meta:
        node = LoyaltyLedgerEntry


def _view(root: LoyaltyAccount, info: Any, pick: Callable[[services.AccountView], Any]) -> Any:
    """Tier and progress need the order history: loaded for all accounts of a page at once."""
    return LoyaltyAccountViewLoader(info.context).load(root).then(pick)


class LoyaltyAccountType(graphene.ObjectType):
    channel_id = graphene.ID(required=True, description="Saleor Channel ID.")
    channel_slug = graphene.String(required=True)
    currency = graphene.String(required=True)
    balance = graphene.Int(required=True, description="Spendable points (negative when owed).")
    pending = graphene.Int(
        required=True, description="Points waiting for their order's return window to close."
    )
    debt = graphene.Int(
        required=True, description="Points reversed after they were spent, not yet repaid."
    )
    lifetime_earned = graphene.Int(required=True)
    lifetime_redeemed = graphene.Int(required=True)
    balance_value = graphene.Field(
        CrmMoney, required=True, description="What the balance is worth as a gift card."
    )
    tier = graphene.Field(LoyaltyTier, required=True)
    next_tier = graphene.Field(LoyaltyTier, description="Null at the top tier.")
    tier_metric = graphene.Float(
        required=True, description="Spend or points counted in the current tier period."
    )
    to_next_tier = graphene.Float(required=True, description="Metric still needed.")
    progress = graphene.Float(required=True, description="0..1 towards the next tier.")
    tier_held_until = graphene.DateTime(
        description="The tier is kept at least until then (no demotion before the period ends)."
    )
    expiring = graphene.List(
        graphene.NonNull(LoyaltyExpiringPoints),
        required=True,
        days=graphene.Int(description="Window in days; default: the program's warning window."),
        description="Spendable points about to expire, soonest first.",
    )
    history = connection_field(
        LoyaltyLedgerEntryCountableConnection,
        kinds=graphene.List(graphene.NonNull(LoyaltyEntryKindEnum)),
        description="Ledger entries, newest first.",
    )

    class Meta:
        name = "LoyaltyAccount"
        description = "A customer's points in one channel."

    @staticmethod
    def resolve_balance_value(root: LoyaltyAccount, info: Any) -> Any:
        return _view(root, info, lambda view: money(view.balance_value, root.currency))

    @staticmethod
    def resolve_tier(root: LoyaltyAccount, info: Any) -> Any:
        return _view(root, info, lambda view: view.tier)

    @staticmethod
    def resolve_next_tier(root: LoyaltyAccount, info: Any) -> Any:
        return _view(root, info, lambda view: view.next_tier)

    @staticmethod
    def resolve_tier_metric(root: LoyaltyAccount, info: Any) -> Any:
        return _view(root, info, lambda view: float(view.tier_metric))

    @staticmethod
    def resolve_to_next_tier(root: LoyaltyAccount, info: Any) -> Any:
        return _view(root, info, lambda view: float(view.to_next_tier))

    @staticmethod
    def resolve_progress(root: LoyaltyAccount, info: Any) -> Any:
        return _view(root, info, lambda view: float(view.progress))

    @staticmethod
    def resolve_tier_held_until(root: LoyaltyAccount, info: Any) -> Any:
        return _view(root, info, lambda view: view.tier_held_until)

    @staticmethod
    def resolve_expiring(root: LoyaltyAccount, info: Any, days: int | None = None) -> list[Any]:
        if days is None:
            return _view(root, info, lambda view: view.expiring)
        return services.account_view(root, expiring_within_days=days).expiring

    @staticmethod
    def resolve_history(root: LoyaltyAccount, info: Any, **args: Any) -> Any:
        return paginate_queryset(
            services.history(root, kinds=args.get("kinds")),
            args,
            ordering=("-created_at", "-pk"),
            connection_type=LoyaltyLedgerEntryCountableConnection,
            field_name="history",
        )


class CustomerLoyaltyFields:
    """Added to ``CrmCustomer``: readable by the customer and by MANAGE_USERS."""

    loyalty = graphene.Field(
        LoyaltyAccountType,
        channel=graphene.String(required=True, description="Channel slug or Saleor Channel ID."),
        description="Loyalty account in a channel; null when the customer has none there.",
    )
    loyalty_accounts = graphene.List(
        graphene.NonNull(LoyaltyAccountType),
        required=True,
        description="Loyalty accounts in every channel.",
    )

    @staticmethod
    def resolve_loyalty(root: Customer, info: Any, channel: str) -> Any:
        def pick(accounts: list[LoyaltyAccount]) -> LoyaltyAccount | None:
            return next((a for a in accounts if channel in (a.channel_slug, a.channel_id)), None)

        return LoyaltyAccountsByCustomerIdLoader(info.context).load(root.pk).then(pick)

    @staticmethod
    def resolve_loyalty_accounts(root: Customer, info: Any) -> Any:
        return LoyaltyAccountsByCustomerIdLoader(info.context).load(root.pk)


class LoyaltyRedemptionType(graphene.ObjectType):
    redemption_id = graphene.ID(required=True)
    status = graphene.String(
        required=True,
        description=(
            "completed, or reserved while Saleor's answer is unknown (settled automatically)."
        ),
    )
    points = graphene.Int(required=True)
    amount = graphene.Field(CrmMoney, required=True)
    gift_card_id = graphene.ID(description="Saleor GiftCard ID.")
    gift_card_last4 = graphene.String(description="Last 4 characters of the gift card code.")
    balance = graphene.Int(required=True, description="Balance after the redemption.")

    class Meta:
        name = "LoyaltyRedemption"

    @staticmethod
    def resolve_amount(root: Any, info: Any) -> Any:
        return money(root.amount, root.currency)

    @staticmethod
    def resolve_gift_card_id(root: Any, info: Any) -> str | None:
        return root.gift_card_id or None

    @staticmethod
    def resolve_gift_card_last4(root: Any, info: Any) -> str | None:
        return root.gift_card_last4 or None


class LoyaltyProgramSettings(graphene.ObjectType):
    channel = graphene.String(required=True)
    enabled = graphene.Boolean(required=True)
    points_per_unit = graphene.Float(required=True)
    rounding = graphene.String(required=True)
    exclude_shipping = graphene.Boolean(required=True)
    exclude_tax = graphene.Boolean(required=True)
    min_order_amount = graphene.Float(required=True)
    return_window_days = graphene.Int(required=True)
    expiry_months = graphene.Int(required=True)
    expiry_mode = graphene.String(required=True)
    expiry_warning_days = graphene.Int(required=True)
    signup_bonus = graphene.Int(required=True)
    first_order_bonus = graphene.Int(required=True)
    birthday_bonus = graphene.Int(required=True)
    review_bonus = graphene.Int(required=True)
    review_bonus_cap = graphene.Int(required=True)
    review_bonus_period = graphene.String(required=True)
    referral_referrer_bonus = graphene.Int(required=True)
    referral_referee_bonus = graphene.Int(required=True)
    redemption_rate = graphene.Float(required=True, description="Currency per point.")
    redemption_min_points = graphene.Int(required=True)
    redemption_max_points = graphene.Int(required=True, description="0 = no maximum.")
    negative_balance = graphene.String(required=True)
    tier_basis = graphene.String(required=True)
    tier_period = graphene.String(required=True)
    tiers = graphene.List(graphene.NonNull(LoyaltyTier), required=True)
    overridden = graphene.List(
        graphene.NonNull(graphene.String),
        required=True,
        description=(
            "Fields whose value comes from settings saved with loyaltyProgramSettingsUpdate "
            "(for this channel or all channels); the others come from the configuration."
        ),
    )

    class Meta:
        description = (
            "The effective program of a channel: defaults, then the plugin configuration or the "
            "App's CRM_LOYALTY settings, then what staff saved with "
            "loyaltyProgramSettingsUpdate (see docs/loyalty.md). An empty channel means the "
            "program of channels without their own settings."
        )


class LoyaltyProgramSettingsChangeType(graphene.ObjectType):
    channel = graphene.String(
        required=True, description="Channel slug or ID as entered; empty for all channels."
    )
    changes = graphene.JSONString(
        required=True,
        description='Changed fields, e.g. {"pointsPerUnit": {"old": null, "new": "2"}}; null '
        "means not saved in the CRM (the configuration applied).",
    )
    changed_by_user_id = graphene.ID(description="Saleor User ID of the staff member.")
    changed_by_email = graphene.String()
    changed_by_app_id = graphene.ID(description="Saleor App ID when the token was an app's.")
    changed_at = graphene.DateTime(required=True)

    class Meta:
        name = "LoyaltyProgramSettingsChange"
        description = "One audited edit of the loyalty program settings."

    @staticmethod
    def resolve_changes(root: Any, info: Any) -> dict[str, Any]:
        return {to_camel_case(key): value for key, value in root.changes.items()}

    @staticmethod
    def resolve_changed_by_user_id(root: Any, info: Any) -> str | None:
        return root.changed_by_user_id or None

    @staticmethod
    def resolve_changed_by_email(root: Any, info: Any) -> str | None:
        return root.changed_by_email or None

    @staticmethod
    def resolve_changed_by_app_id(root: Any, info: Any) -> str | None:
        return root.changed_by_app_id or None


class LoyaltyProgramSettingsChangeCountableConnection(CountableConnection):
    class Meta:
        node = LoyaltyProgramSettingsChangeType


class CrmDecimal(graphene.Scalar):
    """A decimal number, as a JSON number or string; parsed from its text, so 0.01 stays exactly
    0.01 (graphene's Decimal turns a JSON float into its binary expansion and refuses number
    literals)."""

    @staticmethod
    def serialize(value: Any) -> str:
        return str(value)

    @staticmethod
    def parse_literal(node: Any) -> Decimal | None:
        if isinstance(node, ast.IntValue | ast.FloatValue | ast.StringValue):
            return CrmDecimal.parse_value(node.value)
        return None

    @staticmethod
    def parse_value(value: Any) -> Decimal | None:
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            return None
        try:
            return Decimal(str(value).strip())
        except InvalidOperation:
            return None


class LoyaltyTierInput(graphene.InputObjectType):
    code = graphene.String(required=True, description="Unique code, e.g. silver.")
    name = graphene.String(description="Display name; defaults to the code in title case.")
    threshold = CrmDecimal(
        required=True,
        description="Spend or points over the tier period; the first tier has 0 and each "
        "next one a higher threshold.",
    )
    multiplier = CrmDecimal(required=True, description="Earn multiplier, more than 0.")


class LoyaltyProgramSettingsInput(graphene.InputObjectType):
    """Every field is optional: omitted keeps the current value, null removes the saved value
    so the configuration applies again."""

    enabled = graphene.Boolean()
    points_per_unit = CrmDecimal(description="Points per currency unit, 0 or more.")
    rounding = graphene.String(description="down, half_up or up.")
    exclude_shipping = graphene.Boolean()
    exclude_tax = graphene.Boolean()
    min_order_amount = CrmDecimal()
    return_window_days = graphene.Int(description="Days after fulfilment, 0 or more.")
    expiry_months = graphene.Int(description="0 = points never expire.")
    expiry_mode = graphene.String(description="fixed or inactivity.")
    expiry_warning_days = graphene.Int()
    signup_bonus = graphene.Int()
    first_order_bonus = graphene.Int()
    birthday_bonus = graphene.Int()
    birthday_metadata_key = graphene.String()
    review_bonus = graphene.Int()
    review_bonus_cap = graphene.Int(description="Bonuses per period; 0 = no cap.")
    review_bonus_period = graphene.String(description="month or year.")
    referral_referrer_bonus = graphene.Int()
    referral_referee_bonus = graphene.Int()
    redemption_rate = CrmDecimal(description="Currency per point.")
    redemption_min_points = graphene.Int()
    redemption_max_points = graphene.Int(description="0 = no maximum.")
    negative_balance = graphene.String(description="negative or clawback.")
    tier_basis = graphene.String(description="spend or points.")
    tier_period = graphene.String(description="rolling_12_months, calendar_year or lifetime.")
    tiers = graphene.List(graphene.NonNull(LoyaltyTierInput))

    class Meta:
        description = (
            "Loyalty program settings to save. Omitted fields keep their value; null removes "
            "the saved value so the configuration applies again."
        )


class LoyaltyChannelSummary(graphene.ObjectType):
    channel_id = graphene.ID(required=True)
    channel_slug = graphene.String(required=True)
    currency = graphene.String(required=True)
    accounts = graphene.Int(required=True)
    issued = graphene.Int(required=True, description="Points confirmed or granted.")
    pending = graphene.Int(required=True)
    redeemed = graphene.Int(required=True)
    expired = graphene.Int(required=True)
    reversed = graphene.Int(required=True, description="Points taken back by refunds.")
    outstanding = graphene.Int(required=True, description="Spendable points (the liability).")
    debt = graphene.Int(required=True)
    liability = graphene.Field(
        CrmMoney, required=True, description="Outstanding points at the redemption rate."
    )
    tier_counts = graphene.JSONString(required=True, description="Accounts per tier code.")

    class Meta:
        description = "Points issued, redeemed and outstanding in one channel."

    @staticmethod
    def resolve_liability(root: services.ChannelSummary, info: Any) -> Any:
        return money(root.liability, root.currency)

    @staticmethod
    def resolve_tier_counts(root: services.ChannelSummary, info: Any) -> dict[str, int]:
        return root.tiers
