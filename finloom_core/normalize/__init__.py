"""Standardized financials: the metric catalogue and the normalizer."""

from finloom_core.normalize.catalogue import Catalogue, MetricSpec, load_catalogue
from finloom_core.normalize.financials import normalize

__all__ = ["Catalogue", "MetricSpec", "load_catalogue", "normalize"]
