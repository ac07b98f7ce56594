"""Permission checks for resolvers and mutations, on Saleor's permission codes.

Denials raise ``PermissionDenied``, a top-level GraphQL error with
``extensions.exception.code = "PermissionDenied"`` and the field set to ``null``, exactly as
Saleor answers, so storefront and Dashboard code handle both APIs alike.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from graphql.error import GraphQLError

from saleor_crm_plugin.core.auth import Requester
from saleor_crm_plugin.permissions import SaleorPermission


class PermissionDenied(GraphQLError):
    code = "PermissionDenied"

    def __init__(self, message: str | None = None, *, permissions: tuple[Any, ...] = ()):
        if message is None:
            if permissions:
                names = ", ".join(str(p) for p in permissions)
                message = f"To access this path, you need one of the following permissions: {names}"
            else:
                message = "You do not have permission to perform this action"
        super().__init__(message)
        self.permissions = permissions


def requester_of(info: Any) -> Requester:
    return info.context.requester


def check_permissions(requester: Requester, permissions: tuple[SaleorPermission, ...]) -> None:
    """Any one of ``permissions`` suffices (Saleor's "one of the following permissions")."""
    if not requester.has_any_perm(permissions):
        raise PermissionDenied(permissions=permissions)


def is_owner(requester: Requester, saleor_user_id: str | None) -> bool:
    """A customer (or staff member acting as a shopper) owns data of their own Saleor user."""
    return bool(saleor_user_id) and requester.user_id == saleor_user_id


def check_owner_or_permissions(
    requester: Requester, saleor_user_id: str | None, permissions: tuple[SaleorPermission, ...]
) -> None:
    if not is_owner(requester, saleor_user_id):
        check_permissions(requester, permissions)


def permission_required(*permissions: SaleorPermission) -> Callable[[Callable], Callable]:
    """Resolver decorator: the requester needs any one of ``permissions``."""

    def decorator(resolver: Callable) -> Callable:
        @wraps(resolver)
        def wrapper(root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
            check_permissions(requester_of(info), permissions)
            return resolver(root, info, *args, **kwargs)

        wrapper.permissions = permissions  # type: ignore[attr-defined]
        return wrapper

    return decorator


def login_required(resolver: Callable) -> Callable:
    """Resolver decorator: any signed-in customer, staff member or app."""

    @wraps(resolver)
    def wrapper(root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        if not requester_of(info).is_authenticated:
            raise PermissionDenied("You need to be authenticated to access this path")
        return resolver(root, info, *args, **kwargs)

    return wrapper


def staff_member_required(resolver: Callable) -> Callable:
    """Resolver decorator: a staff member or an app (whatever their permissions)."""

    @wraps(resolver)
    def wrapper(root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        if requester_of(info).kind not in {"staff", "app"}:
            raise PermissionDenied("You need to be a staff member or an app to access this path")
        return resolver(root, info, *args, **kwargs)

    return wrapper
