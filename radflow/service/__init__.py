"""The Temporal-facing order service: starting orders, sending events, lookups, search, the client.

Gateways, the API and activities use it; it imports only radflow.infra and radflow.domain,
never the gateways, the API or the composition root (radflow.cli, radflow.dev, ...).
"""
