"""Warehouse schema, versioned: each migration runs once, in order, in one transaction.

``filings`` holds one row per accession; its ``cik`` is the first company the filing was
loaded for. A filing can be listed by several companies (an insider's Form 4 appears in the
issuer's and the owner's submissions): ``filing_companies`` keeps every (accession, cik).

Uniqueness of ``facts`` on (accession, taxonomy, concept, unit, period_start, period_end)
is enforced by the loader, not by a DuckDB index: an ART index over the fact key costs
~7x the table's disk size and ~10x insert time, and every load replaces a company's facts
wholesale inside one transaction, so the loader is the one place duplicates could enter.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from finloom_core.sql import transaction


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


# ``financials`` as known at the end of a date: per metric and fiscal period, the value of
# the latest filing filed on or before it (its accession and date), and the first reported
# value as of then. Periods nothing reported by then are absent.
FINANCIALS_AS_OF = """
CREATE OR REPLACE MACRO financials_as_of(as_of_date) AS TABLE
WITH ends AS (
    SELECT cik, metric, fiscal_year, fiscal_period,
           arg_max(h, (h.filed, h.accession)) AS latest,
           arg_min(h, (h.filed, h.accession)) AS first
    FROM financials_history h
    WHERE h.filed <= CAST(as_of_date AS DATE)
    GROUP BY cik, metric, fiscal_year, fiscal_period
)
SELECT cik, metric, fiscal_year, fiscal_period, latest.period_start, latest.period_end,
       latest.value, latest.unit, latest.method, latest.source_taxonomy,
       latest.source_concept, latest.accession, latest.filed, latest.formula,
       first.value IS DISTINCT FROM latest.value AS is_restated,
       first.value AS first_reported_value, first.filed AS first_reported_filed,
       first.accession AS first_reported_accession, CAST(as_of_date AS DATE) AS as_of
FROM ends
"""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "companies, filings (and which companies list each), facts, per-company load log",
        (
            """
            CREATE TABLE companies (
                cik BIGINT PRIMARY KEY,
                name VARCHAR,
                tickers VARCHAR[],
                exchanges VARCHAR[],
                sic VARCHAR,
                sic_description VARCHAR,
                fiscal_year_end VARCHAR,
                entity_type VARCHAR,
                category VARCHAR,
                state_of_incorporation VARCHAR,
                ein VARCHAR,
                former_names VARCHAR[],
                updated_at TIMESTAMP NOT NULL
            )
            """,
            """
            CREATE TABLE filings (
                accession VARCHAR PRIMARY KEY,
                cik BIGINT NOT NULL,
                form VARCHAR,
                filed DATE,
                report_date DATE,
                acceptance_datetime VARCHAR,
                is_xbrl BOOLEAN,
                is_inline_xbrl BOOLEAN,
                primary_document VARCHAR,
                primary_doc_description VARCHAR,
                file_number VARCHAR,
                size BIGINT,
                source VARCHAR NOT NULL
            )
            """,
            """
            CREATE TABLE filing_companies (
                accession VARCHAR NOT NULL,
                cik BIGINT NOT NULL,
                source VARCHAR NOT NULL,
                PRIMARY KEY (accession, cik)
            )
            """,
            """
            CREATE TABLE facts (
                cik BIGINT NOT NULL,
                taxonomy VARCHAR NOT NULL,
                concept VARCHAR NOT NULL,
                unit VARCHAR NOT NULL,
                period_start DATE,
                period_end DATE NOT NULL,
                value DOUBLE,
                accession VARCHAR NOT NULL,
                fiscal_year INTEGER,
                fiscal_period VARCHAR,
                form VARCHAR,
                filed DATE,
                frame VARCHAR
            )
            """,
            """
            CREATE TABLE company_loads (
                cik BIGINT PRIMARY KEY,
                facts_sha256 VARCHAR,
                submissions_sha256 VARCHAR,
                fact_count BIGINT NOT NULL,
                filing_count BIGINT NOT NULL,
                source VARCHAR NOT NULL,
                loaded_at TIMESTAMP NOT NULL
            )
            """,
        ),
    ),
    Migration(
        2,
        "standardized financials (latest-filed values) and their point-in-time history",
        (
            """
            CREATE TABLE financials (
                cik BIGINT NOT NULL,
                metric VARCHAR NOT NULL,
                fiscal_year INTEGER NOT NULL,
                fiscal_period VARCHAR NOT NULL,
                period_start DATE,
                period_end DATE NOT NULL,
                value DOUBLE NOT NULL,
                unit VARCHAR NOT NULL,
                method VARCHAR NOT NULL,
                source_taxonomy VARCHAR,
                source_concept VARCHAR,
                accession VARCHAR,
                filed DATE,
                formula VARCHAR,
                is_restated BOOLEAN NOT NULL,
                first_reported_value DOUBLE,
                first_reported_filed DATE,
                first_reported_accession VARCHAR,
                PRIMARY KEY (cik, metric, fiscal_year, fiscal_period)
            )
            """,
            """
            CREATE TABLE financials_history (
                cik BIGINT NOT NULL,
                metric VARCHAR NOT NULL,
                fiscal_year INTEGER NOT NULL,
                fiscal_period VARCHAR NOT NULL,
                period_start DATE,
                period_end DATE NOT NULL,
                value DOUBLE NOT NULL,
                unit VARCHAR NOT NULL,
                source_taxonomy VARCHAR NOT NULL,
                source_concept VARCHAR NOT NULL,
                accession VARCHAR NOT NULL,
                form VARCHAR,
                filed DATE
            )
            """,
        ),
    ),
    Migration(
        3,
        "data quality: reconciliation results and filing quality scores, per run",
        (
            """
            CREATE TABLE reconciliation_results (
                run_id VARCHAR NOT NULL,
                "check" VARCHAR NOT NULL,
                severity VARCHAR NOT NULL,
                passed BOOLEAN NOT NULL,
                affected_records BIGINT NOT NULL,
                detail JSON,
                run_at TIMESTAMP NOT NULL
            )
            """,
            """
            CREATE TABLE quality_scores (
                run_id VARCHAR NOT NULL,
                cik BIGINT NOT NULL,
                accession VARCHAR NOT NULL,
                form VARCHAR,
                fiscal_year INTEGER,
                fiscal_period VARCHAR,
                score DOUBLE NOT NULL,
                grade VARCHAR NOT NULL,
                components JSON,
                scored_at TIMESTAMP NOT NULL
            )
            """,
        ),
    ),
    Migration(
        4,
        "quality scores: components as a list of structs instead of a JSON object",
        # {"coverage": {"score": .., "weight": .., "reason": ..}, ...} -> [{name: 'coverage',
        # score, weight, reason}, ...] in the scorer's component order (others after, by name).
        # A new column filled by UPDATE, not ALTER ... USING: the write-ahead log then holds
        # the converted values, never an expression to re-bind when it is replayed.
        (
            """
            ALTER TABLE quality_scores ADD COLUMN components_v4
                STRUCT(name VARCHAR, score DOUBLE, weight DOUBLE, reason VARCHAR)[]
            """,
            """
            UPDATE quality_scores SET components_v4 = list_transform(
                list_sort(list_transform(
                    map_entries(components::MAP(VARCHAR, JSON)),
                    lambda e: {
                        'rank': coalesce(nullif(list_position(
                            ['coverage', 'balance_sheet', 'identities', 'duplicates',
                             'consistency', 'missing_values', 'depth'], e.key), 0), 99),
                        'name': e.key,
                        'score': (e.value ->> 'score')::DOUBLE,
                        'weight': (e.value ->> 'weight')::DOUBLE,
                        'reason': e.value ->> 'reason'})),
                lambda c: {'name': c.name, 'score': c.score, 'weight': c.weight,
                           'reason': c.reason})
            WHERE components IS NOT NULL
            """,
            "ALTER TABLE quality_scores DROP COLUMN components",
            "ALTER TABLE quality_scores RENAME COLUMN components_v4 TO components",
        ),
    ),
    Migration(
        5,
        "load log: a needs-normalize mark, set with a company's facts, cleared with its financials",
        # Warehouses from before the mark: a company with facts and no financials was cut
        # off between load and normalize; it is marked, so the next run rebuilds it.
        (
            "ALTER TABLE company_loads ADD COLUMN needs_normalize BOOLEAN DEFAULT false",
            """
            UPDATE company_loads SET needs_normalize = true
            WHERE fact_count > 0 AND cik NOT IN (SELECT DISTINCT cik FROM financials)
            """,
        ),
    ),
    Migration(
        6,
        "nightly runs: the last day processed (watermark) and the companies still pending",
        (
            """
            CREATE TABLE nightly_watermark (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                last_day DATE NOT NULL,
                updated_at TIMESTAMP NOT NULL
            )
            """,
            """
            CREATE TABLE nightly_pending (
                cik BIGINT PRIMARY KEY,
                name VARCHAR,
                first_day DATE NOT NULL,
                status VARCHAR NOT NULL,
                reason VARCHAR,
                attempts INTEGER NOT NULL,
                updated_at TIMESTAMP NOT NULL
            )
            """,
        ),
    ),
    Migration(
        7,
        "HTTP validators (ETag, Last-Modified) of every stored document, for conditional GETs",
        # Written only in the transaction that stores the document's content (or confirms it
        # is stored unchanged): validators never outlive the data they vouch for.
        (
            """
            CREATE TABLE http_validators (
                url VARCHAR PRIMARY KEY,
                cik BIGINT,
                etag VARCHAR,
                last_modified VARCHAR,
                stored_at TIMESTAMP NOT NULL
            )
            """,
        ),
    ),
    Migration(
        8,
        "point in time: every filing's value (derived ones too) in financials_history, and"
        " the table macro financials_as_of(DATE)",
        # financials_history becomes the record of every version (normalize/financials.py);
        # every company is marked so the next run rebuilds it under the per-filing rules.
        (
            "ALTER TABLE financials_history ADD COLUMN method VARCHAR DEFAULT 'reported'",
            "ALTER TABLE financials_history ADD COLUMN formula VARCHAR",
            "ALTER TABLE financials_history ALTER COLUMN source_taxonomy DROP NOT NULL",
            "ALTER TABLE financials_history ALTER COLUMN source_concept DROP NOT NULL",
            "UPDATE company_loads SET needs_normalize = true WHERE fact_count > 0",
            FINANCIALS_AS_OF,
        ),
    ),
    Migration(
        9,
        "audit log: one hash-chained entry per operation (finloom_core.audit)",
        # Append-only by convention: FinLoom only INSERTs; each entry's hash covers its
        # fields and the previous entry's hash, so an edit by hand breaks the chain.
        (
            """
            CREATE TABLE audit_log (
                seq BIGINT PRIMARY KEY,
                "at" TIMESTAMP NOT NULL,  -- UTC
                actor JSON NOT NULL,
                action VARCHAR NOT NULL,
                parameters JSON NOT NULL,
                outcome VARCHAR NOT NULL,
                reason VARCHAR,
                counts JSON NOT NULL,
                prev_hash VARCHAR NOT NULL,
                hash VARCHAR NOT NULL
            )
            """,
        ),
    ),
)

SCHEMA_VERSION = max(m.version for m in MIGRATIONS)


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply pending migrations; return the schema version now in force."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, description VARCHAR NOT NULL,"
        " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
    )
    applied = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
    for migration in sorted(MIGRATIONS, key=lambda m: m.version):
        if migration.version in applied:
            continue
        with transaction(con):
            for statement in migration.statements:
                con.execute(statement)
            con.execute(
                "INSERT INTO schema_migrations (version, description) VALUES (?, ?)",
                [migration.version, migration.description],
            )
    return current_version(con)


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    rows = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchall()
    return int(rows[0][0])
