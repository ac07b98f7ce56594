"""Program settings edited by staff through the API, stored in the database.

In App mode the configuration comes from environment variables, so without this a merchant would
have to redeploy to change the earn rate. Stored overrides sit on top of the configuration
(``config.program_config``), are validated by the configuration's own rules before anything is
written, and every change is audited in ``LoyaltyProgramSettingsChange``. Like a configuration
change, an edit only affects what is computed afterwards: posted ledger entries never change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from saleor_crm_plugin.core.errors import CrmValidationError
from saleor_crm_plugin.loyalty.config import (
    ProgramConfig,
    check_program,
    clear_stored_overrides_cache,
    program_config,
    stored_overrides,
    validate_values,
)
from saleor_crm_plugin.loyalty.error_codes import LoyaltyErrorCode
from saleor_crm_plugin.loyalty.exceptions import LoyaltyError
from saleor_crm_plugin.loyalty.models import (
    LoyaltyAccount,
    LoyaltyProgramOverride,
    LoyaltyProgramSettingsChange,
)

ALL_CHANNELS = ""


@dataclass(frozen=True)
class Editor:
    """Who edits, from the request's auth context (empty when unknown)."""

    user_id: str = ""
    email: str = ""
    app_id: str = ""


def channel_names(channel: str) -> tuple[str, str]:
    """Settings are keyed by slug or ID; find the other half from the accounts we know."""
    if not channel:
        return "", ""
    known = (
        LoyaltyAccount.objects.filter(Q(channel_slug=channel) | Q(channel_id=channel))
        .values_list("channel_id", "channel_slug")
        .first()
    )
    return known or (channel, channel)


def effective_config(channel: str) -> ProgramConfig:
    """The program a channel runs now (``""``: what applies to channels without overrides)."""
    return program_config(*channel_names(channel))


def overridden_keys(channel: str) -> list[str]:
    """Keys whose effective value comes from the stored overrides of ``channel``."""
    stored = stored_overrides()
    channel_id, slug = channel_names(channel)
    keys: set[str] = set()
    for name in (ALL_CHANNELS, channel_id, slug) if channel else (ALL_CHANNELS,):
        keys.update(stored.get(name, {}))
    return [key for key in ProgramConfig.__dataclass_fields__ if key in keys]  # stable order


def _forget_cached_settings() -> None:
    clear_stored_overrides_cache()
    # After commit too: a reader in this process may have cached the old rows meanwhile.
    transaction.on_commit(clear_stored_overrides_cache)


def update_program_settings(
    channel: str, values: dict[str, Any], editor: Editor | None = None
) -> LoyaltyProgramOverride:
    """Set (value) or remove (``None``: the configuration applies again) overrides of
    ``channel`` (slug or ID; ``""`` for all channels). Raises ``CrmValidationError`` of
    ``LoyaltyError(INVALID_SETTINGS, key, ...)`` with one error per bad key and writes nothing
    then. A change that changes nothing is not audited."""
    editor = editor or Editor()
    channel = channel.strip()
    to_set = {key: value for key, value in values.items() if value is not None}
    to_clear = [key for key, value in values.items() if value is None]
    canonical, errors = validate_values(to_set)
    known = set(ProgramConfig.__dataclass_fields__)
    errors += [
        LoyaltyError(LoyaltyErrorCode.INVALID_SETTINGS, key, f"Loyalty setting {key}: unknown.")
        for key in to_clear
        if key not in known
    ]
    if errors:
        raise CrmValidationError(list(errors))
    try:
        with transaction.atomic():
            row, _ = LoyaltyProgramOverride.objects.select_for_update().get_or_create(
                channel=channel
            )
            old = dict(row.values)
            new = {**old, **canonical}
            for key in to_clear:
                new.pop(key, None)
            changes = {
                key: {"old": old.get(key), "new": new.get(key)}
                for key in sorted(set(old) | set(new))
                if old.get(key) != new.get(key)
            }
            if not changes:
                return row
            row.values = new
            row.updated_at = timezone.now()
            row.updated_by_user_id = editor.user_id
            row.updated_by_email = editor.email
            row.save()
            # Rules across keys hold for the program the edit produces, whatever layer set them.
            clear_stored_overrides_cache()
            problems = check_program(effective_config(channel))
            if problems:
                raise CrmValidationError(list(problems))
            LoyaltyProgramSettingsChange.objects.create(
                channel=channel,
                changes=changes,
                changed_by_user_id=editor.user_id,
                changed_by_email=editor.email,
                changed_by_app_id=editor.app_id,
                changed_at=row.updated_at,
            )
    finally:
        _forget_cached_settings()
    return row


def settings_history(channel: str | None = None) -> Any:
    """Audit entries, newest first; all scopes when ``channel`` is ``None``."""
    changes = LoyaltyProgramSettingsChange.objects.order_by("-changed_at", "-pk")
    return changes if channel is None else changes.filter(channel=channel)
