from django.urls import path

from saleor_crm_plugin.app import views
from saleor_crm_plugin.graphql.views import graphql_view

# Patterns are tried in order: the webhook, by far the most requested URL, goes first.
urlpatterns = [
    path("api/webhooks/saleor", views.saleor_webhook, name="crm-webhook"),
    path("api/manifest", views.manifest, name="crm-manifest"),
    path("api/register", views.register, name="crm-register"),
    path("healthz", views.health, name="crm-health"),
    path("graphql/", graphql_view, name="crm-graphql"),
]
