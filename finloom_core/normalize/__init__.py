"""Standardized financials: the metric catalogue (and, later, the normalizer)."""

from finloom_core.normalize.catalogue import Catalogue, MetricSpec, load_catalogue

__all__ = ["Catalogue", "MetricSpec", "load_catalogue"]
