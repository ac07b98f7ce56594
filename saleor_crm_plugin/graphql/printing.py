"""The printed schema committed as ``schema.graphql`` (reviewed as a diff, checked by a test)."""

from __future__ import annotations

from pathlib import Path

SCHEMA_PATH = Path(__file__).parent / "schema.graphql"


def printed_schema() -> str:
    from graphql.utils.schema_printer import print_schema

    from saleor_crm_plugin.graphql.api import schema

    return print_schema(schema).strip() + "\n"
