"""radflow: imaging-order orchestrator (CLI, settings, embedded dev stack)."""
