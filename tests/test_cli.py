"""The ``finloom`` console script, run in subprocesses with a clean environment.

Bad input and unusable files must fail in one line on stderr with exit code 2 and no
traceback, before Prefect starts (checked: the "starting the backfill flow" line is absent).
Only a few runs here start the flow (each starts its own temporary Prefect server, ~15 s).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]
STARTING = "starting the backfill flow"
APPLE, TSM = 320193, 1046179
PREFECT_SERVER_APP = "prefect.server.api.server:create_app"


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def clean_env(home: Path) -> dict[str, str]:
    """No FINLOOM_* variable, a throwaway PREFECT_HOME, no telemetry, a wide terminal."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "PREFECT_HOME": str(home / ".prefect"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "COLUMNS": "200",
        "NO_COLOR": "1",
        "LANG": "C.UTF-8",
    }
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    return env


def finloom(
    home: Path, *args: str, timeout: float = 180, env: dict[str, str] | None = None
) -> Result:
    """Run ``python -m finloom_cli.main ARGS`` in ``home`` (its cwd: no .env is read)."""
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "finloom_cli.main", *args],
        cwd=home,
        env={**clean_env(home), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_usage_error(result: Result, *needles: str) -> str:
    """Exit 2, one line on stderr containing every needle, no traceback, Prefect not started."""
    assert result.code == 2, result
    assert "Traceback" not in result.output, result.output
    assert STARTING not in result.output, "Prefect was started for an input error"
    lines = result.error_lines()
    assert len(lines) == 1, lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ input errors


def test_unknown_ticker_in_a_local_source(shared_edgar: Path, tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    result = finloom(
        tmp_path, "backfill", "--tickers", "AAPL,ZZZQX", "--source", str(shared_edgar),
        "--db", str(db),
    )  # fmt: skip
    line = assert_usage_error(result, "ZZZQX")
    assert "AAPL" not in line
    assert not db.exists(), "the database was created for a run that could not start"


def test_malformed_cik(tmp_path: Path) -> None:
    result = finloom(tmp_path, "backfill", "--ciks", "320193,12ab", "--source", "/nonexistent")
    assert_usage_error(result, "'12ab'", "CIK")


def test_missing_user_agent_for_the_live_api(tmp_path: Path) -> None:
    result = finloom(tmp_path, "backfill", "--tickers", "AAPL", "--db", str(tmp_path / "w.db"))
    assert_usage_error(result, "FINLOOM_SEC_USER_AGENT")
    assert not (tmp_path / "w.db").exists()


def test_missing_source_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    result = finloom(tmp_path, "backfill", "--ciks", "320193", "--source", str(missing))
    assert_usage_error(result, str(missing), "does not exist")


@pytest.mark.parametrize("name", ["notes.txt", "companyfacts.zip"])
def test_source_that_is_neither_a_folder_nor_a_zip(tmp_path: Path, name: str) -> None:
    broken = tmp_path / name
    broken.write_bytes(b"this is not an EDGAR archive\n" * 10)
    result = finloom(tmp_path, "backfill", "--ciks", "320193", "--source", str(broken))
    assert_usage_error(result, str(broken))


# ------------------------------------------------------------------ unusable databases


HOLDER = """
import duckdb, sys, time
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE mine AS SELECT 42 AS answer")
con.execute("CHECKPOINT")
print("ready", flush=True)
time.sleep(120)
"""


def test_locked_database(shared_edgar: Path, tmp_path: Path) -> None:
    db = tmp_path / "held.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"ready"
        before = sha256(db)
        result = finloom(
            tmp_path / "cli", "backfill", "--ciks", str(APPLE), "--source", str(shared_edgar),
            "--db", str(db),
        )  # fmt: skip
        info = finloom(tmp_path / "cli", "db", "info", "--db", str(db))
        assert sha256(db) == before
    finally:
        holder.terminate()
        holder.wait(timeout=30)

    assert_usage_error(result, "locked", str(db))
    assert_usage_error(info, "locked", str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        assert tables == ["mine"]
        assert con.execute("SELECT * FROM mine").fetchall() == [(42,)]


def test_corrupt_database_is_left_untouched(shared_edgar: Path, tmp_path: Path) -> None:
    db = tmp_path / "corrupt.duckdb"
    db.write_bytes(b"\x00FINLOOM-NOT-A-DATABASE\xff" * 500)
    before = sha256(db)
    result = finloom(
        tmp_path, "backfill", "--ciks", str(APPLE), "--source", str(shared_edgar), "--db", str(db)
    )
    assert_usage_error(result, str(db))
    assert sha256(db) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("corrupt")) == [
        "corrupt.duckdb"
    ]

    info = finloom(tmp_path, "db", "info", "--db", str(db))
    assert_usage_error(info, str(db))
    assert sha256(db) == before


# ------------------------------------------------------------------ runs that start the flow


def _temporary_server(process: psutil.Process) -> psutil.Process | None:
    """The temporary Prefect server among the process's children, once it listens."""
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if PREFECT_SERVER_APP in " ".join(child.cmdline()) and any(
                conn.status == psutil.CONN_LISTEN for conn in child.net_connections("tcp")
            ):
                return child
    return None


def test_a_killed_command_takes_its_temporary_prefect_server_along(
    shared_edgar: Path, tmp_path: Path
) -> None:
    """kill -9 of a command leaves no temporary Prefect server behind (~200 MB each)."""
    home = tmp_path / "killed"
    home.mkdir()
    command = subprocess.Popen(
        [sys.executable, "-m", "finloom_cli.main", "backfill", "--source", str(shared_edgar),
         "--db", str(home / "w.duckdb"), "--no-quality"],
        cwd=home, env=clean_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    children: list[psutil.Process] = []
    try:
        process = psutil.Process(command.pid)
        deadline = time.monotonic() + 120
        while _temporary_server(process) is None:
            assert command.poll() is None, "the command ended before its server was seen"
            assert time.monotonic() < deadline, "no temporary Prefect server within 120 s"
            time.sleep(0.2)
        children = process.children(recursive=True)
        command.kill()  # kill -9: no atexit, no finally
        command.wait(timeout=30)
        _, alive = psutil.wait_procs(children, timeout=10)
        assert alive == [], f"left running after kill -9: {alive}"
    finally:
        if command.poll() is None:
            command.kill()
            command.wait(timeout=30)
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.kill()


@pytest.fixture(scope="module")
def backfilled(shared_edgar: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    home = tmp_path_factory.mktemp("cli-run")
    db = home / "warehouse.duckdb"
    result = finloom(
        home, "backfill", "--source", str(shared_edgar), "--ciks", f"{APPLE},{TSM}",
        "--db", str(db), "--no-quality",
    )  # fmt: skip
    return db, result


@pytest.mark.integration
def test_folder_backfill_prints_its_summary(backfilled: tuple[Path, Result]) -> None:
    _, result = backfilled
    assert result.code == 0, result
    assert "Traceback" not in result.output
    assert "loaded" in result.stdout
    assert "facts stored: 30,558" in result.stdout  # 24,579 (AAPL) + 5,979 (TSM)


@pytest.mark.integration
def test_db_info_lists_tables_and_row_counts(backfilled: tuple[Path, Result]) -> None:
    db, _ = backfilled
    result = finloom(db.parent, "db", "info", "--db", str(db))
    assert result.code == 0, result
    rows = {}
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").replace("┃", "│").split("│")]
        if len(cells) == 2 and cells[1].replace(",", "").isdigit():
            rows[cells[0]] = int(cells[1].replace(",", ""))
    with duckdb.connect(str(db), read_only=True) as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        expected = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] for t in tables}
    # the run's own audit entry is written after it publishes: the copy has the one before
    assert rows.pop("audit_log") == expected.pop("audit_log") - 1
    assert rows == expected
    assert rows["facts"] == 30_558
    assert rows["companies"] == 2
    assert rows["filings"] > 0
    assert re.search(r"\(schema v\d+\)", result.stdout)


@pytest.mark.integration
def test_incomplete_run_exits_1_naming_the_company_without_traceback(
    shared_edgar: Path, tmp_path: Path
) -> None:
    db = tmp_path / "w.duckdb"
    result = finloom(
        tmp_path, "backfill", "--source", str(shared_edgar), "--ciks", f"{TSM},999999999",
        "--db", str(db), "--no-quality",
    )  # fmt: skip
    assert result.code == 1, result
    assert "Traceback" not in result.output, result.output
    assert "CIK 999999999" in result.stderr
    assert "failed CIK 0999999999" in result.stdout
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM facts").fetchall() == [(5_979,)]


@pytest.mark.integration
def test_json_logs_every_line_is_json_with_the_run_correlation_id(
    shared_edgar: Path, tmp_path: Path
) -> None:
    db = tmp_path / "w.duckdb"
    result = finloom(
        tmp_path, "backfill", "--source", str(shared_edgar), "--ciks", "865941",
        "--db", str(db), env={"FINLOOM_LOG_FORMAT": "json"},
    )  # fmt: skip
    assert result.code == 0, result
    records = [json.loads(line) for line in result.error_lines()]  # each line parses
    runs = {r["flow"]: r["flow_run_id"] for r in records if r.get("flow_run_id")}
    assert set(runs) == {"backfill", "quality"}  # the quality subflow ran and logged
    assert {r["correlation_id"] for r in records} == {runs["backfill"]}
    assert any(r["logger"] == "prefect" for r in records)  # lines from before the run too
    assert json.loads(result.stdout)["facts"] == 7_542

    bad = finloom(tmp_path, "backfill", "--ciks", "12x", env={"FINLOOM_LOG_FORMAT": "json"})
    assert bad.code == 2
    (line,) = bad.error_lines()
    assert json.loads(line)["level"] == "ERROR" and "12x" in json.loads(line)["message"]


def finloom_on_a_terminal(home: Path, *args: str, timeout: float = 300) -> Result:
    """``finloom`` with stderr on a pseudo-terminal (as in an interactive shell) and stdout
    piped; ``stderr`` is what the terminal received."""
    import pty
    import threading

    home.mkdir(parents=True, exist_ok=True)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "finloom_cli.main", *args],
        cwd=home, env={**clean_env(home), "TERM": "xterm"}, stdout=subprocess.PIPE,
        stderr=slave, text=True,
    )  # fmt: skip
    os.close(slave)
    received: list[bytes] = []

    def read_terminal() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the other end closed
                return
            if not data:
                return
            received.append(data)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
        reader.join(timeout=10)
        os.close(master)
    return Result(proc.returncode, stdout, b"".join(received).decode(errors="replace"))


BUFFETT, BERKSHIRE = 315090, 1067983  # Warren Buffett's filings list Berkshire's as well
BAR = "\u2501"  # the progress bar's glyph


@pytest.fixture(scope="module")
def on_a_terminal(
    shared_edgar: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Result]:
    """A backfill with the quality flow, run from a terminal: Buffett, Berkshire, Apple."""
    home = tmp_path_factory.mktemp("cli-terminal")
    db = home / "warehouse.duckdb"
    result = finloom_on_a_terminal(
        home, "backfill", "--source", str(shared_edgar), "--ciks",
        f"{BUFFETT},{BERKSHIRE},{APPLE}", "--batch-size", "2", "--db", str(db),
    )  # fmt: skip
    return db, result


@pytest.mark.integration
def test_backfill_on_a_terminal_shows_a_progress_bar(on_a_terminal: tuple[Path, Result]) -> None:
    _, result = on_a_terminal
    assert result.code == 0, result
    assert "Traceback" not in result.output
    bar_lines = [line for line in re.split(r"[\r\n]", result.stderr) if BAR in line]
    assert bar_lines, result.stderr[-2000:]
    assert any("companies" in line and "3/3" in line for line in bar_lines)
    assert any("batch 1/2" in line for line in bar_lines)  # advanced batch by batch
    assert "batch 1/2" not in result.stdout  # the bar stays on the terminal (stderr)


@pytest.mark.integration
def test_backfill_without_a_terminal_shows_no_bar(backfilled: tuple[Path, Result]) -> None:
    _, result = backfilled
    assert BAR not in result.stderr
    assert result.stdout.rstrip().splitlines()[-1] == "quality: not run (--no-quality)"


@pytest.mark.integration
def test_backfill_counts_a_filing_listed_by_two_companies_once(
    on_a_terminal: tuple[Path, Result],
) -> None:
    db, result = on_a_terminal
    with duckdb.connect(str(db), read_only=True) as con:
        listed, distinct = con.execute(
            "SELECT count(*), count(DISTINCT accession) FROM filing_companies"
        ).fetchall()[0]
    assert listed > distinct  # Buffett's and Berkshire's lists share filings
    assert f"filings stored: {distinct:,} (distinct" in result.stdout
    assert f"filings stored: {listed:,}" not in result.stdout


@pytest.mark.integration
def test_backfill_prints_a_line_per_company(on_a_terminal: tuple[Path, Result]) -> None:
    db, result = on_a_terminal
    with duckdb.connect(str(db), read_only=True) as con:
        filings = dict(
            con.execute("SELECT cik, count(*) FROM filing_companies GROUP BY cik").fetchall()
        )
    lines = {line.split(" CIK ")[1][:10]: line for line in result.stdout.splitlines()
             if " CIK " in line}  # fmt: skip
    assert lines[f"{BUFFETT:010d}"] == (
        f"no_xbrl_facts CIK 0000315090 BUFFETT WARREN E: 0 facts, {filings[BUFFETT]:,} "
        "filings; no XBRL facts at SEC (companies and filings stored)"
    )
    assert lines[f"{BERKSHIRE:010d}"].startswith("no_xbrl_facts CIK 0001067983 BERKSHIRE")
    apple = lines[f"{APPLE:010d}"]
    assert apple.startswith(f"loaded CIK 0000320193 Apple Inc.: 24,579 facts, {filings[APPLE]:,}")
    # noted: the sample lacks a page of Apple's older filings
    assert "1 submissions page(s) not found" in apple
    assert "CIK0000320193-submissions-001.json" in apple


@pytest.mark.integration
def test_backfill_ends_with_the_quality_grades_and_the_data_docs(
    on_a_terminal: tuple[Path, Result],
) -> None:
    db, result = on_a_terminal
    *_, grades_line, docs_line = result.stdout.rstrip().splitlines()
    with duckdb.connect(str(db), read_only=True) as con:
        grades = dict(
            con.execute("SELECT grade, count(*) FROM quality_scores GROUP BY grade").fetchall()
        )
    expected = ", ".join(f"{grades.get(g, 0):,} {g}" for g in "ABCDF")
    assert grades_line == f"quality grades: {expected} ({sum(grades.values()):,} filings scored)"
    assert sum(grades.values()) > 0
    index = db.parent / "quality" / "data_docs" / "index.html"
    assert docs_line == f"Data Docs: {index}"
    page = index.read_text()  # FinLoom's own pages: readable offline, the results inside
    assert "<script" not in page and "https://" not in page and "http://" not in page
    assert all(f">{table}</a>" in page for table in ("facts", "filings", "financials"))


def test_many_companies_print_only_failed_deferred_and_noted_lines() -> None:
    from finloom_cli.backfill import MAX_NOTED_LINES, company_lines

    def row(cik: int, **fields: Any) -> dict[str, Any]:
        return {"cik": cik, "name": f"Co {cik}", "stage": None, "reason": None, "note": "",
                "facts": 1, "filings": 1, **fields}  # fmt: skip

    summary = {
        "per_company": [],  # more companies than the summary lists one by one
        "failed": [row(1, stage="download", reason="not found", status="failed")],
        "deferred": [row(2, stage="download", reason="circuit open", status="deferred")],
        "noted": [row(10 + i, note=f"page {i} missing", status="loaded") for i in range(60)],
    }
    lines = company_lines(summary)
    assert lines[0] == "failed CIK 0000000001 Co 1: download: not found"
    assert lines[1] == "deferred CIK 0000000002 Co 2: download: circuit open"
    assert lines[2] == "noted CIK 0000000010 Co 10: page 0 missing"
    assert len(lines) == 2 + MAX_NOTED_LINES + 1
    assert lines[-1].startswith(f"... and {60 - MAX_NOTED_LINES} more noted companies")


# ------------------------------------------------------------------ finloom financials


@pytest.fixture(scope="module")
def apple_db(shared_edgar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Apple backfilled from the folder in-process (run_pipeline: no Prefect start-up)."""
    from finloom_core.edgar.sources import FolderSource
    from finloom_core.pipeline import run_pipeline

    db = tmp_path_factory.mktemp("financials") / "apple.duckdb"
    run_pipeline(FolderSource(shared_edgar), [APPLE], db)
    return db


def financials_cli(db: Path, *args: str) -> Result:
    return finloom(db.parent / "cli", "financials", *args, "--db", str(db))


def test_financials_table(apple_db: Path) -> None:
    result = financials_cli(apple_db, "AAPL", "--metrics", "revenue,net_income", "--years",
                            "2019-2024", "--format", "wide")  # fmt: skip
    assert result.code == 0, result
    assert STARTING not in result.output
    lines = [line for line in result.stdout.splitlines() if "│ FY" in line]
    rows = {(c[0], c[2]): c for c in ([x.strip() for x in ln.strip("│ ").split("│")]
                                      for ln in lines)}  # fmt: skip
    assert len(rows) == 12  # 6 years x 2 metrics
    assert rows["2023", "revenue"][3:5] == ["383,285,000,000", "USD"]
    assert rows["2023", "net_income"][3] == "96,995,000,000"


def test_financials_csv_json_and_first_reported(apple_db: Path) -> None:
    import csv
    import io
    import json

    as_csv = financials_cli(apple_db, "320193", "--metrics", "revenue", "--years", "2023",
                            "--format", "csv")  # fmt: skip
    assert as_csv.code == 0, as_csv
    (row,) = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert (row["fiscal_year"], row["fiscal_period"], row["metric"]) == ("2023", "FY", "revenue")
    assert float(row["value"]) == 383_285_000_000 and row["unit"] == "USD"

    as_json = financials_cli(apple_db, "AAPL", "--metrics", "revenue", "--years", "2023",
                             "--format", "json", "--as-first-reported")  # fmt: skip
    assert as_json.code == 0, as_json
    (first,) = json.loads(as_json.stdout)
    assert first["value"] == 383_285_000_000
    # as first reported: by the FY2023 10-K itself, not a later 10-K repeating it
    assert first["accession"] == "0000320193-23-000106" and first["filed"] == "2023-11-03"

    quarters = financials_cli(apple_db, "AAPL", "--period", "Q", "--metrics", "revenue",
                              "--years", "2023", "--format", "json")  # fmt: skip
    assert [r["fiscal_period"] for r in json.loads(quarters.stdout)] == ["Q1", "Q2", "Q3", "Q4"]


def compact_rows(text: str) -> dict[tuple[str, str], list[str]]:
    """The default table's rows by (fiscal, metric); cells are 3+ spaces apart."""
    rows = {}
    for line in text.splitlines():
        cells = re.split(r"\s{3,}", line.strip())
        if re.fullmatch(r"\d{4} (FY|Q[1-4]|T)", cells[0]) and len(cells) > 3:
            rows[cells[0], cells[1]] = cells
    return rows


def test_financials_default_table_fits_80_columns_when_piped(apple_db: Path) -> None:
    result = finloom(
        apple_db.parent / "cli", "financials", "AAPL", "--metrics", "revenue,net_income",
        "--years", "2019-2024", "--db", str(apple_db), env={"COLUMNS": "80"},
    )  # fmt: skip
    assert result.code == 0, result
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, lines
    assert "accession" not in result.stdout and "0000320193-" not in result.stdout
    (header,) = [line for line in lines if "metric" in line]
    assert "value ($M)" in header  # one unit: said once, in the header
    rows = compact_rows(result.stdout)
    assert len(rows) == 12  # 6 years x 2 metrics
    revenue = rows["2023 FY", "revenue"]
    assert int(revenue[2].replace(",", "")) * 1_000_000 == 383_285_000_000
    assert int(rows["2023 FY", "net_income"][2].replace(",", "")) * 1_000_000 == 96_995_000_000
    assert revenue[3:6] == ["2023-09-30", "reported", "2025-10-31"]  # period end, method, filed


def test_financials_mixed_units_and_long_metric_names_fit_80_columns(apple_db: Path) -> None:
    metrics = "revenue,eps_diluted,weighted_shares_diluted,selling_general_administrative"
    result = finloom(
        apple_db.parent / "cli", "financials", "AAPL", "--metrics", metrics, "--years", "2023",
        "--db", str(apple_db), env={"COLUMNS": "80"},
    )  # fmt: skip
    assert result.code == 0, result
    assert max(len(line) for line in result.stdout.splitlines()) <= 80, result.stdout
    rows = compact_rows(result.stdout)
    assert rows["2023 FY", "revenue"][2:4] == ["383,285", "$M"]
    assert rows["2023 FY", "eps_diluted"][2:4] == ["6.13", "$/share"]
    assert rows["2023 FY", "weighted_shares_diluted"][2:4] == ["15,812.5", "M shares"]
    assert rows["2023 FY", "selling_general_administrative"][2:4] == ["24,932", "$M"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("AAPL", "--metrics", "revenue,revenu"), "revenu"),
        (("ZZZQX",), "ZZZQX"),
        (("999999999",), "0999999999"),
        (("AAPL", "--years", "2019-20x4"), "--years"),
        (("AAPL", "--period", "H1"), "--period"),
    ],
)
def test_financials_bad_input_exits_2(apple_db: Path, args: tuple[str, ...], needle: str) -> None:
    assert_usage_error(financials_cli(apple_db, *args), needle)


def test_financials_of_a_company_left_behind_its_facts_is_one_line(
    shared_edgar: Path, tmp_path: Path
) -> None:
    """A run cut off between load and normalize: the company has facts and no financials
    (or financials older than its facts); the command says so instead of printing an
    empty (or stale) table."""
    from finloom_core.edgar.sources import FolderSource
    from finloom_core.pipeline import run_pipeline

    db = tmp_path / "w.duckdb"
    run_pipeline(FolderSource(shared_edgar), [APPLE], db, normalize=False)  # load, no normalize
    for company in ("AAPL", "320193"):
        line = assert_usage_error(
            financials_cli(db, company, "--metrics", "revenue"),
            "no financials for CIK 0000320193 yet", "run finloom backfill",
        )  # fmt: skip
        assert "Traceback" not in line

    run_pipeline(FolderSource(shared_edgar), [APPLE], db)  # rebuilds them
    assert financials_cli(db, "AAPL", "--metrics", "revenue").code == 0
    with duckdb.connect(str(db)) as con:  # new facts loaded, their normalize never ran
        con.execute("UPDATE company_loads SET needs_normalize = true")
    assert_usage_error(
        financials_cli(db, "AAPL", "--metrics", "revenue"),
        "financials of CIK 0000320193 are older than its facts", "run finloom backfill",
    )  # fmt: skip


def test_financials_coverage_prints_the_table(apple_db: Path) -> None:
    result = financials_cli(apple_db, "--coverage")
    assert result.code == 0, result
    (apple,) = [line for line in result.stdout.splitlines() if "0000320193" in line]
    cells = [c.strip() for c in apple.strip("│ ").split("│")]
    assert cells[2:6] == ["AAPL", "18", "18", "18"]  # 17 10-Ks and a 10-K/A, all complete
    assert "filings with all 7 core metrics: 18 of 18 assessable (100.0%)" in result.stdout
