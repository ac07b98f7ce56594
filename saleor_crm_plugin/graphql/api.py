"""The CRM's GraphQL schema, composed from every domain's ``Queries``/``Mutations`` classes.

To plug a domain in, add its classes to ``QUERIES`` / ``MUTATIONS`` (one line each) and its
extra fields on shared types to ``extensions.py``; then regenerate ``schema.graphql`` with
``saleor-crm graphql-schema --write``. See docs/graphql.md, "How a domain plugs in".
"""

from __future__ import annotations

import graphene

from saleor_crm_plugin.graphql.core.federation import build_federation_queries
from saleor_crm_plugin.graphql.customers.schema import CustomerQueries
from saleor_crm_plugin.graphql.customers.types import ENTITY_TYPES
from saleor_crm_plugin.graphql.loyalty.schema import LoyaltyMutations, LoyaltyQueries
from saleor_crm_plugin.graphql.recommendations.schema import (
    RecommendationMutations,
    RecommendationQueries,
)
from saleor_crm_plugin.graphql.rfm.schema import RfmMutations, RfmQueries

QUERIES: list[type] = [
    CustomerQueries,
    LoyaltyQueries,
    RecommendationQueries,
    RfmQueries,
]
MUTATIONS: list[type] = [
    LoyaltyMutations,
    RecommendationMutations,
    RfmMutations,
]


class Query(*QUERIES, build_federation_queries(ENTITY_TYPES), graphene.ObjectType):
    pass


Mutation = type("Mutation", (*MUTATIONS, graphene.ObjectType), {}) if MUTATIONS else None

schema = graphene.Schema(query=Query, mutation=Mutation, types=ENTITY_TYPES)
