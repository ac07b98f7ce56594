from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from saleor_crm_plugin.core.tables import format_table
from saleor_crm_plugin.recommendations import services
from saleor_crm_plugin.recommendations.exceptions import RecommendationError
from saleor_crm_plugin.tasks.recommendations import train_recommendations_task


class Command(BaseCommand):
    help = (
        "Train the recommendation model now, evaluate it against the popularity and buy-again "
        "baselines and promote it if it wins (``--enqueue`` hands the work to the ml queue)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--enqueue", action="store_true", help="Queue on Celery instead")
        parser.add_argument("--epochs", type=int, help="Override RECS_EPOCHS for this run")
        parser.add_argument("--threads", type=int, help="Override RECS_THREADS for this run")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["enqueue"]:
            train_recommendations_task.delay(trigger="command")
            self.stdout.write("Training enqueued on the ml queue.")
            return
        overrides = {
            name: options[name] for name in ("epochs", "threads") if options[name] is not None
        }
        try:
            run = services.train_model(
                trigger="command", params=services.params_from_settings(**overrides)
            )
        except RecommendationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"Run {run.pk}: {run.decision} in {run.duration_seconds:.1f}s "
            f"({run.n_users} customers x {run.n_items} products, "
            f"{run.n_interactions} purchases). {run.reason}\n"
        )
        if run.metrics:
            names = ["model", "lightfm", "popularity", "buy_again"]
            self.stdout.write(
                format_table(
                    ["scorer", "precision@10", "recall@10", "ndcg@10", "map@10", "coverage"],
                    [
                        [
                            name,
                            *(
                                f"{run.metrics[name][m]:.4f}"
                                for m in ("precision", "recall", "ndcg", "map", "coverage")
                            ),
                        ]
                        for name in names
                        if name in run.metrics
                    ],
                )
            )
