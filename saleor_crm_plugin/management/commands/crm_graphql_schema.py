"""``saleor-crm graphql-schema [--write] [--federation]``: print the CRM GraphQL schema.

``--write`` refreshes the committed ``saleor_crm_plugin/graphql/schema.graphql`` (a test fails
when it differs from the code, so schema changes are always reviewed as a diff).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from saleor_crm_plugin.graphql.printing import SCHEMA_PATH, printed_schema


class Command(BaseCommand):
    help = "Print the CRM GraphQL schema (or write it to saleor_crm_plugin/graphql/schema.graphql)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--write", action="store_true", help="Update schema.graphql.")
        parser.add_argument(
            "--federation", action="store_true", help="Print the federation subgraph SDL."
        )

    def handle(
        self, *args: Any, write: bool = False, federation: bool = False, **options: Any
    ) -> None:
        from saleor_crm_plugin.graphql.api import schema
        from saleor_crm_plugin.graphql.core.federation import federation_sdl

        text = federation_sdl(schema) if federation else printed_schema()
        if write:
            SCHEMA_PATH.write_text(text)
            self.stdout.write(f"Wrote {SCHEMA_PATH}")
        else:
            self.stdout.write(text, ending="")
