"""Process plumbing every radflow process shares: settings, TLS, metrics, health, logs, files, audit.

Imports only radflow.domain: the order service, gateways, API, activities and the
composition root build on it.
"""
