"""Pure parsers: EDGAR JSON documents in, Arrow tables and plain records out."""

from finloom_core.parse.companyfacts import FACT_SCHEMA, parse_companyfacts, sniff_companyfacts
from finloom_core.parse.submissions import (
    FILING_SCHEMA,
    CompanyRecord,
    parse_company,
    parse_filings,
    submissions_pages,
)

__all__ = [
    "FACT_SCHEMA",
    "FILING_SCHEMA",
    "CompanyRecord",
    "parse_company",
    "parse_companyfacts",
    "parse_filings",
    "sniff_companyfacts",
    "submissions_pages",
]
