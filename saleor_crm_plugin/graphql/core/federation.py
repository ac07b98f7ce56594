"""Apollo Federation v1 subgraph support (``_service { sdl }``, ``_entities``).

The CRM extends Saleor's own entities (``User``, ``Product``, ``Order``) instead of duplicating
them, so a gateway (Apollo, Cosmo) serves Saleor and the CRM as one graph: ``me { email crm {
orderCount } }`` asks Saleor for ``me`` and the CRM for ``crm``. An entity type here is a stub
holding Saleor's key fields plus the CRM fields; it sets ``federation_key`` to Saleor's
``@key`` (``"id"``, ``"id channel"``).

The SDL the gateway composes is derived from the executable schema: entity stubs become ``extend
type X @key(fields: ...)`` with their key fields ``@external``, root types become ``extend type
Query``, the federation plumbing is left out (as the spec asks), and so are root fields that
Saleor already defines (``FEDERATION_HIDDEN_ROOT_FIELDS``: through a gateway, ``me`` is Saleor's
and the CRM data is at ``me { crm }``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import graphene
from graphql import parse
from graphql.error import GraphQLError
from graphql.language import ast
from graphql.language.printer import print_ast
from graphql.utils.schema_printer import print_schema

FEDERATION_TYPES = {"_Any", "_Entity", "_Service"}
FEDERATION_FIELDS = {"_entities", "_service"}
# Root fields of our own endpoint that Saleor's graph already has; a gateway would reject them.
FEDERATION_HIDDEN_ROOT_FIELDS = {"Query": {"me"}, "Mutation": set()}


def _literal(node: ast.Node) -> Any:
    if isinstance(node, ast.ObjectValue):
        return {f.name.value: _literal(f.value) for f in node.fields}
    if isinstance(node, ast.ListValue):
        return [_literal(v) for v in node.values]
    if isinstance(node, ast.IntValue):
        return int(node.value)
    if isinstance(node, ast.FloatValue):
        return float(node.value)
    if isinstance(node, ast.NullValue if hasattr(ast, "NullValue") else ()):
        return None
    return getattr(node, "value", None)


class _Any(graphene.Scalar):
    """_Any value scalar as defined by Federation spec."""

    class Meta:
        name = "_Any"

    @staticmethod
    def serialize(value: Any) -> Any:
        return value

    @staticmethod
    def parse_value(value: Any) -> Any:
        return value

    @staticmethod
    def parse_literal(node: ast.Node) -> Any:
        return _literal(node)


class _Service(graphene.ObjectType):
    sdl = graphene.String()

    class Meta:
        name = "_Service"

    @staticmethod
    def resolve_sdl(root: Any, info: Any) -> str:
        return federation_sdl(info.schema)


@dataclass(frozen=True)
class EntityRef:
    """A Saleor object the gateway asks us about, known only by its key fields."""

    typename: str
    id: str
    channel: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def entity_types(schema_types: list[type[graphene.ObjectType]]) -> dict[str, type]:
    return {t._meta.name: t for t in schema_types if getattr(t, "federation_key", None)}


def build_federation_queries(types: list[type[graphene.ObjectType]]) -> type:
    """A Query mixin with ``_entities`` and ``_service`` for the given entity stub types."""
    by_name = entity_types(types)

    class _Entity(graphene.Union):
        """_Entity union as defined by Federation spec."""

        class Meta:
            name = "_Entity"
            types = tuple(by_name.values())

        @classmethod
        def resolve_type(cls, instance: EntityRef, info: Any) -> type:
            return by_name[instance.typename]

    def resolve_entities(root: Any, info: Any, representations: list[Any]) -> list[EntityRef]:
        refs = []
        for representation in representations:
            if not isinstance(representation, dict):
                raise GraphQLError("Each representation must be an object.")
            typename = representation.get("__typename")
            entity = by_name.get(typename)
            if entity is None:
                raise GraphQLError(f"This subgraph does not extend the type {typename!r}.")
            key_fields = entity.federation_key.split()
            missing = [k for k in key_fields if k not in representation]
            if missing:
                raise GraphQLError(f"A {typename} representation needs {', '.join(missing)}.")
            refs.append(
                EntityRef(
                    typename=typename,
                    id=str(representation["id"]),
                    channel=representation.get("channel"),
                    extra={k: v for k, v in representation.items() if k != "__typename"},
                )
            )
        return refs

    class FederationQueries:
        _entities = graphene.List(
            _Entity,
            name="_entities",
            representations=graphene.List(graphene.NonNull(_Any), required=True),
        )
        _service = graphene.Field(_Service, name="_service")

        @staticmethod
        def resolve__entities(root: Any, info: Any, representations: list[Any]) -> list[EntityRef]:
            return resolve_entities(root, info, representations)

        @staticmethod
        def resolve__service(root: Any, info: Any) -> dict[str, Any]:
            return {}

    return FederationQueries


def _directive(name: str, **arguments: str) -> ast.Directive:
    return ast.Directive(
        name=ast.Name(value=name),
        arguments=[
            ast.Argument(name=ast.Name(value=k), value=ast.StringValue(value=v))
            for k, v in arguments.items()
        ],
    )


def _entity_keys(schema: Any) -> dict[str, str]:
    keys = {}
    for name, graphql_type in schema.get_type_map().items():
        graphene_type = getattr(graphql_type, "graphene_type", None)
        key = getattr(graphene_type, "federation_key", None)
        if key:
            keys[name] = key
    return keys


@cache
def _federation_sdl_cached(printed: str, keys: tuple[tuple[str, str], ...]) -> str:
    entity_keys = dict(keys)
    document = parse(printed)
    definitions: list[ast.Node] = []
    for definition in document.definitions:
        name = getattr(getattr(definition, "name", None), "value", None)
        if name in FEDERATION_TYPES or isinstance(definition, ast.SchemaDefinition):
            continue
        if isinstance(definition, ast.ObjectTypeDefinition) and name in {"Query", "Mutation"}:
            hidden = FEDERATION_HIDDEN_ROOT_FIELDS.get(name, set()) | FEDERATION_FIELDS
            definition.fields = [f for f in definition.fields if f.name.value not in hidden]
            if definition.fields:
                definitions.append(ast.TypeExtensionDefinition(definition=definition))
            continue
        if isinstance(definition, ast.ObjectTypeDefinition) and name in entity_keys:
            key = entity_keys[name]
            definition.directives = [_directive("key", fields=key)]
            for field_definition in definition.fields:
                if field_definition.name.value in key.split():
                    field_definition.directives = [_directive("external")]
            definitions.append(ast.TypeExtensionDefinition(definition=definition))
            continue
        definitions.append(definition)
    return print_ast(ast.Document(definitions=definitions)) + "\n"


def federation_sdl(schema: Any) -> str:
    """The subgraph SDL of ``schema`` (what ``_service { sdl }`` returns)."""
    return _federation_sdl_cached(print_schema(schema), tuple(sorted(_entity_keys(schema).items())))
