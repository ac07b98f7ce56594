"""Every GraphQL document we send to Saleor, and every subscription in our manifest, is valid
against Saleor 3.23's real schema."""

import importlib
import pkgutil

import pytest

import saleor_crm_plugin
from saleor_crm_plugin.app.subscriptions import all_subscriptions
from saleor_crm_plugin.core.saleor_api import DOCUMENTS
from tests.captures import CONTRACT_DIR, validate_against_saleor


def _import_everything() -> None:
    for module in pkgutil.walk_packages(saleor_crm_plugin.__path__, "saleor_crm_plugin."):
        if module.name in {"saleor_crm_plugin.plugin", "saleor_crm_plugin.app.wsgi"}:
            continue  # plugin.py needs Saleor itself; wsgi configures Django on import
        if ".migrations" in module.name or module.name.startswith("saleor_crm_plugin.app.celery"):
            continue
        importlib.import_module(module.name)


_import_everything()


def test_documents_are_registered():
    assert "AppId" in DOCUMENTS
    assert "CrmUpdatePrivateMetadata" in DOCUMENTS


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_document_is_valid_against_saleor_schema(name):
    assert validate_against_saleor(DOCUMENTS[name]) == []


@pytest.mark.parametrize("kind", sorted(all_subscriptions()), ids=str)
def test_manifest_subscription_is_valid_against_saleor_schema(kind):
    assert validate_against_saleor(all_subscriptions()[kind]) == []


@pytest.mark.parametrize(
    "path", sorted((CONTRACT_DIR / "subscriptions").glob("*.graphql")), ids=lambda p: p.stem
)
def test_captured_subscriptions_are_valid(path):
    # Sanity check of the schema loader itself: the queries Saleor accepted must validate.
    assert validate_against_saleor(path.read_text()) == []


def test_invalid_document_is_reported():
    assert validate_against_saleor("query { app { nonexistent } }") == [
        'Cannot query field "nonexistent" on type "App".'
    ]


@pytest.mark.parametrize("kind", sorted(all_subscriptions()), ids=str)
def test_manifest_queries_cover_the_captured_fields(kind):
    # Our queries ask for at least what the captured payloads contain, so the parser sees the
    # same shapes in production as in the contract tests.
    from graphql import parse

    captured_path = CONTRACT_DIR / "subscriptions" / f"{kind.value.upper()}.graphql"
    if not captured_path.exists():
        pytest.skip("no capture for this event")
    ours = _field_paths(parse(all_subscriptions()[kind]))
    captured = _field_paths(parse(captured_path.read_text()))
    assert captured - ours == set()


def _field_paths(document) -> set[str]:
    fragments = {
        d.name.value: d
        for d in document.definitions
        if d.__class__.__name__ == "FragmentDefinition"
    }
    paths: set[str] = set()

    def walk(selection_set, prefix):
        for sel in selection_set.selections:
            kind = sel.__class__.__name__
            if kind == "Field":
                path = f"{prefix}.{sel.name.value}"
                paths.add(path)
                if sel.selection_set:
                    walk(sel.selection_set, path)
            elif kind == "FragmentSpread":
                walk(fragments[sel.name.value].selection_set, prefix)
            elif kind == "InlineFragment":
                walk(sel.selection_set, prefix)

    for definition in document.definitions:
        if definition.__class__.__name__ == "OperationDefinition":
            walk(definition.selection_set, "")
    return paths
