"""Demo report: train on the replayed UCI history, then show what a few customers would see."""

from __future__ import annotations

from typing import TextIO

from django.db.models import Count
from django.test import override_settings

from saleor_crm_plugin.core.tables import format_table
from saleor_crm_plugin.customers.models import Customer
from saleor_crm_plugin.recommendations import services, serving
from saleor_crm_plugin.recommendations.catalogue import product_names
from saleor_crm_plugin.recommendations.data import extract_interactions, paid_lines
from saleor_crm_plugin.recommendations.models import RunDecision
from saleor_crm_plugin.recommendations.training import fit

DEMO_CUSTOMERS = 3
PER_CUSTOMER = 5


def report(out: TextIO) -> None:
    out.write("Recommendations (LightFM, WARP)\n")
    # The demo is small and runs in one process: reproducible, and no cached model from an
    # earlier run in the same process.
    with override_settings(CRM_RECS_THREADS=1, CRM_RECS_MIN_INTERACTIONS=100):
        serving.clear_caches()
        run = services.train_model(trigger="demo")
        _report(out, run)
    serving.clear_caches()


def _report(out: TextIO, run: services.ModelRun) -> None:
    out.write(
        f"  run {run.pk}: {run.n_users} customers x {run.n_items} products, "
        f"{run.n_interactions} purchases, {run.duration_seconds:.1f}s -> {run.decision}\n"
        f"  {run.reason}\n"
    )
    if run.metrics:
        out.write("\n  Holdout (each customer's last order), at 10\n")
        out.write(
            format_table(
                ["scorer", "precision", "recall", "NDCG", "MAP", "coverage"],
                [
                    [
                        name,
                        *(
                            f"{run.metrics[name][m]:.3f}"
                            for m in ("precision", "recall", "ndcg", "map", "coverage")
                        ),
                    ]
                    for name in ("model", "lightfm", "popularity", "buy_again")
                ],
                indent="    ",
            )
        )
    customer_ids = list(
        paid_lines()
        .values("order__customer_id")
        .annotate(n=Count("order_id", distinct=True))
        .order_by("-n", "order__customer_id")
        .values_list("order__customer_id", flat=True)[:DEMO_CUSTOMERS]
    )
    preview = None
    if run.decision == RunDecision.FALLBACK:
        out.write(
            "  No model promoted: shoppers see popular products. Below, a PREVIEW of what the\n"
            "  rejected model would have shown (not served), to make its reasons visible.\n"
        )
        preview = _preview_model(run)
    rows: list[list[object]] = []
    recommended: dict[int, list[serving.Recommendation]] = {}
    # Discovery view: products the customer has not bought yet, so the reasons show the
    # model connecting new products to past purchases.
    with override_settings(CRM_RECS_EXCLUDE_PURCHASED=True):
        for customer in Customer.objects.filter(pk__in=customer_ids).order_by("pk"):
            recommended[customer.pk] = (
                serving.personal_preview(preview, customer, PER_CUSTOMER)
                if preview is not None
                else serving.recommend(customer=customer, first=PER_CUSTOMER)
            )
    anonymous = serving.recommend(customer=None, first=PER_CUSTOMER)
    ids = {r.product_id for recs in recommended.values() for r in recs}
    ids |= {r.because_of for recs in recommended.values() for r in recs if r.because_of}
    ids |= {r.product_id for r in anonymous}
    names = product_names(ids)
    emails = dict(Customer.objects.filter(pk__in=customer_ids).values_list("pk", "email"))
    for customer_pk, recs in recommended.items():
        for n, rec in enumerate(recs):
            rows.append(
                [
                    emails[customer_pk] if n == 0 else "",
                    _short(names.get(rec.product_id, rec.product_id)),
                    f"{rec.score:.2f}",
                    _why(rec, names),
                ]
            )
    for n, rec in enumerate(anonymous):
        rows.append(
            [
                "(anonymous)" if n == 0 else "",
                _short(names.get(rec.product_id, "")),
                f"{rec.score:.2f}",
                _why(rec, names),
            ]
        )
    out.write("\n  What a few customers would see (products they have not bought yet)\n")
    out.write(format_table(["customer", "product", "score", "why"], rows, indent="    "))
    if anonymous:
        top = anonymous[0].product_id
        together = serving.bought_together(top, first=3)
        together_names = product_names([r.product_id for r in together])
        out.write(f"\n  Frequently bought with {_short(names.get(top, top))}\n")
        out.write(
            format_table(
                ["product", "confidence", "why"],
                [
                    [_short(together_names.get(r.product_id, "")), f"{r.score:.2f}", r.explanation]
                    for r in together
                ],
                indent="    ",
            )
            if together
            else "    (not enough shared orders yet)\n"
        )


def _preview_model(run: services.ModelRun) -> serving.LoadedModel:
    """Refit the run's configuration on all data in memory (nothing stored or served)."""
    data = extract_interactions()
    params = services.params_from_settings()
    history = data.matrix(half_life_days=params.half_life_days)
    reps = fit(
        history,
        services.item_features(data, params),
        params,
        user_features=services.user_features(data, params),
    )
    return serving.LoadedModel.from_representations(
        run.pk,
        data.user_ids,
        data.item_ids,
        reps,
        history,
        params.repeat_weight,
        services.user_feature_names(data, params),
        data.user_countries,
    )


def _why(rec: serving.Recommendation, names: dict[str, str]) -> str:
    if rec.reason == serving.Reason.PERSONAL and rec.because_of:
        return f"you bought {_short(names.get(rec.because_of, ''), 28)}"
    return rec.explanation


def _short(text: str, width: int = 34) -> str:
    text = text.strip()
    return text if len(text) <= width else text[: width - 1] + "…"
