"""``lock_accounts``: the accounts come locked with a customer that carries what postings read
(who the customer is, whether erased), handed in by the caller or read in one query."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from saleor_crm_plugin.customers.models import Customer
from saleor_crm_plugin.loyalty.ledger import customer_stub, lock_accounts
from saleor_crm_plugin.loyalty.models import LoyaltyAccount
from tests.loyalty.builders import CHANNEL, user_id


def _customers():
    alice = Customer.objects.create(saleor_user_id=user_id(1), email="alice@example.com")
    bob = Customer.objects.create(saleor_user_id=user_id(2), email="bob@example.com")
    LoyaltyAccount.objects.create(customer=alice, channel_id=CHANNEL, channel_slug="c")
    return alice, bob


def _wanted(*customers):
    return {(c.pk, CHANNEL): ((c.pk, CHANNEL, "c", "USD"), True) for c in customers}


@pytest.mark.django_db
def test_lock_accounts_reads_the_customers_it_is_not_given_in_one_query():
    alice, bob = _customers()
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        accounts, created = lock_accounts(_wanted(alice, bob))
        customers = {key: account.customer for key, account in accounts.items()}
        assert created == {(bob.pk, CHANNEL)}
        assert {key: (c.pk, c.saleor_user_id, c.is_erased) for key, c in customers.items()} == {
            (alice.pk, CHANNEL): (alice.pk, user_id(1), False),
            (bob.pk, CHANNEL): (bob.pk, user_id(2), False),
        }
        reads = [
            q["sql"] for q in queries.captured_queries if "saleor_crm_plugin_customer" in q["sql"]
        ]
        assert len(reads) == 1
        account_reads = [
            q["sql"] for q in queries.captured_queries if 'loyaltyaccount" t' in q["sql"]
        ]
        assert len(account_reads) == 2  # the existing accounts, then the one created
        if connection.features.has_select_for_update:
            assert all(sql.endswith("FOR UPDATE") for sql in account_reads)
    # What was not read is deferred, loaded on first access like ``QuerySet.defer``.
    assert customers[(alice.pk, CHANNEL)].email == "alice@example.com"
    assert [a.pk for a in accounts.values()] == sorted(a.pk for a in accounts.values())


@pytest.mark.django_db
def test_lock_accounts_uses_the_customers_it_is_given():
    alice, bob = _customers()
    given = {c.pk: customer_stub(c.pk, c.saleor_user_id) for c in (alice, bob)}
    with CaptureQueriesContext(connection) as queries:
        accounts, _ = lock_accounts(_wanted(alice, bob), given)
    assert not [q for q in queries.captured_queries if "saleor_crm_plugin_customer" in q["sql"]]
    for (customer_id, _), account in accounts.items():
        assert account.customer is given[customer_id]
        assert account.customer_id == customer_id
