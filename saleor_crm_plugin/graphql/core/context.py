"""The per-request context every resolver receives as ``info.context``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from saleor_crm_plugin.core.auth import ANONYMOUS, Requester


@dataclass
class GraphQLContext:
    request: Any = None
    requester: Requester = ANONYMOUS
    # One instance of each DataLoader per request (see ``core/dataloaders.py``).
    dataloaders: dict[Any, Any] = field(default_factory=dict)
