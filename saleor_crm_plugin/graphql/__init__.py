"""The CRM's GraphQL API (graphene 2, Saleor's conventions). ``api.py`` composes the schema;
``core/`` holds what every domain's types and mutations build on."""
