"""A real S3 API on 127.0.0.1 for the lake and backup tests: moto's server, in a thread,
on a free port; the AWS_* settings FinLoom reads point at it (fake credentials)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from moto.server import ThreadedMotoServer

REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def client(self):  # type: ignore[no-untyped-def]
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def new_bucket(self) -> str:
        name = f"finloom-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The server, with this process's AWS settings pointing at it (as a user sets them)."""
    for name, value in aws_env(s3_server).items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    return s3_server


def aws_env(server: S3Server) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": server.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }


# ------------------------------------------------------------------ a warehouse to ship

APPLE, TSM, CELADON = 320193, 1046179, 865941


def build_warehouse(shared_edgar, db) -> None:  # type: ignore[no-untyped-def]
    """Three real companies (facts, filings, financials, history), plus a row in every
    other table (JSON and list-of-struct columns included) and a fact without a fiscal
    year, so a lake or a backup is checked on every column type the warehouse has."""
    from finloom_core.edgar.sources import FolderSource
    from finloom_core.pipeline import run_pipeline
    from finloom_core.storage.database import open_warehouse

    run_pipeline(FolderSource(shared_edgar), [APPLE, TSM, CELADON], db)
    with open_warehouse(db) as con:
        con.execute(
            "INSERT INTO facts (cik, taxonomy, concept, unit, period_end, value, accession,"
            " fiscal_year) VALUES (?, 'dei', 'Synthetic', 'USD', DATE '2001-12-31', 1.5,"
            " '0000320193-01-000001', NULL)",
            [APPLE],
        )
        con.execute("INSERT INTO nightly_watermark VALUES (1, DATE '2026-11-27', now())")
        con.execute(
            "INSERT INTO nightly_pending VALUES (?, 'Apple', DATE '2026-11-20', 'failed',"
            " 'it''s a test', 2, now())",
            [APPLE],
        )
        con.execute(
            "INSERT INTO http_validators VALUES ('https://data.sec.gov/x', ?, '\"e1\"',"
            " 'Wed, 01 Jan 2025 00:00:00 GMT', now())",
            [APPLE],
        )
        con.execute(
            "INSERT INTO reconciliation_results VALUES ('run-1', 'balance', 'critical', true,"
            ' 0, \'{"rows": [1, 2], "note": "ok"}\', now())'
        )
        con.execute(
            "INSERT INTO quality_scores VALUES ('run-1', ?, '0000320193-23-000106', '10-K',"
            " 2023, 'FY', 97.5, 'A', now(),"
            " [{'name': 'coverage', 'score': 1.0, 'weight': 0.3, 'reason': NULL}])",
            [APPLE],
        )
    from finloom_core import audit

    audit.record(db, "backfill", {"ciks": [APPLE]}, counts={"companies_loaded": 1})
