"""Generate a synthetic SEC ``companyfacts.zip`` for scale benchmarks.

Each member is ``CIK##########.json``, a companyfacts document shaped exactly like SEC's::

    {"cik": 123456, "entityName": "...", "facts": {"dei": {...}, "us-gaap": {
        concept: {"label": ..., "description": ..., "units": {"USD": [
            {"start"?, "end", "val", "accn", "fy", "fp", "form", "filed", "frame"?}, ...]}}}}}

Companies file a 10-Q for Q1-Q3 and a 10-K per fiscal year (a few amendments, 10-Q/A and
10-K/A), with the comparatives real filings carry: a 10-Q reports the quarter and the
year-to-date durations for this and the prior year and its instants against the prior
fiscal year end; a 10-K reports three fiscal years of durations and two year-end instants.
Units are USD, shares and USD/shares. Within a company every (accn, taxonomy, concept, unit,
start, end) is unique, accession numbers (``0000123456-23-000123``, prefixed by the
company's own CIK) are unique across the archive, and ``frame`` sits on the last-filed fact
of each calendar period as in SEC's data.

Sizes follow a log-normal (median ~11k facts, clipped to 2k-60k: mean ~13k, ~2 MB of JSON
per company). Every company is generated from ``(seed, index)`` alone, so the archive is
byte-for-byte deterministic for a seed whatever the number of workers. Worker processes
build the JSON; the parent writes members one at a time, so memory stays bounded.

    uv run python benchmarks/make_synthetic_archive.py --companies 1000 --out PATH --seed 7
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import statistics
import sys
import time
import zipfile
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import orjson

LAST_FISCAL_YEAR = 2024

# (concept, unit, kind): a core of real us-gaap concepts every company tends to carry
_CORE: tuple[tuple[str, str, str], ...] = (
    ("Assets", "USD", "instant"),
    ("AssetsCurrent", "USD", "instant"),
    ("Liabilities", "USD", "instant"),
    ("LiabilitiesCurrent", "USD", "instant"),
    ("LiabilitiesAndStockholdersEquity", "USD", "instant"),
    ("StockholdersEquity", "USD", "instant"),
    ("CashAndCashEquivalentsAtCarryingValue", "USD", "instant"),
    ("AccountsReceivableNetCurrent", "USD", "instant"),
    ("InventoryNet", "USD", "instant"),
    ("PropertyPlantAndEquipmentNet", "USD", "instant"),
    ("Goodwill", "USD", "instant"),
    ("AccountsPayableCurrent", "USD", "instant"),
    ("LongTermDebtNoncurrent", "USD", "instant"),
    ("RetainedEarningsAccumulatedDeficit", "USD", "instant"),
    ("CommonStockSharesOutstanding", "shares", "instant"),
    ("CommonStockSharesIssued", "shares", "instant"),
    ("Revenues", "USD", "duration"),
    ("RevenueFromContractWithCustomerExcludingAssessedTax", "USD", "duration"),
    ("CostOfRevenue", "USD", "duration"),
    ("GrossProfit", "USD", "duration"),
    ("OperatingExpenses", "USD", "duration"),
    ("ResearchAndDevelopmentExpense", "USD", "duration"),
    ("SellingGeneralAndAdministrativeExpense", "USD", "duration"),
    ("OperatingIncomeLoss", "USD", "duration"),
    ("InterestExpense", "USD", "duration"),
    ("IncomeTaxExpenseBenefit", "USD", "duration"),
    ("NetIncomeLoss", "USD", "duration"),
    ("ComprehensiveIncomeNetOfTax", "USD", "duration"),
    ("DepreciationDepletionAndAmortization", "USD", "duration"),
    ("ShareBasedCompensation", "USD", "duration"),
    ("NetCashProvidedByUsedInOperatingActivities", "USD", "duration"),
    ("NetCashProvidedByUsedInInvestingActivities", "USD", "duration"),
    ("NetCashProvidedByUsedInFinancingActivities", "USD", "duration"),
    ("PaymentsToAcquirePropertyPlantAndEquipment", "USD", "duration"),
    ("PaymentsForRepurchaseOfCommonStock", "USD", "duration"),
    ("PaymentsOfDividends", "USD", "duration"),
    ("EarningsPerShareBasic", "USD/shares", "duration"),
    ("EarningsPerShareDiluted", "USD/shares", "duration"),
    ("CommonStockDividendsPerShareDeclared", "USD/shares", "duration"),
    ("WeightedAverageNumberOfSharesOutstandingBasic", "shares", "duration"),
    ("WeightedAverageNumberOfDilutedSharesOutstanding", "shares", "duration"),
)

# a long tail of plausible us-gaap-style names, built combinatorially
_QUALIFIERS = (
    "Accrued", "Deferred", "Other", "Prepaid", "Contingent", "Restricted", "Unrecognized",
    "Capitalized", "Amortized", "Noncash", "Unrealized", "Realized", "Foreign", "Domestic",
    "Related", "Operating", "Finance", "Lease", "Employee", "Derivative", "Marketable",
    "Intangible", "Acquired", "Discontinued", "Segment", "Customer", "Vendor", "Pension",
    "Environmental", "Warranty", "Restructuring", "Litigation", "Insurance", "Tax",
)  # fmt: skip
_STEMS_INSTANT = (
    "Assets", "Liabilities", "Receivable", "Payable", "Reserve", "Obligations", "Investments",
    "Securities", "Deposits", "Borrowings", "Commitments", "Accruals", "Balance", "Allowance",
)  # fmt: skip
_STEMS_DURATION = (
    "Expense", "Revenue", "IncomeLoss", "Payments", "Proceeds", "GainLoss", "Charges",
    "Costs", "Benefit", "Amortization", "Impairment", "Provision", "Adjustments", "Additions",
)  # fmt: skip
_SUFFIXES = ("", "Current", "Noncurrent", "Net", "Gross", "NetOfTax", "FairValueDisclosure")

_WORD = re.compile(r"[A-Z][a-z]*|[a-z]+|\d+")
_SENTENCES = (
    "Amount of {l}, as reported in the statement of financial position or disclosed in the notes.",
    "Carrying value as of the balance sheet date of {l}, including both current and"
    " noncurrent portions where applicable.",
    "Amount of {l} recognized for the period, net of related adjustments and reclassifications"
    " as required by the applicable accounting standards.",
    "The aggregate {l} attributable to the reporting entity during the period presented,"
    " before the effects of items reported separately.",
)


def _label(concept: str) -> str:
    words = _WORD.findall(concept)
    return " ".join(words[:1] + [w.lower() if len(w) > 3 else w for w in words[1:]])


def _build_vocabulary() -> list[tuple[str, str, str]]:
    """Every concept a company may draw from, beyond the core: (name, unit, kind)."""
    vocab: list[tuple[str, str, str]] = []
    for q in _QUALIFIERS:
        for s in _STEMS_INSTANT:
            for x in _SUFFIXES[:4]:
                vocab.append((f"{q}{s}{x}", "USD", "instant"))
        for s in _STEMS_DURATION:
            for x in ("", *_SUFFIXES[3:6]):
                vocab.append((f"{q}{s}{x}", "USD", "duration"))
        vocab.append((f"{q}SharesIssued", "shares", "instant"))
        vocab.append((f"{q}SharesWeightedAverage", "shares", "duration"))
        vocab.append((f"{q}IncomeLossPerShare", "USD/shares", "duration"))
    core = {c[0] for c in _CORE}
    return [v for v in vocab if v[0] not in core]


_VOCAB = _build_vocabulary()


def _month_end(year: int, month: int) -> date:
    """Last day of ``month`` (months may run past 12 or below 1)."""
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def _last_saturday(d: date) -> date:
    return d - timedelta(days=(d.weekday() - 5) % 7)


def _frame_instant(d: date) -> str:
    shifted = d + timedelta(days=46)
    year, quarter = shifted.year, (shifted.month - 1) // 3
    if quarter == 0:
        year, quarter = year - 1, 4
    return f"CY{year}Q{quarter}I"


def _frame_duration(start: date, end: date) -> str | None:
    days = (end - start).days + 1
    mid = start + timedelta(days=days // 2)
    if 350 <= days <= 380:
        return f"CY{mid.year}"
    if 84 <= days <= 98:
        return f"CY{mid.year}Q{(mid.month - 1) // 3 + 1}"
    return None


def target_facts(rng: random.Random) -> int:
    """Facts of one company: log-normal, median 11k, clipped to 2k..60k (mean ~13k)."""
    return int(min(60_000, max(2_000, rng.lognormvariate(math.log(11_000), 0.6))))


class _Calendar:
    """A company's quarter-end dates, indexed 4*fiscal_year + quarter - 1."""

    def __init__(self, fye_month: int, weeks52: bool) -> None:
        self.fye_month = fye_month
        self.weeks52 = weeks52
        self._ends: dict[int, date] = {}

    def end(self, k: int) -> date:
        d = self._ends.get(k)
        if d is None:
            fy, q = divmod(k, 4)
            # fiscal year ``fy`` ends in month fye_month of calendar year fy
            d = _month_end(fy, self.fye_month - 3 * (3 - q))
            if self.weeks52:
                d = _last_saturday(d)
            self._ends[k] = d
        return d

    def start(self, k: int) -> date:
        return self.end(k - 1) + timedelta(days=1)


def generate_company(seed: int, index: int, cik: int) -> tuple[bytes, int]:
    """One company's companyfacts JSON and its fact count, determined by (seed, index)."""
    rng = random.Random(f"{seed}:{index}")
    target = target_facts(rng)
    years = max(4, min(16, int(rng.gauss(5 + target / 2_500, 1.5))))
    first_fy = LAST_FISCAL_YEAR - years + 1
    fye_month = rng.choices((12, 9, 6, 3, 1), weights=(70, 10, 10, 5, 5))[0]
    cal = _Calendar(fye_month, weeks52=rng.random() < 0.12)
    iso: dict[date, str] = {}

    def s(d: date) -> str:
        text = iso.get(d)
        if text is None:
            text = iso[d] = d.isoformat()
        return text

    # the company's filings, in filing order: (k, fy, fp, form, filed, accn)
    filings: list[tuple[int, int, str, str, str, str]] = []
    seq: dict[int, int] = {}

    def accession(filed: date) -> str:
        yy = filed.year % 100
        seq[yy] = seq.get(yy, rng.randint(1, 40)) + rng.randint(1, 25)
        return f"{cik:010d}-{yy:02d}-{seq[yy]:06d}"

    for fy in range(first_fy, LAST_FISCAL_YEAR + 1):
        for q in range(1, 5):
            k = 4 * fy + q - 1
            annual = q == 4
            filed = cal.end(k) + timedelta(
                days=rng.randint(55, 75) if annual else rng.randint(30, 44)
            )
            form, fp = ("10-K", "FY") if annual else ("10-Q", f"Q{q}")
            filings.append((k, fy, fp, form, s(filed), accession(filed)))
            if rng.random() < 0.03:  # an amendment re-reports the same periods
                refiled = filed + timedelta(days=rng.randint(20, 120))
                filings.append((k, fy, fp, form + "/A", s(refiled), accession(refiled)))

    # periods reported by a filing of quarter index k, per kind (start None = instant)
    def periods(k: int, kind: str) -> list[tuple[date | None, date]]:
        q = k % 4 + 1
        prior_fye = 4 * (k // 4) - 1
        if kind == "instant":
            return [(None, cal.end(k)), (None, cal.end(k - 4 if q == 4 else prior_fye))]
        if q == 4:
            return [(cal.start(k - 3 - 4 * n), cal.end(k - 4 * n)) for n in range(3)]
        out = [(cal.start(k), cal.end(k)), (cal.start(k - 4), cal.end(k - 4))]
        if q > 1:  # year to date, this year and last
            out += [(cal.start(k - q + 1), cal.end(k)), (cal.start(k - q - 3), cal.end(k - 4))]
        return out

    scale = 10 ** rng.uniform(6.5, 11)
    shares = 10 ** rng.uniform(7, 10)
    n_filings = len(filings)

    def concept_rows(
        unit: str, kind: str, annual_only: bool, span: tuple[int, int], presence: float
    ):
        base = {"USD": scale, "shares": shares, "USD/shares": 1.0}[unit]
        base *= rng.lognormvariate(-1.5, 1.2) if unit == "USD" else rng.uniform(0.2, 3.0)
        growth = rng.uniform(-0.03, 0.08)
        negative = unit != "shares" and rng.random() < 0.08
        values: dict[tuple[date | None, date], float | int] = {}
        rows: list[dict] = []
        last: dict[tuple[date | None, date], dict] = {}
        lo, hi = span
        for k, fy, fp, form, filed, accn in filings[lo:hi]:
            if annual_only and fp != "FY":
                continue
            if rng.random() > presence:
                continue
            for start, end in periods(k, kind):
                key = (start, end)
                val = values.get(key)
                if val is None or rng.random() < 0.01:  # first report, or a restatement
                    months = 12 if start is None else round((end - start).days / 30.4)
                    raw = base * (1 + growth) ** (end.year - 2000) * rng.uniform(0.9, 1.1)
                    raw *= 1 if start is None or unit == "shares" else months / 12
                    raw = -raw if negative and rng.random() < 0.3 else raw
                    val = round(raw, 2) if unit == "USD/shares" else int(raw)
                    values[key] = val
                if start is None:
                    row = {"end": s(end), "val": val, "accn": accn, "fy": fy, "fp": fp,
                           "form": form, "filed": filed}  # fmt: skip
                else:
                    row = {"start": s(start), "end": s(end), "val": val, "accn": accn, "fy": fy,
                           "fp": fp, "form": form, "filed": filed}  # fmt: skip
                rows.append(row)
                last[key] = row
        used: set[str] = set()
        for (start, end), row in last.items():
            frame = _frame_instant(end) if start is None else _frame_duration(start, end)
            if frame is not None and frame not in used:
                used.add(frame)
                row["frame"] = frame
        return rows

    def body(concept: str, unit: str, kind: str, rows: list[dict]) -> dict:
        label = _label(concept)
        sentences = _SENTENCES[:2] if kind == "instant" else _SENTENCES[2:]
        desc = rng.choice(sentences).format(l=label.lower())
        return {"label": label, "description": desc, "units": {unit: rows}}

    count = 0
    dei: dict[str, dict] = {}
    cover = [
        {"end": s(date.fromisoformat(f[4]) - timedelta(days=rng.randint(3, 20))),
         "val": int(shares * rng.uniform(0.95, 1.05)), "accn": f[5], "fy": f[1], "fp": f[2],
         "form": f[3], "filed": f[4]}
        for f in filings
    ]  # fmt: skip
    dei["EntityCommonStockSharesOutstanding"] = body(
        "EntityCommonStockSharesOutstanding", "shares", "instant", cover
    )
    floats = [
        {"end": s(cal.end(f[0] - 2)), "val": int(scale * rng.uniform(2, 20)), "accn": f[5],
         "fy": f[1], "fp": f[2], "form": f[3], "filed": f[4]}
        for f in filings if f[2] == "FY"
    ]  # fmt: skip
    dei["EntityPublicFloat"] = body("EntityPublicFloat", "USD", "instant", floats)
    count += len(cover) + len(floats)

    gaap: dict[str, dict] = {}
    pool = list(_CORE) + rng.sample(_VOCAB, len(_VOCAB))
    for concept, unit, kind in pool:
        if count >= target:
            break
        core = len(gaap) < len(_CORE)
        if core or rng.random() < 0.5:
            span = (0, n_filings)
        else:  # adopted late or deprecated early, as real taxonomies evolve
            a, b = sorted(rng.sample(range(n_filings + 1), 2))
            span = (a, max(b, a + 4))
        annual_only = not core and rng.random() < 0.25
        rows = concept_rows(unit, kind, annual_only, span, 0.97 if core else rng.uniform(0.6, 1))
        if rows:
            gaap[concept] = body(concept, unit, kind, rows)
            count += len(rows)

    doc = {
        "cik": cik,
        "entityName": f"Synthetic Holdings {index:05d} Inc.",
        "facts": {"dei": dei, "us-gaap": gaap},
    }
    return orjson.dumps(doc), count


def _generate(args: tuple[int, int, int]) -> tuple[int, bytes, int]:
    seed, index, cik = args
    data, facts = generate_company(seed, index, cik)
    return cik, data, facts


def company_ciks(n: int, seed: int) -> list[int]:
    """N distinct CIKs, deterministic for a seed, in archive order.

    Drawn one after another, so a smaller archive holds the first companies of a larger one.
    """
    rng = random.Random(f"ciks:{seed}")
    ciks: dict[int, None] = {}
    while len(ciks) < n:
        ciks.setdefault(rng.randrange(1_000, 2_000_000))
    return list(ciks)


def build_archive(
    out: Path, companies: int, seed: int, *, workers: int = 2, compresslevel: int = 6
) -> dict:
    """Write the archive; return its statistics."""
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tmp = out.with_name(out.name + ".part")
    jobs = [(seed, i, cik) for i, cik in enumerate(company_ciks(companies, seed))]
    per_company: list[int] = []
    raw_bytes = 0

    def write(zf: zipfile.ZipFile, cik: int, data: bytes, facts: int) -> None:
        nonlocal raw_bytes
        # a fixed timestamp keeps the archive byte-for-byte reproducible
        info = zipfile.ZipInfo(f"CIK{cik:010d}.json", date_time=(2025, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        zf.writestr(info, data, compresslevel=compresslevel)
        per_company.append(facts)
        raw_bytes += len(data)

    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as zf:
        if workers <= 1:
            for job in jobs:
                write(zf, *_generate(job))
        else:
            with ProcessPoolExecutor(workers) as pool:
                pending: deque[Future] = deque()
                for job in jobs:  # at most 2 x workers documents in flight: bounded memory
                    pending.append(pool.submit(_generate, job))
                    if len(pending) >= 2 * workers:
                        write(zf, *pending.popleft().result())
                while pending:
                    write(zf, *pending.popleft().result())
    tmp.replace(out)
    return {
        "path": str(out),
        "companies": companies,
        "seed": seed,
        "facts": sum(per_company),
        "facts_min": min(per_company),
        "facts_median": int(statistics.median(per_company)),
        "facts_mean": round(statistics.fmean(per_company)),
        "facts_max": max(per_company),
        "json_bytes": raw_bytes,
        "zip_bytes": out.stat().st_size,
        "seconds": round(time.perf_counter() - started, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--companies", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/companyfacts.zip"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--compresslevel", type=int, default=6)
    args = parser.parse_args(argv)
    stats = build_archive(
        args.out, args.companies, args.seed, workers=args.workers, compresslevel=args.compresslevel
    )
    mb = 1024 * 1024
    print(
        f"{stats['path']}: {stats['companies']} companies, {stats['facts']:,} facts"
        f" (per company min {stats['facts_min']:,} / median {stats['facts_median']:,}"
        f" / mean {stats['facts_mean']:,} / max {stats['facts_max']:,});"
        f" JSON {stats['json_bytes'] / mb:,.0f} MiB"
        f" (mean {stats['json_bytes'] / stats['companies'] / mb:.2f} MiB/company),"
        f" zip {stats['zip_bytes'] / mb:,.0f} MiB; {stats['seconds']:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
