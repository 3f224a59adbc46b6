"""Connectors: one module per system."""
