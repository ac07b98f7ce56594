"""``translate_stored_webhook`` tells a stored delivery's kind by a dict of the members' values
(feat/w14) instead of calling ``EventKind``: the same member for every value the enum takes,
the same refusal for every other."""

from __future__ import annotations

import pytest

from saleor_crm_plugin.events import from_webhook
from saleor_crm_plugin.events.exceptions import UnsupportedEvent
from saleor_crm_plugin.events.types import EventKind


def test_every_member_is_found_as_the_enum_finds_it() -> None:
    assert set(from_webhook._KINDS) == {kind.value for kind in EventKind}
    for kind in EventKind:
        assert from_webhook._KINDS[kind.value] is EventKind(kind.value) is kind


@pytest.mark.parametrize(
    "value", ["", "ORDER_CREATED", "order_created ", "checkout_created", "customer_"]
)
def test_other_values_are_refused_with_the_enum_message(value: str) -> None:
    with pytest.raises(UnsupportedEvent) as caught:
        from_webhook.translate_stored_webhook(value, "{}", "https://shop.example/graphql/", "k")
    assert str(caught.value) == f"Event {value!r} is not consumed by the CRM."
    assert isinstance(caught.value.__cause__, ValueError)


def test_a_member_passed_as_the_kind_is_taken() -> None:
    with pytest.raises(Exception) as caught:
        from_webhook.translate_stored_webhook(
            EventKind.ORDER_CREATED, "{}", "https://shop.example/graphql/", "k"
        )
    assert not isinstance(caught.value, UnsupportedEvent)  # the body, not the kind, fails
