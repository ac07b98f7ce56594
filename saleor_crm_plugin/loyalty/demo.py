"""Demo report: what the loyalty program made of the replayed UCI history."""

from __future__ import annotations

from typing import TextIO

from saleor_crm_plugin.core.tables import format_table
from saleor_crm_plugin.loyalty.models import LedgerEntry, LoyaltyAccount
from saleor_crm_plugin.loyalty.services import account_view, audit, program_summary


def report(out: TextIO) -> None:
    out.write(
        "Loyalty program (points ledger, default settings: 1 point per GBP net of shipping)\n"
    )
    summaries = program_summary()
    if not summaries:
        out.write("  no loyalty accounts yet\n")
        return
    problems = audit()
    for summary in summaries:
        tiers = ", ".join(f"{code or '-'} {n}" for code, n in sorted(summary.tiers.items()))
        out.write(
            f"  {summary.channel_slug or summary.channel_id}: {summary.accounts:,} accounts, "
            f"{summary.issued:,} points confirmed, {summary.pending:,} pending, "
            f"{summary.reversed:,} reversed by refunds, outstanding {summary.outstanding:,} "
            f"(liability {summary.liability:,.2f} {summary.currency})\n"
            f"  tiers: {tiers}\n"
        )
    verdict = f"{len(problems)} problems" if problems else "consistent (balance = sum of entries)"
    out.write(
        f"  ledger: {LedgerEntry.objects.count():,} entries; audit {verdict}\n"
        "\n  Top customers by points\n"
    )
    top = LoyaltyAccount.objects.select_related("customer").order_by("-balance", "-pending", "pk")
    rows = []
    for account in top[:6]:
        view = account_view(account)
        expiring = sum(item.points for item in view.expiring)
        rows.append(
            [
                account.customer.email,
                view.tier.name,
                view.balance,
                view.pending,
                view.lifetime_earned,
                view.balance_value,
                f"{view.progress:.0%}" if view.next_tier else "top",
                expiring,
            ]
        )
    out.write(
        format_table(
            [
                "customer",
                "tier",
                "points",
                "pending",
                "earned",
                "worth GBP",
                "to next tier",
                "expiring 30d",
            ],
            rows,
        )
    )
