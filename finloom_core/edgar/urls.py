"""EDGAR URLs: the only module that knows SEC's paths.

Hosts come from settings (``FINLOOM_EDGAR_DATA_URL`` / ``FINLOOM_EDGAR_WWW_URL``) so a
stand-in or a proxy can replace SEC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from finloom_core.cik import cik10

# The health probe's document: Apple's submissions index, light and always there.
PROBE_CIK = 320193


@dataclass(frozen=True, slots=True)
class EdgarUrls:
    data_url: str = "https://data.sec.gov"
    www_url: str = "https://www.sec.gov"

    def companyfacts(self, cik: int) -> str:
        return f"{self.data_url}/api/xbrl/companyfacts/CIK{cik10(cik)}.json"

    def submissions(self, cik: int) -> str:
        return f"{self.data_url}/submissions/CIK{cik10(cik)}.json"

    def submissions_page(self, name: str) -> str:
        """A page listed in ``filings.files`` (``CIK##########-submissions-NNN.json``)."""
        return f"{self.data_url}/submissions/{name}"

    def probe(self) -> str:
        """The document the SEC health probe asks for (only its status line is read)."""
        return self.submissions(PROBE_CIK)

    def company_tickers(self) -> str:
        return f"{self.www_url}/files/company_tickers.json"

    def companyfacts_zip(self) -> str:
        return f"{self.www_url}/Archives/edgar/daily-index/xbrl/companyfacts.zip"

    def daily_index(self, day: date) -> str:
        """SEC's daily master index of ``day`` (which companies filed what that day)."""
        quarter = (day.month - 1) // 3 + 1
        return (
            f"{self.www_url}/Archives/edgar/daily-index/{day.year}/QTR{quarter}"
            f"/master.{day:%Y%m%d}.idx"
        )

    def submissions_zip(self) -> str:
        return f"{self.www_url}/Archives/edgar/daily-index/bulkdata/submissions.zip"
