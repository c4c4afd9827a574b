"""Fiscal periods from dates: each company's fiscal calendar, and every period mapped onto it.

``fy``/``fp`` of a fact describe the filing that repeated it, not the period (see DOMAIN.md),
so they are used for one thing only: the label of a fiscal year follows the ``fy`` of the
earliest annual filing (10-K, 20-F, 40-F and amendments) whose own current year (its latest
~1-year period) ended on that date. Apple's year ended 2023-09-30 is FY2023, NVIDIA's
ended 2024-01-28 is FY2024. Some filings carry a wrong fiscal-year focus (NVIDIA's 10-Ks
of 2011-2014 say fy=2010..2013 for the years its reports call fiscal 2011..2014), so the
labels are voted: the most common difference between those first-reported ``fy`` and the
calendar year in which the fiscal year ends (less 10 days, so a 52/53-week year ending on
Jan 2 counts as ending in December) is the company's labelling rule, applied to all its
years. Years before the first such filing and after the last one are
extrapolated (52 weeks each way) so that comparatives and quarters of a year still in
progress get a label too.

Between two consecutive known years, days covered by neither are either a fiscal-year-end
change or missing years. Shorter than a year, they are a transition period (Under Armour's
2022-01-01..2022-03-31, reported by a 10-QT, between its December and March calendars), as
is the own period of a 10-KT/10-QT that is not a known year: such a period gets
``fiscal_period = 'T'`` (durations spanning it and the balance at its end), labelled like the
company's years (by the year it ends in, shifted by the company's labelling rule); shorter
spans inside it are left out rather than forced into a quarter of either calendar. Whole
missing years (a late filer with no 10-K of its own for a year) are filled in, estimated.
A company with no annual filing at all gets its calendar from the fiscal year end it
declares (``companies.fiscal_year_end``, MMDD), each year labelled by the year it ends in
(less 10 days), estimated, so its 10-Q quarters still get a fiscal year and quarter.

A period is classified by its length: ~1 year (350-380 days) is FY, ~3 months (80-100) a
quarter, ~6 and ~9 months are year-to-date spans (kept as ``6M`` and ``9M`` for deriving
quarters, never output), anything else is left out. Quarters are numbered by how many
quarters (91.3 days each, so 52/53-week years fit) lie between the fiscal year's start and
the period's end; instants are the balance at a fiscal year end (FY) or quarter end (Q1-Q3).

Both tables are temporary and built set-wise for all requested companies at once:
``_nl_calendar(cik, fiscal_year, fy_start, fy_end, estimated, transition)`` and
``_nl_periods(cik, period_start, period_end, fiscal_year, fiscal_period)``.
"""

from __future__ import annotations

import duckdb

ANNUAL_FORMS = ("10-K", "10-K/A", "20-F", "20-F/A", "40-F", "40-F/A")
QUARTERLY_FORMS = ("10-Q", "10-Q/A", "6-K", "6-K/A")
TRANSITION_FORMS = ("10-KT", "10-KT/A", "10-QT", "10-QT/A")
FORMS = ANNUAL_FORMS + QUARTERLY_FORMS + TRANSITION_FORMS
# Annual reports: where a fiscal year's figures come from when one covers it
ANNUAL_REPORT_FORMS = (*ANNUAL_FORMS, "10-KT", "10-KT/A")

YEAR_DAYS = (350, 380)
QUARTER_DAYS = (80, 100)
HALF_DAYS = (170, 195)
NINE_MONTH_DAYS = (260, 285)
QUARTER_LENGTH = 91.3  # days; a 13-week quarter is 91, a 14-week one 98
TOLERANCE = 10  # days of slack when matching dates to a (possibly extrapolated) calendar
EXTRAPOLATE_BACK, EXTRAPOLATE_FORWARD = 3, 2  # years
LABEL_SHIFT = 10  # days: a 52/53-week year ending by Jan 10 belongs to the year before

_CALENDAR = f"""
CREATE OR REPLACE TEMP TABLE _nl_calendar AS
WITH annual AS (
    SELECT cik, accession, fiscal_year AS fy, filed, period_start, period_end
    FROM facts
    WHERE list_contains($ciks, cik) AND list_contains($annual_forms, form)
      AND period_start IS NOT NULL
      AND datediff('day', period_start, period_end) BETWEEN {YEAR_DAYS[0]} AND {YEAR_DAYS[1]}
),
current_year AS (  -- each annual filing's own year: its latest ~1-year period
    SELECT cik, accession, max(period_end) AS period_end FROM annual GROUP BY cik, accession
),
own AS (
    SELECT a.* FROM annual a JOIN current_year c USING (cik, accession, period_end)
),
first_label AS (  -- the fy of the first filing that reported each year as its own
    SELECT cik, period_end AS fy_end, mode(period_start) AS fy_start,
           first(fy ORDER BY filed, accession) FILTER (WHERE fy IS NOT NULL) AS fy
    FROM own GROUP BY cik, period_end
),
offsets AS (  -- the company's usual label relative to the year its fiscal year ends in
    SELECT cik, first(shift ORDER BY n DESC, shift DESC) AS label_shift
    FROM (SELECT cik, fy - year(fy_end - {LABEL_SHIFT}) AS shift, count(*) AS n
          FROM first_label WHERE fy IS NOT NULL GROUP BY ALL)
    GROUP BY cik
),
known AS (
    SELECT l.cik, l.fy_end, l.fy_start,
           CAST(year(l.fy_end - {LABEL_SHIFT}) + coalesce(o.label_shift, 0) AS INTEGER)
               AS fiscal_year
    FROM first_label l LEFT JOIN offsets o USING (cik)
),
bounds AS (
    SELECT cik,
           first(fy_start ORDER BY fy_end) AS first_start,
           first(fiscal_year ORDER BY fy_end) AS first_year,
           last(fy_end ORDER BY fy_end) AS last_end,
           last(fiscal_year ORDER BY fy_end) AS last_year
    FROM known GROUP BY cik
),
back AS (
    SELECT cik, first_year - k AS fiscal_year,
           first_start - CAST(364 * k AS INTEGER) AS fy_start,
           first_start - CAST(364 * (k - 1) + 1 AS INTEGER) AS fy_end
    FROM bounds, range(1, {EXTRAPOLATE_BACK + 1}) AS t(k)
),
forward AS (
    SELECT cik, last_year + k AS fiscal_year,
           last_end + CAST(364 * (k - 1) + 1 AS INTEGER) AS fy_start,
           last_end + CAST(364 * k AS INTEGER) AS fy_end
    FROM bounds, range(1, {EXTRAPOLATE_FORWARD + 1}) AS t(k)
),
between_years AS (  -- days between two consecutive known years not covered by either
    SELECT cik, prev_year, prev_end, fy_start AS next_start,
           datediff('day', prev_end, fy_start) - 1 AS days
    FROM (SELECT cik, fy_start,
                 lag(fy_end) OVER (PARTITION BY cik ORDER BY fy_end) AS prev_end,
                 lag(fiscal_year) OVER (PARTITION BY cik ORDER BY fy_end) AS prev_year
          FROM known)
    WHERE datediff('day', prev_end, fy_start) - 1 > {TOLERANCE}
),
gaps AS (  -- shorter than a year: a fiscal-year-end change (transition period)
    SELECT cik, prev_end + 1 AS fy_start, next_start - 1 AS fy_end
    FROM between_years WHERE days < {YEAR_DAYS[0]}
),
missing AS (  -- whole years with no annual filing of their own (late filers)
    SELECT cik, prev_year, prev_end, days / n AS length, n
    FROM (SELECT *, CAST(round(days / 365.25) AS INTEGER) AS n FROM between_years
          WHERE days >= {YEAR_DAYS[0]})
    WHERE abs(days - n * 365.25) <= {TOLERANCE} * n
),
filled AS (
    SELECT cik, prev_year + k AS fiscal_year,
           prev_end + 1 + CAST(round((k - 1) * length) AS INTEGER) AS fy_start,
           prev_end + CAST(round(k * length) AS INTEGER) AS fy_end
    FROM (SELECT *, unnest(range(1, n + 1)) AS k FROM missing)
),
transition_filings AS (  -- the own period of a 10-KT/10-QT: its latest duration
    SELECT cik, accession, max(period_end) AS period_end
    FROM facts
    WHERE list_contains($ciks, cik) AND list_contains($transition_forms, form)
      AND period_start IS NOT NULL
    GROUP BY cik, accession
),
transition_spans AS (
    SELECT f.cik, mode(f.period_start) AS fy_start, f.period_end AS fy_end
    FROM facts f JOIN transition_filings t USING (cik, accession, period_end)
    WHERE f.period_start IS NOT NULL
    GROUP BY f.cik, f.period_end
),
transitions AS (  -- gaps, and 10-KT/10-QT periods that are not a year of their own
    SELECT cik, fy_start, fy_end FROM gaps
    UNION
    SELECT s.cik, s.fy_start, s.fy_end FROM transition_spans s
    WHERE NOT EXISTS (SELECT 1 FROM known k WHERE k.cik = s.cik
                      AND abs(datediff('day', k.fy_end, s.fy_end)) <= {TOLERANCE})
      AND datediff('day', s.fy_start, s.fy_end) < {YEAR_DAYS[0]}
),
labelled_transitions AS (
    SELECT t.cik, t.fy_start, t.fy_end,
           CAST(year(t.fy_end - {LABEL_SHIFT}) + coalesce(o.label_shift, 0) AS INTEGER)
               AS fiscal_year
    FROM transitions t LEFT JOIN offsets o USING (cik)
    QUALIFY row_number() OVER (PARTITION BY t.cik, t.fy_end ORDER BY t.fy_start) = 1
),
declared AS (  -- no annual filing at all: the fiscal year end the company declares (MMDD)
    SELECT c.cik, CAST(substr(c.fiscal_year_end, 1, 2) AS INTEGER) AS mm,
           CAST(substr(c.fiscal_year_end, 3, 2) AS INTEGER) AS dd
    FROM companies c
    WHERE list_contains($ciks, c.cik)
      AND regexp_full_match(c.fiscal_year_end, '(0[1-9]|1[0-2])[0-3][0-9]')
      AND c.cik NOT IN (SELECT cik FROM known)
),
declared_years AS (
    SELECT d.cik, d.mm, d.dd,
           unnest(range(year(min(f.period_end)) - 1, year(max(f.period_end)) + 2)) AS y
    FROM declared d JOIN facts f ON f.cik = d.cik
    GROUP BY d.cik, d.mm, d.dd
),
declared_ends AS (
    SELECT cik, y, make_date(y, mm, least(dd, day(last_day(make_date(y, mm, 1))))) AS fy_end
    FROM declared_years
),
fallback AS (
    SELECT cik, CAST(year(fy_end - {LABEL_SHIFT}) AS INTEGER) AS fiscal_year,
           lag(fy_end) OVER (PARTITION BY cik ORDER BY y) + 1 AS fy_start, fy_end
    FROM declared_ends
    QUALIFY fy_start IS NOT NULL
)
SELECT cik, fiscal_year, fy_start, fy_end, false AS estimated, false AS transition FROM known
UNION ALL SELECT cik, fiscal_year, fy_start, fy_end, true, false FROM back
UNION ALL SELECT cik, fiscal_year, fy_start, fy_end, true, false FROM forward
UNION ALL SELECT cik, fiscal_year, fy_start, fy_end, true, false FROM filled
UNION ALL SELECT cik, fiscal_year, fy_start, fy_end, false, true FROM labelled_transitions
UNION ALL SELECT cik, fiscal_year, fy_start, fy_end, true, false FROM fallback
"""

_PERIODS = f"""
CREATE OR REPLACE TEMP TABLE _nl_periods AS
WITH spans AS (
    SELECT DISTINCT cik, period_start, period_end,
        CASE
            WHEN period_start IS NULL THEN 'I'
            WHEN datediff('day', period_start, period_end)
                 BETWEEN {YEAR_DAYS[0]} AND {YEAR_DAYS[1]} THEN 'Y'
            WHEN datediff('day', period_start, period_end)
                 BETWEEN {QUARTER_DAYS[0]} AND {QUARTER_DAYS[1]} THEN 'Q'
            WHEN datediff('day', period_start, period_end)
                 BETWEEN {HALF_DAYS[0]} AND {HALF_DAYS[1]} THEN '6M'
            WHEN datediff('day', period_start, period_end)
                 BETWEEN {NINE_MONTH_DAYS[0]} AND {NINE_MONTH_DAYS[1]} THEN '9M'
            ELSE 'other'
        END AS span
    FROM {{source}}
),
matched AS (
    SELECT s.cik, s.period_start, s.period_end, s.span, c.fiscal_year, c.estimated,
           c.transition,
           datediff('day', c.fy_start, s.period_end + 1) AS days_in,
           abs(datediff('day', c.fy_end, s.period_end)) AS from_end,
           abs(datediff('day', c.fy_start, coalesce(s.period_start, c.fy_start))) AS from_start
    FROM spans s JOIN _nl_calendar c
      ON s.cik = c.cik
     AND s.period_end BETWEEN c.fy_start AND c.fy_end + {TOLERANCE}
),
labelled AS (
    SELECT *, CAST(round(days_in / {QUARTER_LENGTH}) AS INTEGER) AS quarter,
        CASE
            WHEN transition THEN CASE
                WHEN span = 'I' AND from_end <= 3 THEN 'T'
                WHEN span <> 'I' AND from_end <= {TOLERANCE} AND from_start <= {TOLERANCE}
                    THEN 'T'
            END
            WHEN span = 'other' THEN NULL
            WHEN span = 'Y' AND from_end <= {TOLERANCE} THEN 'FY'
            WHEN span = 'I' AND from_end <= 3 THEN 'FY'
            WHEN abs(days_in - round(days_in / {QUARTER_LENGTH}) * {QUARTER_LENGTH})
                 > {TOLERANCE} THEN NULL
            WHEN span IN ('Q', 'I') AND round(days_in / {QUARTER_LENGTH}) BETWEEN 1 AND 4
                THEN 'Q' || CAST(round(days_in / {QUARTER_LENGTH}) AS INTEGER)
            WHEN span = '6M' AND from_start <= {TOLERANCE}
                 AND round(days_in / {QUARTER_LENGTH}) = 2 THEN '6M'
            WHEN span = '9M' AND from_start <= {TOLERANCE}
                 AND round(days_in / {QUARTER_LENGTH}) = 3 THEN '9M'
        END AS fiscal_period
    FROM matched
)
SELECT cik, period_start, period_end, fiscal_year, fiscal_period
FROM labelled
WHERE fiscal_period IS NOT NULL AND NOT (span = 'I' AND fiscal_period = 'Q4')
QUALIFY row_number() OVER (
    PARTITION BY cik, period_start, period_end
    ORDER BY transition DESC, estimated, from_end, from_start
) = 1
"""


def build_calendar(con: duckdb.DuckDBPyConnection, ciks: list[int]) -> None:
    """``_nl_calendar``: every fiscal year of ``ciks``, labelled as the companies label them."""
    con.execute(
        _CALENDAR,
        {
            "ciks": ciks,
            "annual_forms": list(ANNUAL_FORMS),
            "transition_forms": list(TRANSITION_FORMS),
        },
    )


def build_periods(con: duckdb.DuckDBPyConnection, source: str) -> None:
    """``_nl_periods``: the fiscal year and period of every distinct (cik, start, end) of
    ``source`` (a fixed table name, never data) that fits the calendar."""
    con.execute(_PERIODS.format(source=source))
