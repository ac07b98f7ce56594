"""The committed schema.graphql is what the code serves: schema changes show up in review."""

from saleor_crm_plugin.graphql.printing import SCHEMA_PATH, printed_schema


def test_committed_schema_matches_the_code():
    assert SCHEMA_PATH.read_text() == printed_schema(), (
        "saleor_crm_plugin/graphql/schema.graphql is stale: run "
        "`DJANGO_SETTINGS_MODULE=tests.settings .venv/bin/saleor-crm graphql-schema --write`"
    )
