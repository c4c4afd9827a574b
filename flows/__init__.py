"""Prefect flows: only the order of work."""
