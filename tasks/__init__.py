"""Prefect tasks: thin adapters from Prefect to finloom_core."""
