"""The loyalty program's public service API (what GraphQL, CLI, tasks and other domains call).

The rules live in ``earning`` (orders, replays, confirmation, tiers), ``bonuses`` (bonuses and
staff adjustments), ``queries`` (read models and the audit), ``redemption`` and ``expiry``;
this module gathers the entry points so callers need one import. Every function raises
``LoyaltyError(code, field, message)`` for a refused request.
"""

from __future__ import annotations

from saleor_crm_plugin.loyalty.bonuses import (
    BonusResult,
    adjust_points,
    award_birthdays,
    award_referral,
    award_review_bonus,
    open_account,
    parse_birthday,
    revoke_review_bonus,
)
from saleor_crm_plugin.loyalty.earning import (
    OrderRow,
    confirm_due,
    evaluate_tiers,
    handle_event,
    handle_events,
    lot_exists,
    order_histories,
    refresh_account,
    replay_orders,
    reverse_active,
    sync_customer,
    sync_order,
)
from saleor_crm_plugin.loyalty.models import LoyaltyAccount
from saleor_crm_plugin.loyalty.queries import (
    AccountView,
    AuditProblem,
    ChannelSummary,
    ExpiringPoints,
    account_view,
    account_views,
    audit,
    balance_of,
    find_account,
    get_account,
    history,
    open_reservations,
    points_for_amount,
    points_value,
    program_summary,
    resolve_channel,
)

__all__ = [
    "AccountView",
    "AuditProblem",
    "BonusResult",
    "ChannelSummary",
    "ExpiringPoints",
    "LoyaltyAccount",
    "OrderRow",
    "account_view",
    "account_views",
    "adjust_points",
    "audit",
    "award_birthdays",
    "award_referral",
    "award_review_bonus",
    "balance_of",
    "confirm_due",
    "evaluate_tiers",
    "find_account",
    "get_account",
    "handle_event",
    "handle_events",
    "history",
    "lot_exists",
    "open_account",
    "open_reservations",
    "order_histories",
    "parse_birthday",
    "points_for_amount",
    "points_value",
    "program_summary",
    "refresh_account",
    "replay_orders",
    "resolve_channel",
    "reverse_active",
    "revoke_review_bonus",
    "sync_customer",
    "sync_order",
]
