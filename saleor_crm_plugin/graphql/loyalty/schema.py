"""Loyalty root fields and mutations: authorise, map input, call ``loyalty.services``."""

from __future__ import annotations

from typing import Any

import graphene
from graphene.utils.str_converters import to_camel_case

from saleor_crm_plugin.core.errors import CrmError, CrmValidationError
from saleor_crm_plugin.customers.models import Customer
from saleor_crm_plugin.graphql.core.connection import connection_field, paginate_queryset
from saleor_crm_plugin.graphql.core.ids import resolve_global_id
from saleor_crm_plugin.graphql.core.mutations import BaseMutation, error_type
from saleor_crm_plugin.graphql.core.permissions import permission_required, requester_of
from saleor_crm_plugin.graphql.loyalty.types import (
    LoyaltyAccountType,
    LoyaltyChannelSummary,
    LoyaltyLedgerEntry,
    LoyaltyProgramSettings,
    LoyaltyProgramSettingsChangeCountableConnection,
    LoyaltyProgramSettingsInput,
    LoyaltyRedemptionType,
)
from saleor_crm_plugin.loyalty import program_settings, redemption, services
from saleor_crm_plugin.loyalty.config import config_as_dict
from saleor_crm_plugin.loyalty.error_codes import LoyaltyErrorCode
from saleor_crm_plugin.loyalty.exceptions import LoyaltyError
from saleor_crm_plugin.loyalty.models import LoyaltyAccount
from saleor_crm_plugin.permissions import (
    LOYALTY_ADJUST,
    LOYALTY_PROGRAM_MANAGE,
    LOYALTY_PROGRAM_READ,
)

LoyaltyErrorType = error_type("LoyaltyError", LoyaltyErrorCode)


def _settings_root(channel: str) -> dict[str, Any]:
    config = program_settings.effective_config(channel)
    data = config_as_dict(config)
    overridden = program_settings.overridden_keys(channel)
    data.update(
        tiers=config.tiers, channel=channel, overridden=[to_camel_case(k) for k in overridden]
    )
    return data


class LoyaltyQueries(graphene.ObjectType):
    loyalty_program_settings = graphene.Field(
        LoyaltyProgramSettings,
        channel=graphene.String(
            description="Channel slug or Saleor Channel ID; omit for the program of channels "
            "without their own settings."
        ),
        description="The effective loyalty program of a channel. Requires MANAGE_USERS.",
    )
    loyalty_program_settings_changes = connection_field(
        LoyaltyProgramSettingsChangeCountableConnection,
        channel=graphene.String(
            description="Only edits of this channel key (empty string: the all-channels "
            "settings); every edit when omitted."
        ),
        description="Audit trail of loyaltyProgramSettingsUpdate, newest first. "
        "Requires MANAGE_USERS.",
    )
    loyalty_program_summary = graphene.List(
        graphene.NonNull(LoyaltyChannelSummary),
        required=True,
        channel_id=graphene.ID(description="Saleor Channel ID; all channels when omitted."),
        description=(
            "Points issued, redeemed, outstanding and the liability per channel. "
            "Requires MANAGE_USERS."
        ),
    )

    @staticmethod
    @permission_required(LOYALTY_PROGRAM_READ)
    def resolve_loyalty_program_settings(
        root: Any, info: Any, channel: str | None = None
    ) -> dict[str, Any]:
        return _settings_root(channel or "")

    @staticmethod
    @permission_required(LOYALTY_PROGRAM_READ)
    def resolve_loyalty_program_settings_changes(root: Any, info: Any, **args: Any) -> Any:
        return paginate_queryset(
            program_settings.settings_history(args.get("channel")),
            args,
            ordering=("-changed_at", "-pk"),
            connection_type=LoyaltyProgramSettingsChangeCountableConnection,
            field_name="loyaltyProgramSettingsChanges",
        )

    @staticmethod
    @permission_required(LOYALTY_PROGRAM_READ)
    def resolve_loyalty_program_summary(
        root: Any, info: Any, channel_id: str | None = None
    ) -> list[services.ChannelSummary]:
        return services.program_summary(channel_id)


def _own_customer(info: Any) -> Customer:
    requester = requester_of(info)
    customer = (
        Customer.objects.filter(saleor_user_id=requester.user_id).first()
        if requester.user_id
        else None
    )
    if customer is None:
        raise LoyaltyError(
            LoyaltyErrorCode.NOT_FOUND, None, "The CRM has no loyalty account for you yet."
        )
    return customer


class LoyaltyRedeem(BaseMutation):
    redemption = graphene.Field(LoyaltyRedemptionType)
    account = graphene.Field(LoyaltyAccountType)

    class Arguments:
        channel = graphene.String(required=True, description="Channel slug or Saleor Channel ID.")
        points = graphene.Int(required=True)
        idempotency_key = graphene.String(
            description="Retrying with the same key returns the first result instead of "
            "redeeming twice."
        )

    class Meta:
        description = (
            "Turn the signed-in customer's points into a Saleor gift card for their e-mail. "
            "Points are reserved first and returned if Saleor refuses the card."
        )
        login_required = True
        error_type_class = LoyaltyErrorType

    @classmethod
    def perform_mutation(cls, root: Any, info: Any, **data: Any) -> LoyaltyRedeem:
        customer = _own_customer(info)
        account = services.find_account(customer, data["channel"])
        if account is None:
            raise LoyaltyError(
                LoyaltyErrorCode.NOT_FOUND, "channel", "No loyalty account in this channel."
            )
        result = redemption.redeem_points(
            customer=customer,
            channel_id=account.channel_id,
            points=data["points"],
            idempotency_key=data.get("idempotency_key") or "",
            requested_by=requester_of(info).user_id or "",
        )
        account.refresh_from_db()
        account.customer = customer
        return cls(redemption=result, account=account)


class LoyaltyAdjust(BaseMutation):
    account = graphene.Field(LoyaltyAccountType)
    entry = graphene.Field(LoyaltyLedgerEntry)

    class Arguments:
        customer_id = graphene.ID(required=True, description="CrmCustomer ID or Saleor User ID.")
        channel = graphene.String(required=True, description="Channel slug or Saleor Channel ID.")
        points = graphene.Int(required=True, description="Positive to credit, negative to debit.")
        reason = graphene.String(required=True, description="Shown in the customer's history.")
        bonus = graphene.Boolean(
            default_value=False, description="Post a custom bonus (positive points only)."
        )
        allow_negative = graphene.Boolean(
            default_value=False, description="Allow a debit beyond the balance."
        )
        idempotency_key = graphene.String()

    class Meta:
        description = "Credit or debit a customer's points, or grant a custom bonus."
        permissions = (LOYALTY_ADJUST,)
        error_type_class = LoyaltyErrorType

    @classmethod
    def perform_mutation(cls, root: Any, info: Any, **data: Any) -> LoyaltyAdjust:
        try:
            type_name, pk = resolve_global_id(
                data["customer_id"], ("CrmCustomer", "User"), field="customerId"
            )
        except CrmError as exc:
            raise LoyaltyError(LoyaltyErrorCode.INVALID, "customerId", exc.message) from exc
        customers = Customer.objects.all()
        customer = (
            customers.filter(saleor_user_id=data["customer_id"]).first()
            if type_name == "User"
            else customers.filter(pk=int(pk)).first()
            if pk.isdigit()
            else None
        )
        if customer is None:
            raise LoyaltyError(LoyaltyErrorCode.NOT_FOUND, "customerId", "Customer not found.")
        channel_id, slug, _ = services.resolve_channel(customer, data["channel"])
        entry = services.adjust_points(
            customer=customer,
            channel_id=channel_id,
            channel_slug=slug,
            points=data["points"],
            reason=data["reason"],
            staff_user_id=requester_of(info).user_id or requester_of(info).app_id or "",
            idempotency_key=data.get("idempotency_key") or "",
            allow_negative=data.get("allow_negative", False),
            bonus=data.get("bonus", False),
        )
        account = LoyaltyAccount.objects.get(pk=entry.account_id)
        account.customer = customer
        return cls(account=account, entry=entry)


def _setting_value(value: Any) -> Any:
    """Tier inputs as the plain dicts the configuration parser reads."""
    if isinstance(value, list):
        return [dict(item) for item in value]
    return value


class LoyaltyProgramSettingsUpdate(BaseMutation):
    settings = graphene.Field(LoyaltyProgramSettings, description="The effective program now.")

    class Arguments:
        channel = graphene.String(
            description="Channel slug or Saleor Channel ID; omit to edit the program of every "
            "channel (a channel's own saved settings still win)."
        )
        input = LoyaltyProgramSettingsInput(required=True)

    class Meta:
        description = (
            "Save loyalty program settings in the CRM's database; they win over the plugin "
            "configuration and CRM_LOYALTY settings and apply to events processed from now on "
            "(points already posted do not change). Every change is audited."
        )
        permissions = (LOYALTY_PROGRAM_MANAGE,)
        error_type_class = LoyaltyErrorType

    @classmethod
    def perform_mutation(cls, root: Any, info: Any, **data: Any) -> LoyaltyProgramSettingsUpdate:
        requester = requester_of(info)
        channel = data.get("channel") or ""
        values = {key: _setting_value(value) for key, value in dict(data["input"]).items()}
        try:
            program_settings.update_program_settings(
                channel,
                values,
                program_settings.Editor(
                    user_id=requester.user_id or "",
                    email=requester.email or "",
                    app_id=requester.app_id or "",
                ),
            )
        except CrmValidationError as exc:
            # Service keys are the configuration's; clients know the input's field names.
            raise CrmValidationError(
                [
                    LoyaltyError(e.code, to_camel_case(e.field) if e.field else None, e.message)  # type: ignore[arg-type]
                    for e in exc.errors
                ]
            ) from exc
        return cls(settings=_settings_root(channel))


class LoyaltyMutations(graphene.ObjectType):
    loyalty_redeem = LoyaltyRedeem.Field()
    loyalty_adjust = LoyaltyAdjust.Field()
    loyalty_program_settings_update = LoyaltyProgramSettingsUpdate.Field()
