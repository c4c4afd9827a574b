"""Pure parsers: EDGAR JSON documents in, Arrow tables and plain records out.

``CompanyRecord`` lives in ``finloom_core.records``; it is re-exported here for callers
that import it with the parsers.
"""

from finloom_core.parse.companyfacts import FACT_SCHEMA, parse_companyfacts, sniff_companyfacts
from finloom_core.parse.submissions import (
    FILING_SCHEMA,
    parse_company,
    parse_filings,
    submissions_pages,
)
from finloom_core.records import CompanyRecord

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
