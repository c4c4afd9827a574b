"""Exactly-once loads: replace a company's rows in one transaction, never append or mix."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from finloom_core import pipeline
from finloom_core.errors import DatabaseLockedError
from finloom_core.parse.companyfacts import parse_companyfacts
from finloom_core.pipeline import load_batch, parse_documents, run_pipeline
from finloom_core.records import ParsedCompany, Status
from finloom_core.storage import loader
from finloom_core.storage.database import open_warehouse
from finloom_core.storage.loader import load_company
from tests.factories import (
    COMMIT_FAILURE,
    Fact,
    FailingCommit,
    Filing,
    MemorySource,
    accession,
    company_documents,
    companyfacts_doc,
    submissions_doc,
    to_bytes,
)

ACME, OTHER = 1111, 2222
K1, Q3, OLD = accession(ACME, 2023, 1), accession(ACME, 2023, 2), accession(ACME, 2019, 9)
OTHER_K = accession(OTHER, 2023, 1)

ACME_FACTS = [
    Fact("Revenues", 383285000000, K1, "2023-09-30", "2022-10-01", filed="2023-11-03"),
    Fact("Revenues", 89498000000, K1, "2023-09-30", "2023-07-02", filed="2023-11-03"),
    Fact("Assets", 352583000000, K1, "2023-09-30", filed="2023-11-03"),
    Fact("EarningsPerShareBasic", 1.26, Q3, "2023-07-01", "2023-04-02", unit="USD/shares",
         form="10-Q", fp="Q3", filed="2023-08-04"),
    # OLD is in no submissions document: its filing row must come from the facts
    Fact("Assets", 338516000000, OLD, "2019-09-28", form="10-K", fy=2019, filed="2019-10-31"),
    Fact("EntityCommonStockSharesOutstanding", 15552752000, OLD, "2019-10-18",
         taxonomy="dei", unit="shares", form="10-K", fy=2019, filed="2019-10-30"),
]  # fmt: skip
ACME_FILINGS = [Filing(K1, form="10-K", filed="2023-11-03"), Filing(Q3, form="10-Q")]
OTHER_FACTS = [
    Fact("Revenue", 2161735841000, OTHER_K, "2023-12-31", "2023-01-01", taxonomy="ifrs-full",
         unit="TWD", form="20-F", filed="2024-04-18"),
    Fact("Revenue", -0.07, OTHER_K, "2023-12-31", "2023-07-01", taxonomy="ifrs-full",
         unit="TWD", form="20-F", filed="2024-04-18"),
]  # fmt: skip

FACT_COLUMNS = (
    "cik, taxonomy, concept, unit, period_start, period_end, value, accession, "
    "fiscal_year, fiscal_period, form, filed, frame"
)


def parsed(
    cik: int,
    facts: list[Fact] | bytes | None,
    filings: list[Filing] | None = None,
    *,
    staged: bool = False,
    **company,
):
    """A parsed company; ``facts`` may be raw bytes for a document the factory cannot build."""
    subs = [] if filings is None else [submissions_doc(cik, filings, **company)]
    doc = facts
    if isinstance(facts, list):
        doc = companyfacts_doc(cik, facts, entity_name=f"Entity {cik}")
    return parse_documents(company_documents(cik, doc, subs, staged=staged))


def acme(facts: list[Fact] = ACME_FACTS, filings: list[Filing] | None = ACME_FILINGS):
    return parsed(ACME, facts, filings, name="Acme Corp", tickers=["ACME"])


def other():
    return parsed(OTHER, OTHER_FACTS, [Filing(OTHER_K, form="20-F")], name="Other")


def stored_facts(db: Path, cik: int) -> list[tuple]:
    with open_warehouse(db, read_only=True) as con:
        return sorted(
            con.execute(f"SELECT {FACT_COLUMNS} FROM facts WHERE cik = ?", [cik]).fetchall(),
            key=repr,
        )


def expected_facts(company: ParsedCompany) -> list[tuple]:
    """The company's facts as parse_companyfacts reads its document (independent of the
    loader's INSERT)."""
    assert company.facts is not None
    names = [c.strip() for c in FACT_COLUMNS.split(",")]
    rows = parse_companyfacts(company.facts.path, company.cik).select(names).to_pylist()
    return sorted((tuple(r[n] for n in names) for r in rows), key=repr)


def table_counts(db: Path) -> dict[str, int]:
    with open_warehouse(db, read_only=True) as con:
        return {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
            for t in ("companies", "filings", "facts", "company_loads")
        }


def query(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    with open_warehouse(db, read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "w.duckdb"


def test_a_load_inserts_every_fact(db: Path) -> None:
    company = acme()
    [outcome] = load_batch(db, [company], source="test")
    assert outcome.status is Status.LOADED
    assert outcome.facts == len(ACME_FACTS)
    assert stored_facts(db, ACME) == expected_facts(company)
    assert query(db, "SELECT name, tickers FROM companies WHERE cik = ?", [ACME]) == [
        ("Acme Corp", ["ACME"])
    ]


def test_every_fact_accession_has_a_filing_row(db: Path) -> None:
    load_batch(db, [acme()], source="test")
    orphans = query(
        db,
        "SELECT DISTINCT accession FROM facts f"
        " WHERE NOT EXISTS (SELECT 1 FROM filings g WHERE g.accession = f.accession)",
    )
    assert orphans == []
    rows = {
        r[0]: r[1:]
        for r in query(db, "SELECT accession, source, form, filed, cik FROM filings ORDER BY 1")
    }
    assert rows[K1] == ("submissions", "10-K", dt.date(2023, 11, 3), ACME)
    assert rows[Q3][0] == "submissions"
    # facts-only accession: form and earliest filed date from its facts
    assert rows[OLD] == ("facts", "10-K", dt.date(2019, 10, 30), ACME)
    assert len(rows) == 3


def test_a_rerun_changes_nothing(db: Path) -> None:
    source = MemorySource(
        [
            company_documents(ACME, companyfacts_doc(ACME, ACME_FACTS),
                              [submissions_doc(ACME, ACME_FILINGS)]),
            company_documents(OTHER, companyfacts_doc(OTHER, OTHER_FACTS)),
        ]
    )  # fmt: skip
    first = run_pipeline(source, [ACME, OTHER], db)
    assert [o.status for o in first] == [Status.LOADED, Status.LOADED]
    counts = table_counts(db)
    facts = stored_facts(db, ACME)
    second = run_pipeline(source, [ACME, OTHER], db)
    assert [o.status for o in second] == [Status.UNCHANGED, Status.UNCHANGED]
    assert [(o.facts, o.filings) for o in second] == [(o.facts, o.filings) for o in first]
    assert table_counts(db) == counts
    assert stored_facts(db, ACME) == facts


def test_a_changed_payload_replaces_the_company_exactly(db: Path) -> None:
    load_batch(db, [acme(), other()], source="test")
    other_before = stored_facts(db, OTHER)
    other_filings = query(db, "SELECT * FROM filings WHERE cik = ? ORDER BY 1", [OTHER])

    changed = list(ACME_FACTS[:-1])  # one fact removed (the dei one) ...
    changed[2] = Fact(
        "Assets", 352583000001, K1, "2023-09-30", filed="2023-11-03"
    )  # ... one changed
    new = acme(changed)
    [outcome] = load_batch(db, [new], source="test")

    assert outcome.status is Status.LOADED
    assert stored_facts(db, ACME) == expected_facts(new)
    assert len(stored_facts(db, ACME)) == len(ACME_FACTS) - 1
    assert query(db, "SELECT value FROM facts WHERE cik = ? AND concept = 'Assets'"
                     " AND accession = ?", [ACME, K1]) == [(352583000001.0,)]  # fmt: skip
    assert stored_facts(db, OTHER) == other_before
    assert query(db, "SELECT * FROM filings WHERE cik = ? ORDER BY 1", [OTHER]) == other_filings


def test_a_failure_mid_transaction_keeps_the_previous_rows(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_batch(db, [acme()], source="test")
    before = {t: query(db, f"SELECT * FROM {t} ORDER BY ALL") for t in
              ("facts", "filings", "companies", "company_loads")}  # fmt: skip
    new = acme(ACME_FACTS[:2])
    seen_inside: list[int] = []

    def fail_after_facts(con: duckdb.DuckDBPyConnection, *args: object, **kwargs: object) -> int:
        # the facts were already replaced inside the open transaction ...
        seen_inside.append(con.execute("SELECT count(*) FROM facts").fetchall()[0][0])
        raise duckdb.IOException("disk full")  # ... then the load fails

    monkeypatch.setattr(loader, "_replace_filings", fail_after_facts)
    [outcome] = load_batch(db, [new], source="test")

    assert outcome.status is Status.FAILED and outcome.stage == "load"
    assert "disk full" in (outcome.reason or "")
    assert seen_inside == [2]  # the new facts had been written before the failure
    after = {t: query(db, f"SELECT * FROM {t} ORDER BY ALL") for t in before}
    assert after == before

    monkeypatch.undo()  # the failed load left no trace: the same payload now loads
    [retry] = load_batch(db, [new], source="test")
    assert retry.status is Status.LOADED
    assert stored_facts(db, ACME) == expected_facts(new)


def test_any_exception_rolls_back_and_propagates(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_batch(db, [acme()], source="test")
    before = stored_facts(db, ACME)

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(loader, "_replace_filings", boom)
    with open_warehouse(db) as con, pytest.raises(KeyboardInterrupt):
        load_company(con, acme(ACME_FACTS[:1]), source="test")
    assert stored_facts(db, ACME) == before


@pytest.mark.parametrize("ends_transaction", [True, False], ids=["ends", "keeps"])
def test_a_failed_commit_is_reported_with_its_own_cause(db: Path, ends_transaction: bool) -> None:
    """A COMMIT that fails (the WAL cannot be created), then a ROLLBACK that may fail too:
    each company's one-line reason names the COMMIT's error, and nothing is stored."""
    load_batch(db, [acme()], source="test")
    before = {t: query(db, f"SELECT * FROM {t} ORDER BY ALL") for t in
              ("facts", "filings", "companies", "company_loads")}  # fmt: skip
    batch = [acme(ACME_FACTS[:2]), other()]
    with open_warehouse(db) as real:
        con = FailingCommit(real, ends_transaction=ends_transaction)
        results = loader.load_companies(con, batch, source="test")  # type: ignore[arg-type]
    assert [r.error for r in results] == [COMMIT_FAILURE] * 2  # not "cannot rollback - ..."
    # the batch's transaction, then each company's own: every failed COMMIT rolled back
    assert con.statements == ["BEGIN", "COMMIT", "ROLLBACK"] * 3
    assert [r.error_stage for r in results] == ["load", "load"]
    assert {t: query(db, f"SELECT * FROM {t} ORDER BY ALL") for t in before} == before


def test_a_facts_only_reload_keeps_submissions_filings_and_tickers(db: Path) -> None:
    load_batch(db, [acme()], source="test")
    subs_rows = query(db, "SELECT * FROM filings WHERE source = 'submissions' ORDER BY 1")
    assert len(subs_rows) == len(ACME_FILINGS)

    changed = [*ACME_FACTS[:4], Fact("Assets", 1.0, OLD, "2019-09-28", filed="2019-11-01")]
    facts_only = acme(changed, filings=None)
    assert not facts_only.has_submissions
    [outcome] = load_batch(db, [facts_only], source="test")

    assert outcome.status is Status.LOADED
    assert stored_facts(db, ACME) == expected_facts(facts_only)
    assert query(db, "SELECT * FROM filings WHERE source = 'submissions' ORDER BY 1") == subs_rows
    assert query(db, "SELECT name, tickers FROM companies WHERE cik = ?", [ACME]) == [
        ("Acme Corp", ["ACME"])
    ]
    assert query(db, "SELECT form, filed FROM filings WHERE accession = ?", [OLD]) == [
        ("10-K", dt.date(2019, 11, 1))  # facts-sourced rows follow the new facts
    ]
    # the stored submissions hash survives, so the same submissions are not reloaded
    [again] = load_batch(db, [acme(changed)], source="test")
    assert again.status is Status.UNCHANGED


def test_a_facts_only_first_load_names_the_company_from_the_facts(db: Path) -> None:
    load_batch(db, [parsed(OTHER, OTHER_FACTS)], source="test")
    assert query(db, "SELECT name, tickers FROM companies WHERE cik = ?", [OTHER]) == [
        (f"Entity {OTHER}", [])
    ]
    assert query(db, "SELECT DISTINCT source FROM filings WHERE cik = ?", [OTHER]) == [("facts",)]


def test_duplicates_in_a_payload_are_dropped_to_one_per_key(db: Path) -> None:
    key = dict(concept="Revenues", accn=K1, end="2023-09-30", start="2022-10-01")
    facts = [
        Fact(**key, val=1.0, filed="2023-11-03"),
        Fact(**key, val=3.0, filed="2023-11-05"),  # the last filed wins
        Fact(**key, val=2.0, filed="2023-11-04"),
        Fact("Assets", 7.0, K1, "2023-09-30"),
    ]
    company = acme(facts)
    with open_warehouse(db) as con:
        result = load_company(con, company, source="test")
    assert result.duplicates_dropped == 2
    assert result.facts == 2
    assert query(db, "SELECT concept, value FROM facts ORDER BY concept") == [
        ("Assets", 7.0),
        ("Revenues", 3.0),
    ]
    duplicates = query(
        db,
        "SELECT count(*) FROM (SELECT accession, taxonomy, concept, unit, period_start,"
        " period_end FROM facts GROUP BY ALL HAVING count(*) > 1)",
    )
    assert duplicates == [(0,)]


def test_load_batch_reports_duplicates_as_a_warning(db: Path) -> None:
    key = dict(concept="Revenues", accn=K1, end="2023-09-30", start="2022-10-01")
    company = acme([Fact(**key, val=1.0), Fact(**key, val=2.0, filed="2024-01-01")])
    [outcome] = load_batch(db, [company], source="test")
    assert outcome.facts == 1
    assert any("1 facts repeated a key" in w for w in outcome.warnings)


def test_a_company_without_xbrl_facts(db: Path) -> None:
    [outcome] = load_batch(db, [parsed(OTHER, None, [Filing(OTHER_K)])], source="test")
    assert outcome.status is Status.NO_XBRL
    assert (outcome.facts, outcome.filings) == (0, 1)


def test_a_jointly_filed_accession_is_listed_for_each_filer(db: Path) -> None:
    joint = accession(OTHER, 2024, 7)  # e.g. a Form 4 filed by an owner and the issuer
    first = parsed(OTHER, None, [Filing(joint, form="4")])
    second = parsed(ACME, None, [Filing(joint, form="4"), Filing(K1)])
    outcomes = load_batch(db, [first, second], source="test")
    assert [o.filings for o in outcomes] == [1, 2]
    assert query(db, "SELECT count(*) FROM filings WHERE accession = ?", [joint]) == [(1,)]
    assert query(
        db, "SELECT cik FROM filing_companies WHERE accession = ? ORDER BY cik", [joint]
    ) == sorted([(OTHER,), (ACME,)])
    # reloading one filer keeps the other's listing and the single filings row
    [reloaded] = load_batch(
        db, [parsed(OTHER, None, [Filing(joint, form="4"), Filing(OTHER_K)])], source="test"
    )
    assert reloaded.filings == 2
    assert query(db, "SELECT count(*) FROM filings WHERE accession = ?", [joint]) == [(1,)]
    assert query(db, "SELECT count(*) FROM filing_companies WHERE cik = ?", [ACME]) == [(2,)]


def test_duplicate_instants_and_per_company_counts_in_a_batch(db: Path) -> None:
    """An instant (NULL period_start) repeated is a repeated key; drops are counted per
    company, and the same key in two companies is no repeat."""
    instant = dict(concept="Assets", accn=K1, end="2023-09-30")
    acme_facts = [
        Fact(**instant, val=1.0, filed="2023-11-03"),
        Fact(**instant, val=2.0, filed="2023-12-01"),  # the last filed
        Fact("Revenues", 5.0, K1, "2023-09-30", "2022-10-01"),
    ]
    shared_key = [Fact(**instant, val=9.0), Fact("Revenues", 6.0, K1, "2023-09-30", "2022-10-01")]
    outcomes = load_batch(db, [acme(acme_facts), parsed(OTHER, shared_key)], source="test")
    assert [(o.status, o.facts) for o in outcomes] == [(Status.LOADED, 2), (Status.LOADED, 2)]
    assert any("1 facts repeated a key" in w for w in outcomes[0].warnings)
    assert not any("repeated a key" in w for w in outcomes[1].warnings)
    assert query(db, "SELECT cik, concept, value FROM facts ORDER BY ALL") == [
        (ACME, "Assets", 2.0),
        (ACME, "Revenues", 5.0),
        (OTHER, "Assets", 9.0),
        (OTHER, "Revenues", 6.0),
    ]
    assert query(db, "SELECT cik, fact_count FROM company_loads ORDER BY cik") == [
        (ACME, 2),
        (OTHER, 2),
    ]


def test_a_payload_without_duplicates_drops_nothing(db: Path) -> None:
    with open_warehouse(db) as con:
        result = load_company(con, acme(), source="test")
    assert result.duplicates_dropped == 0
    assert result.facts == len(ACME_FACTS)
    assert stored_facts(db, ACME) == expected_facts(acme())


def test_facts_only_accessions_get_filing_rows_from_their_facts(db: Path) -> None:
    """No submissions: one 'facts' row per accession, with its CIK and form and the earliest
    filed date of its facts."""
    a1, a2 = accession(ACME, 2023, 5), accession(ACME, 2024, 3)
    facts = [
        Fact("Revenues", 1, a1, "2023-06-30", "2023-04-01", form="10-Q", filed="2023-07-25"),
        Fact("Assets", 2, a1, "2023-06-30", form="10-Q", filed="2023-07-24"),
        Fact("Liabilities", 4, a1, "2023-06-30", form="10-Q", filed="2023-07-26"),
        Fact("Revenues", 3, a2, "2023-12-31", "2023-01-01", filed="2024-01-29"),
    ]
    [outcome] = load_batch(db, [parsed(ACME, facts)], source="test")
    assert (outcome.status, outcome.facts, outcome.filings) == (Status.LOADED, 4, 2)
    assert query(
        db, "SELECT accession, cik, form, filed, is_xbrl, source FROM filings ORDER BY 1"
    ) == [
        (a1, ACME, "10-Q", dt.date(2023, 7, 24), True, "facts"),  # earliest filed
        (a2, ACME, "10-K", dt.date(2024, 1, 29), True, "facts"),
    ]
    assert query(db, "SELECT accession, cik, source FROM filing_companies ORDER BY 1") == [
        (a1, ACME, "facts"),
        (a2, ACME, "facts"),
    ]


def test_submissions_rows_win_over_facts_derived_ones(db: Path) -> None:
    amended = Filing(K1, form="10-K/A", filed="2023-11-10", report_date="2023-09-30")
    [outcome] = load_batch(db, [acme(filings=[amended])], source="test")
    assert outcome.status is Status.LOADED
    rows = {r[0]: r[1:] for r in query(db, "SELECT accession, source, form, filed FROM filings")}
    # K1 is in the submissions and in the facts (form 10-K, filed 2023-11-03): submissions win
    assert rows[K1] == ("submissions", "10-K/A", dt.date(2023, 11, 10))
    assert rows[Q3] == ("facts", "10-Q", dt.date(2023, 8, 4))
    assert rows[OLD] == ("facts", "10-K", dt.date(2019, 10, 30))
    assert query(
        db, "SELECT accession, source FROM filing_companies WHERE accession = ?", [K1]
    ) == [(K1, "submissions")]
    assert outcome.filings == len(rows) == 3


def test_an_accession_in_two_companies_facts_is_one_filing_listed_for_both(db: Path) -> None:
    joint = accession(OTHER, 2024, 7)
    first = parsed(OTHER, [Fact("Assets", 1, joint, "2023-12-31", form="8-K", filed="2024-02-02")])
    second = parsed(ACME, [Fact("Assets", 2, joint, "2023-12-31", form="8-K", filed="2024-02-01")])
    outcomes = load_batch(db, [first, second], source="test")
    assert [o.filings for o in outcomes] == [1, 1]
    assert query(
        db, "SELECT cik, form, filed, source FROM filings WHERE accession = ?", [joint]
    ) == [(min(ACME, OTHER), "8-K", dt.date(2024, 2, 1), "facts")]
    assert query(
        db, "SELECT cik FROM filing_companies WHERE accession = ? ORDER BY cik", [joint]
    ) == sorted([(OTHER,), (ACME,)])


def _good_document(cik: int) -> bytes:
    return to_bytes(companyfacts_doc(cik, [Fact("Assets", 1, K1, "2023-09-30")]))


MALFORMED = {
    # passes sniff_companyfacts (an object, ends with '}', has "facts"); DuckDB refuses it
    "malformed-json": _good_document(ACME).replace(b'"val": 1', b'"val" 1'),
    "bad-date": _good_document(ACME).replace(b"2023-09-30", b"2023-13-45"),
    "wrong-shape": to_bytes({"cik": ACME, "facts": {"us-gaap": {"Assets": {"units": ["USD"]}}}}),
}


def _load_with_a_malformed_document(db: Path, kind: str) -> tuple[list, ParsedCompany, dict]:
    """Acme loaded, then a batch [other, Acme with a malformed document, a third company]."""
    load_batch(db, [acme()], source="test")
    before = {t: query(db, f"SELECT * FROM {t} WHERE cik = ? ORDER BY ALL", [ACME])
              for t in ("facts", "filings", "companies", "company_loads")}  # fmt: skip
    bad = parsed(ACME, MALFORMED[kind], ACME_FILINGS, name="Acme Corp")
    assert isinstance(bad, ParsedCompany)  # the cheap check lets it through
    third = parsed(3333, [Fact("Assets", 3, K1, "2023-09-30")])
    return load_batch(db, [other(), bad, third], source="test"), bad, before


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_a_document_duckdb_cannot_parse_fails_only_its_company(db: Path, kind: str) -> None:
    outcomes, _, before = _load_with_a_malformed_document(db, kind)
    assert [o.status for o in outcomes] == [Status.LOADED, Status.FAILED, Status.LOADED]
    assert outcomes[1].cik == ACME
    assert outcomes[1].reason and "\n" not in outcomes[1].reason
    after = {t: query(db, f"SELECT * FROM {t} WHERE cik = ? ORDER BY ALL", [ACME]) for t in before}
    assert after == before  # the previous version stays whole
    assert stored_facts(db, OTHER) == expected_facts(other())
    assert outcomes[2].facts == 1 and len(stored_facts(db, 3333)) == 1
    assert query(db, "SELECT count(*) FROM facts WHERE cik = 3333") == [(1,)]


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_a_document_duckdb_cannot_parse_is_a_parse_failure(db: Path, kind: str) -> None:
    outcomes, bad, _ = _load_with_a_malformed_document(db, kind)
    failed = outcomes[1]
    assert (failed.cik, failed.status, failed.stage) == (ACME, Status.FAILED, "parse")
    assert "transaction is aborted" not in (failed.reason or "")
    if kind == "malformed-json":
        assert str(bad.facts.path) in (failed.reason or "")  # type: ignore[union-attr]


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"1e400", b"-1e400"],
                         ids=lambda t: t.decode())  # fmt: skip
def test_a_value_that_is_not_a_finite_number_fails_its_company_at_parse(
    db: Path, token: bytes
) -> None:
    load_batch(db, [acme()], source="test")
    before = {t: query(db, f"SELECT * FROM {t} WHERE cik = ? ORDER BY ALL", [ACME])
              for t in ("facts", "filings", "companies", "company_loads")}  # fmt: skip
    document = _good_document(ACME)
    assert document.count(b'"val": 1') == 1
    bad = parsed(ACME, document.replace(b'"val": 1', b'"val": ' + token), ACME_FILINGS)
    outcomes = load_batch(db, [other(), bad], source="test")

    assert [o.status for o in outcomes] == [Status.LOADED, Status.FAILED]
    failed = outcomes[1]
    assert failed.stage == "parse" and failed.reason and "\n" not in failed.reason
    assert f"us-gaap:Assets (USD) in accession {K1} is not a finite number" in failed.reason
    after = {t: query(db, f"SELECT * FROM {t} WHERE cik = ? ORDER BY ALL", [ACME]) for t in before}
    assert after == before  # the previous version stays whole
    assert query(db, "SELECT count(*) FROM facts WHERE NOT isfinite(value)") == [(0,)]


def test_staged_documents_are_deleted_after_the_load(db: Path) -> None:
    staged = [
        acme(),  # a referenced file, as a folder source's: never deleted
        parsed(OTHER, OTHER_FACTS, staged=True),
        parsed(3333, MALFORMED["malformed-json"], staged=True),  # fails to load
    ]
    files = [p.facts.path for p in staged]  # type: ignore[union-attr]
    assert all(f.is_file() for f in files)
    outcomes = load_batch(db, staged, source="test")
    assert [o.status for o in outcomes] == [Status.LOADED, Status.LOADED, Status.FAILED]
    assert [f.is_file() for f in files] == [True, False, False]

    # an unchanged staged document is deleted too
    again = parsed(OTHER, OTHER_FACTS, staged=True)
    [outcome] = load_batch(db, [again], source="test")
    assert outcome.status is Status.UNCHANGED
    assert not again.facts.path.exists()  # type: ignore[union-attr]


def test_a_locked_database_keeps_staged_documents_for_the_retry(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """load_task retries on DatabaseLockedError with the same parsed companies."""
    company = parsed(OTHER, OTHER_FACTS, staged=True)

    def locked(*args: object, **kwargs: object) -> None:
        raise DatabaseLockedError(f"{db} is locked by another process")

    monkeypatch.setattr(pipeline, "open_warehouse", locked)
    with pytest.raises(DatabaseLockedError):
        load_batch(db, [company], source="test")
    monkeypatch.undo()

    assert company.facts is not None and company.facts.path.is_file()
    [outcome] = load_batch(db, [company], source="test")
    assert (outcome.status, outcome.facts) == (Status.LOADED, len(OTHER_FACTS))
    assert not company.facts.path.exists()  # deleted once loaded
