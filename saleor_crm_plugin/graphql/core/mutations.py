"""Mutations the Saleor way: ``errors { field code message }`` with a per-domain code enum.

A domain declares its codes as a Python enum next to its services (``<domain>/error_codes.py``),
its service raises ``CrmError(message, code=..., field=...)``, and the mutation only maps input
to the service call::

    LoyaltyError = error_type("LoyaltyError", LoyaltyErrorCode)

    class LoyaltyPointsAdjust(BaseMutation):
        account = graphene.Field(LoyaltyAccount)

        class Arguments:
            id = graphene.ID(required=True)
            points = graphene.Int(required=True)

        class Meta:
            description = "Adjust a customer's points balance."
            permissions = (SaleorPermission.MANAGE_USERS,)
            error_type_class = LoyaltyError

        @classmethod
        def perform_mutation(cls, root, info, **data):
            account = services.adjust(...)  # raises CrmError
            return cls(account=account)

Permission denials are top-level ``PermissionDenied`` errors (as in Saleor); business-rule
failures come back in ``errors`` with nothing changed: ``perform_mutation`` runs in a
transaction that a ``CrmError`` rolls back.
"""

from __future__ import annotations

import enum
from typing import Any

import graphene
from django.db import transaction
from graphene.types.mutation import MutationOptions

from saleor_crm_plugin.core.errors import CrmError, CrmValidationError
from saleor_crm_plugin.graphql.core.permissions import PermissionDenied, check_permissions
from saleor_crm_plugin.permissions import SaleorPermission

_ENUMS: dict[type[enum.Enum], type[graphene.Enum]] = {}
_ERROR_TYPES: dict[str, type[graphene.ObjectType]] = {}


def graphql_enum(python_enum: type[enum.Enum], description: str = "") -> type[graphene.Enum]:
    """The graphene enum of a domain enum, created once (two would clash by name)."""
    if python_enum not in _ENUMS:
        _ENUMS[python_enum] = graphene.Enum.from_enum(
            python_enum, description=description or python_enum.__doc__
        )
    return _ENUMS[python_enum]


def error_type(name: str, code_enum: type[enum.Enum]) -> type[graphene.ObjectType]:
    """``<name> { field: String, message: String, code: <code_enum>! }``."""
    if name in _ERROR_TYPES:
        return _ERROR_TYPES[name]
    attrs = {
        "field": graphene.String(
            description=(
                "Name of a field that caused the error. A value of `null` indicates that the "
                "error isn't associated with a particular field."
            )
        ),
        "message": graphene.String(description="The error message."),
        "code": graphene.Field(
            graphql_enum(code_enum), required=True, description="The error code."
        ),
    }
    _ERROR_TYPES[name] = type(name, (graphene.ObjectType,), attrs)
    return _ERROR_TYPES[name]


class BaseMutationOptions(MutationOptions):
    permissions: tuple[SaleorPermission, ...] = ()
    login_required: bool = False
    error_type_class: type[graphene.ObjectType] | None = None


class BaseMutation(graphene.Mutation):
    """Meta options: ``error_type_class`` (required), ``permissions`` (any one suffices; for
    operator mutations), ``login_required`` (for customer mutations; the service then acts on
    the requester's own data). Override ``check_permissions`` for owner-or-operator rules."""

    class Meta:
        abstract = True

    @classmethod
    def __init_subclass_with_meta__(
        cls,
        permissions: tuple[SaleorPermission, ...] = (),
        login_required: bool = False,
        error_type_class: type[graphene.ObjectType] | None = None,
        description: str = "",
        _meta: BaseMutationOptions | None = None,
        **options: Any,
    ) -> None:
        if error_type_class is None:
            raise TypeError(f"{cls.__name__}: Meta.error_type_class is required.")
        if not _meta:
            _meta = BaseMutationOptions(cls)
        _meta.permissions = tuple(permissions)
        _meta.login_required = login_required
        _meta.error_type_class = error_type_class
        if permissions:
            names = ", ".join(str(p) for p in permissions)
            description = f"{description}\n\nRequires one of the following permissions: {names}."
        super().__init_subclass_with_meta__(description=description.strip(), _meta=_meta, **options)
        cls._meta.fields["errors"] = graphene.Field(
            graphene.NonNull(graphene.List(graphene.NonNull(error_type_class))),
            description="List of errors that occurred executing the mutation.",
        )

    @classmethod
    def check_permissions(cls, info: Any, **data: Any) -> None:
        requester = info.context.requester
        if cls._meta.login_required and not requester.is_authenticated:
            raise PermissionDenied("You need to be authenticated to perform this action")
        if cls._meta.permissions:
            check_permissions(requester, cls._meta.permissions)

    @classmethod
    def mutate(cls, root: Any, info: Any, **data: Any) -> Any:
        cls.check_permissions(info, **data)
        try:
            # A rejected mutation changes nothing, even if the service wrote before failing.
            with transaction.atomic():
                response = cls.perform_mutation(root, info, **data)
        except CrmValidationError as exc:
            return cls(errors=[cls.error_of(e) for e in exc.errors])
        except CrmError as exc:
            return cls(errors=[cls.error_of(exc)])
        if getattr(response, "errors", None) is None:
            response.errors = []
        return response

    @classmethod
    def error_of(cls, exc: CrmError) -> Any:
        code = exc.code.value if isinstance(exc.code, enum.Enum) else exc.code
        return cls._meta.error_type_class(field=exc.field, message=exc.message, code=code)

    @classmethod
    def perform_mutation(cls, root: Any, info: Any, **data: Any) -> Any:
        raise NotImplementedError
