"""FolderSource, ZipSource and open_source over the real shared EDGAR folder."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import threading
import time
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from finloom_core.edgar.sources import (
    ApiSource,
    FolderSource,
    SourceSpec,
    ZipSource,
    open_source,
)
from finloom_core.edgar.urls import EdgarUrls
from finloom_core.errors import (
    DocumentLimitError,
    FinloomError,
    NotFoundError,
    ResponseParseError,
    SourceError,
)
from finloom_core.parse.companyfacts import parse_companyfacts
from finloom_core.pipeline import download_batch, parse_batch, parse_documents
from finloom_core.records import CompanyDocuments, CompanyOutcome, Status
from finloom_core.staging import FactsDocument, new_staging, stage_stream
from tests.factories import (
    Filing,
    accession,
    companyfacts_doc,
    filing_columns,
    submissions_doc,
    to_bytes,
)

ABSENT_CIK = 9_999_999  # in neither companyfacts/ nor submissions/


def cik_of(path: Path) -> int:
    return int(path.name[3:13])


def facts_ciks(root: Path) -> set[int]:
    return {cik_of(p) for p in (root / "companyfacts").glob("CIK??????????.json")}


def submissions_ciks(root: Path) -> set[int]:
    return {cik_of(p) for p in (root / "submissions").glob("CIK??????????.json")}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_staged_copy(doc: FactsDocument | None, original: bytes, staging: Path) -> None:
    """A staged document: a file in the staging folder holding exactly ``original``."""
    assert doc is not None
    assert doc.staged
    assert doc.path.parent == staging
    assert doc.path.is_file()
    assert doc.path.read_bytes() == original
    assert doc.sha256 == sha256(original)


# ---- FolderSource -------------------------------------------------------------------------


def test_folder_available_ciks(shared_edgar: Path) -> None:
    ciks = FolderSource(shared_edgar).available_ciks()
    facts, subs = facts_ciks(shared_edgar), submissions_ciks(shared_edgar)
    assert len(facts) == 17
    assert facts <= set(ciks)
    assert subs - facts  # submissions-only companies exist in the sample ...
    assert set(ciks) == facts | subs  # ... and are listed; pages are not companies
    assert ciks == sorted(set(ciks))
    assert {789019, 350001} <= set(ciks)


def test_folder_fetch_apple_warns_about_the_missing_page(shared_edgar: Path) -> None:
    docs = FolderSource(shared_edgar).fetch(320193)
    assert docs.cik == 320193
    original = shared_edgar / "companyfacts" / "CIK0000320193.json"
    assert docs.companyfacts is not None
    assert docs.companyfacts.path == original  # referenced in place, never copied ...
    assert not docs.companyfacts.staged  # ... nor ever deleted
    assert docs.companyfacts.sha256 == sha256(original.read_bytes())
    docs.companyfacts.discard()
    assert original.is_file()
    assert len(docs.submissions) == 1  # the page is listed but not in the folder
    assert json.loads(docs.submissions[0])["cik"] == "0000320193"
    assert any("CIK0000320193-submissions-001.json" in w for w in docs.warnings)


def test_folder_fetch_tesla_includes_its_page(shared_edgar: Path) -> None:
    docs = FolderSource(shared_edgar).fetch(1318605)
    assert len(docs.submissions) == 2
    page = json.loads(docs.submissions[1])
    expected = json.loads(
        (shared_edgar / "submissions/CIK0001318605-submissions-001.json").read_bytes()
    )
    assert page == expected
    assert docs.warnings == ()
    parsed = parse_documents(docs)
    assert parsed.facts is not None
    assert parsed.facts == docs.companyfacts
    assert parsed.facts_sha256 == sha256(
        (shared_edgar / "companyfacts/CIK0001318605.json").read_bytes()
    )
    assert parse_companyfacts(parsed.facts.path, 1318605).num_rows == 17_718  # MANIFEST
    assert parsed.company.cik == 1318605 and parsed.company.name == "Tesla, Inc."
    assert parsed.has_submissions


def test_folder_fetch_submissions_only_company(shared_edgar: Path) -> None:
    docs = FolderSource(shared_edgar).fetch(789019)
    assert docs.companyfacts is None
    assert len(docs.submissions) == 1


def test_folder_fetch_absent_cik(shared_edgar: Path) -> None:
    docs = FolderSource(shared_edgar).fetch(ABSENT_CIK)
    assert docs.companyfacts is None
    assert docs.submissions == ()
    [outcome] = download_batch(FolderSource(shared_edgar), [ABSENT_CIK])
    assert outcome.status is Status.FAILED
    assert "0009999999" in (outcome.reason or "")


def test_folder_ticker_map(shared_edgar: Path, tmp_path: Path) -> None:
    assert FolderSource(shared_edgar).ticker_map().resolve(["AAPL"]) == [320193]
    with pytest.raises(SourceError):
        FolderSource(tmp_path).ticker_map()


# ---- ZipSource ----------------------------------------------------------------------------


@pytest.fixture
def bulk_dir(shared_edgar: Path, tmp_path: Path) -> Path:
    """companyfacts.zip (one member inside a folder) and submissions.zip, built in tmp_path."""
    facts, subs = shared_edgar / "companyfacts", shared_edgar / "submissions"
    with zipfile.ZipFile(tmp_path / "companyfacts.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(facts / "CIK0001318605.json", "CIK0001318605.json")
        archive.write(facts / "CIK0001997711.json", "nested/CIK0001997711.json")
    with zipfile.ZipFile(tmp_path / "submissions.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ("CIK0001318605.json", "CIK0001318605-submissions-001.json",
                     "CIK0000350001.json"):  # fmt: skip
            archive.write(subs / name, name)
    return tmp_path


@pytest.fixture
def staging(tmp_path: Path) -> Path:
    return tmp_path / "staging"  # created by the source when it stages a document


def test_zip_available_ciks_and_fetch(bulk_dir: Path, shared_edgar: Path, staging: Path) -> None:
    source = ZipSource(bulk_dir / "companyfacts.zip", staging)
    try:
        assert source.available_ciks() == [350001, 1318605, 1997711]
        tesla = source.fetch(1318605)
        tesla_bytes = (shared_edgar / "companyfacts/CIK0001318605.json").read_bytes()
        assert_staged_copy(tesla.companyfacts, tesla_bytes, staging)
        assert len(tesla.submissions) == 2 and tesla.warnings == ()
        lpa = source.fetch(1997711)  # member stored under a folder in the archive
        lpa_bytes = (shared_edgar / "companyfacts/CIK0001997711.json").read_bytes()
        assert_staged_copy(lpa.companyfacts, lpa_bytes, staging)
        assert lpa.submissions == ()
        assert source.fetch(350001).companyfacts is None
        absent = source.fetch(ABSENT_CIK)
        assert absent.companyfacts is None and absent.submissions == ()
        assert sorted(p.name for p in staging.iterdir()) == [
            "CIK0001318605.json",
            "CIK0001997711.json",
        ]
        tesla.companyfacts.discard()  # type: ignore[union-attr]
        assert not tesla.companyfacts.path.exists()  # type: ignore[union-attr]
        parsed = parse_documents(lpa)
        assert parsed.facts == lpa.companyfacts
        assert parse_companyfacts(parsed.facts.path, 1997711).num_rows == 768  # MANIFEST
    finally:
        source.close()


def test_zip_without_submissions_zip(
    companyfacts_zip: Path, shared_edgar: Path, staging: Path
) -> None:
    source = ZipSource(companyfacts_zip, staging)
    try:
        assert set(source.available_ciks()) == facts_ciks(shared_edgar)
        docs = source.fetch(320193)
        original = (shared_edgar / "companyfacts/CIK0000320193.json").read_bytes()
        assert_staged_copy(docs.companyfacts, original, staging)
        assert docs.submissions == ()
    finally:
        source.close()


def test_zip_ticker_map_absent_is_a_source_error(bulk_dir: Path, staging: Path) -> None:
    source = ZipSource(bulk_dir / "companyfacts.zip", staging)
    with pytest.raises(SourceError):
        source.ticker_map()
    source.close()


def test_a_file_that_is_not_a_zip(tmp_path: Path, staging: Path) -> None:
    path = tmp_path / "companyfacts.zip"
    path.write_bytes(b"<html>not found</html>" * 50)
    with pytest.raises(SourceError) as info:
        ZipSource(path, staging)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)
    assert info.value.path == str(path)


def _corrupt_member(archive_path: Path, member: str, *, at: str) -> None:
    """Flip bytes of one member's compressed data, headers left intact.

    ``at="start"`` sets the first deflate block header to the reserved block type 3, which
    zlib rejects (zlib.error); ``at="middle"`` garbles data mid-stream (a zlib error or a
    CRC mismatch, depending on where the garbage lands).
    """
    with zipfile.ZipFile(archive_path) as archive:
        info = archive.getinfo(member)
    assert info.compress_type == zipfile.ZIP_DEFLATED
    data = bytearray(archive_path.read_bytes())
    offset = info.header_offset
    name_len, extra_len = struct.unpack("<HH", data[offset + 26 : offset + 30])
    start = offset + 30 + name_len + extra_len
    first = start if at == "start" else start + info.compress_size // 2
    for i in range(first, first + 64):
        data[i] ^= 0xFF
    if at == "start":
        data[start] = 0xFF  # BFINAL=1, BTYPE=11 (reserved)
    archive_path.write_bytes(bytes(data))


@pytest.mark.parametrize("at", ["start", "middle"])
def test_a_corrupted_member_is_a_finloom_error(
    bulk_dir: Path, shared_edgar: Path, at: str, staging: Path
) -> None:
    archive_path = bulk_dir / "companyfacts.zip"
    _corrupt_member(archive_path, "CIK0001318605.json", at=at)
    source = ZipSource(archive_path, staging)
    try:
        with pytest.raises(FinloomError) as info:
            source.fetch(1318605)
        assert "CIK0001318605.json" in str(info.value)
        assert "\n" not in str(info.value)
        # the damaged member fails that company only; the run goes on with the next one
        outcomes = download_batch(source, [1318605, 1997711])
        assert outcomes[0].status is Status.FAILED
        assert outcomes[0].stage == "download"
        assert isinstance(outcomes[1], CompanyDocuments)
        lpa = (shared_edgar / "companyfacts/CIK0001997711.json").read_bytes()
        assert_staged_copy(outcomes[1].companyfacts, lpa, staging)

    finally:
        source.close()


@pytest.mark.parametrize(
    ("archive", "member", "cik"),
    [
        ("companyfacts.zip", "nested/CIK0001997711.json", 1997711),  # streamed to staging
        ("submissions.zip", "CIK0001318605.json", 1318605),  # read into memory
        ("submissions.zip", "CIK0001318605-submissions-001.json", 1318605),  # a page
    ],
)
def test_a_damaged_member_is_a_parse_error_naming_its_source_and_cik(
    bulk_dir: Path, staging: Path, archive: str, member: str, cik: int
) -> None:
    archive_path = bulk_dir / archive
    _corrupt_member(archive_path, member, at="start")
    source = ZipSource(bulk_dir / "companyfacts.zip", staging)
    try:
        with pytest.raises(ResponseParseError) as info:
            source.fetch(cik)
    finally:
        source.close()
    error = info.value
    assert error.source == f"{archive_path}:{member}"
    assert error.cik == cik
    assert error.url is None  # an archive member, not an HTTP URL
    assert f"{cik:010d}" in str(error)
    assert "damaged archive member" in str(error)
    assert "\n" not in str(error)


# ---- a bad local file ----------------------------------------------------------------------

HTML_PAGE = b"<!DOCTYPE html>\n<html><body>Request Rate Threshold Exceeded</body></html>\n"


def _folder_with(tmp_path: Path, kind: str, cik: int, body: bytes) -> Path:
    path = tmp_path / "edgar" / kind / f"CIK{cik:010d}.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(body)
    return path


def test_a_bad_local_companyfacts_file_names_its_path_and_cik(tmp_path: Path) -> None:
    path = _folder_with(tmp_path, "companyfacts", 320193, HTML_PAGE)
    docs = FolderSource(tmp_path / "edgar").fetch(320193)
    with pytest.raises(ResponseParseError) as info:
        parse_documents(docs)
    error = info.value
    assert (error.source, error.cik, error.url) == (str(path), 320193, None)
    assert str(path) in str(error) and "\n" not in str(error)
    # the company fails at parse, its reason naming the file
    [outcome] = parse_batch([docs])
    assert isinstance(outcome, CompanyOutcome)
    assert (outcome.status, outcome.stage) == (Status.FAILED, "parse")
    assert str(path) in (outcome.reason or "")


@pytest.mark.parametrize("body", [b'{"cik": "1", "filings"', b"[]", HTML_PAGE])
def test_a_bad_local_submissions_file_names_its_path_and_cik(tmp_path: Path, body: bytes) -> None:
    path = _folder_with(tmp_path, "submissions", 789019, body)
    with pytest.raises(ResponseParseError) as info:
        FolderSource(tmp_path / "edgar").fetch(789019)
    error = info.value
    assert (error.source, error.cik, error.url) == (str(path), 789019, None)
    assert "0000789019" in str(error) and "\n" not in str(error)


def test_a_local_submissions_file_that_is_not_submissions(tmp_path: Path) -> None:
    """Valid JSON, refused by the parser: its source and CIK come from the folder."""
    path = _folder_with(tmp_path, "submissions", 789019, b'{"cik": "789019", "filings": {}}')
    docs = FolderSource(tmp_path / "edgar").fetch(789019)
    assert docs.submissions_origin == str(path)
    with pytest.raises(ResponseParseError) as info:
        parse_documents(docs)
    assert (info.value.source, info.value.cik) == (str(path), 789019)
    assert "0000789019" in str(info.value) and "not a submissions document" in str(info.value)


# ---- ApiSource ----------------------------------------------------------------------------


class FakeClient:
    """The EdgarClient calls ApiSource makes, served from the shared folder (no network)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.closed = False
        self.urls = EdgarUrls()

    def companyfacts(self, cik: int) -> bytes | None:  # None on 404, as EdgarClient
        path = self.root / "companyfacts" / f"CIK{cik:010d}.json"
        return path.read_bytes() if path.is_file() else None

    def submissions(self, cik: int) -> bytes:
        return self.submissions_page(f"CIK{cik:010d}.json")

    def submissions_page(self, name: str) -> bytes:
        path = self.root / "submissions" / name
        if not path.is_file():
            raise NotFoundError(f"404 Not Found: {name}", url=name, status=404)
        return path.read_bytes()

    def close(self) -> None:
        self.closed = True


def test_api_fetch_stages_the_downloaded_document(shared_edgar: Path, staging: Path) -> None:
    source = ApiSource(FakeClient(shared_edgar), staging)
    tesla = source.fetch(1318605)
    original = (shared_edgar / "companyfacts/CIK0001318605.json").read_bytes()
    assert_staged_copy(tesla.companyfacts, original, staging)
    assert tesla.companyfacts.path.name == "CIK0001318605.json"  # type: ignore[union-attr]
    assert len(tesla.submissions) == 2 and tesla.warnings == ()
    assert tesla.origin == "sec-api"
    assert tesla.facts_origin == EdgarUrls().companyfacts(1318605)
    assert tesla.submissions_origin == EdgarUrls().submissions(1318605)
    parsed = parse_documents(tesla)
    assert parsed.facts_sha256 == sha256(original)

    microsoft = source.fetch(789019)  # no companyfacts (404): nothing staged
    assert microsoft.companyfacts is None and len(microsoft.submissions) == 1
    absent = source.fetch(ABSENT_CIK)
    assert absent.companyfacts is None and absent.submissions == ()
    assert [p.name for p in staging.iterdir()] == ["CIK0001318605.json"]
    source.close()


def test_an_api_document_refused_at_parse_names_its_url_and_cik(
    shared_edgar: Path, staging: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = FakeClient(shared_edgar)
    truncated = (shared_edgar / "companyfacts/CIK0001318605.json").read_bytes()[:4096]
    monkeypatch.setattr(client, "companyfacts", lambda cik: truncated)
    docs = ApiSource(client, staging).fetch(1318605)
    with pytest.raises(ResponseParseError) as info:
        parse_documents(docs)
    url = EdgarUrls().companyfacts(1318605)
    assert (info.value.source, info.value.url, info.value.cik) == (url, url, 1318605)
    assert url in str(info.value) and "truncated" in str(info.value)


def test_open_source_api_stages_into_the_given_folder(shared_edgar: Path, staging: Path) -> None:
    client = FakeClient(shared_edgar)
    source = open_source(SourceSpec(None), client_factory=lambda: client, staging=staging)
    assert isinstance(source, ApiSource)
    docs = source.fetch(320193)
    original = (shared_edgar / "companyfacts/CIK0000320193.json").read_bytes()
    assert_staged_copy(docs.companyfacts, original, staging)
    source.close()
    assert client.closed


# ---- open_source --------------------------------------------------------------------------


def test_open_source_folder(shared_edgar: Path, staging: Path) -> None:
    source = open_source(SourceSpec(str(shared_edgar)), staging=staging)
    assert isinstance(source, FolderSource)
    docs = source.fetch(320193)  # a folder's documents are read in place, not staged
    assert docs.companyfacts is not None and not docs.companyfacts.staged
    assert docs.companyfacts.path == shared_edgar / "companyfacts" / "CIK0000320193.json"
    assert not staging.exists()


def test_open_source_zip_file_and_folder_holding_one(
    bulk_dir: Path, shared_edgar: Path, staging: Path
) -> None:
    by_file = open_source(SourceSpec(str(bulk_dir / "companyfacts.zip")), staging=staging)
    by_folder = open_source(SourceSpec(str(bulk_dir)), staging=staging)
    try:
        assert isinstance(by_file, ZipSource) and isinstance(by_folder, ZipSource)
        assert by_folder.available_ciks() == by_file.available_ciks()
        original = (shared_edgar / "companyfacts/CIK0001997711.json").read_bytes()
        assert_staged_copy(by_folder.fetch(1997711).companyfacts, original, staging)
    finally:
        by_file.close()
        by_folder.close()


def test_open_source_missing_path(tmp_path: Path, staging: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(SourceError) as info:
        open_source(SourceSpec(str(missing)), staging=staging)
    assert str(missing) in str(info.value)
    assert "\n" not in str(info.value)


def test_open_source_unusable_paths(tmp_path: Path, staging: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SourceError):
        open_source(SourceSpec(str(tmp_path / "notes.txt")), staging=staging)
    with pytest.raises(SourceError):
        open_source(SourceSpec(str(tmp_path)), staging=staging)  # neither layout
    with pytest.raises(SourceError):
        open_source(SourceSpec(None), staging=staging)  # the live API needs a client factory


def test_one_zip_of_a_whole_edgar_folder(shared_edgar: Path, tmp_path: Path, staging: Path) -> None:
    """companyfacts/ and submissions/ inside one archive: each member serves its own role."""
    archive_path = tmp_path / "edgar.zip"
    tesla = "CIK0001318605.json"
    with zipfile.ZipFile(archive_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder, name in [
            ("companyfacts", tesla),
            ("submissions", tesla),
            ("submissions", "CIK0001318605-submissions-001.json"),
        ]:
            archive.write(shared_edgar / folder / name, f"edgar/{folder}/{name}")
    source = ZipSource(archive_path, staging)
    try:
        docs = source.fetch(1318605)
        facts_bytes = (shared_edgar / "companyfacts" / tesla).read_bytes()
        assert_staged_copy(docs.companyfacts, facts_bytes, staging)
        assert docs.submissions[0] == (shared_edgar / "submissions" / tesla).read_bytes()
        assert len(docs.submissions) == 2 and docs.warnings == ()
    finally:
        source.close()


# ---- hostile page names ------------------------------------------------------------------

MSFT = 789019
MSFT_PAGE = "CIK0000789019-submissions-001.json"
OUTSIDE_ACCESSION = accession(MSFT, 1999, 1)


def _hostile_folder(tmp_path: Path, pages: list[str]) -> Path:
    """An EDGAR folder holding one submissions document (Microsoft's, synthetic) listing
    ``pages``; beside the folder, a page full of filings that must never be read."""
    root = tmp_path / "edgar"
    (root / "submissions").mkdir(parents=True)
    main = submissions_doc(MSFT, [Filing(accession(MSFT, 2024, 1))], pages=pages)
    (root / "submissions" / f"CIK{MSFT:010d}.json").write_bytes(to_bytes(main))
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / MSFT_PAGE).write_bytes(
        to_bytes(filing_columns([Filing(OUTSIDE_ACCESSION)]))
    )
    return root


@pytest.mark.parametrize(
    "name",
    [
        f"../../secret/{MSFT_PAGE}",  # a relative path out of the folder
        "{secret}/" + MSFT_PAGE,  # an absolute path
        "/dev/zero",  # a device: would grow memory without end
        "{fifo}",  # a FIFO: would hang the run
        "CIK0000320193-submissions-001.json",  # another company's page
        "CIK0000789019.json",  # not a page
        "CIK0000789019-submissions-001.json\nforged line",
    ],
)
def test_a_page_name_that_is_not_a_page_of_the_company_is_noted_never_read(
    tmp_path: Path, name: str
) -> None:
    root = _hostile_folder(tmp_path, [])
    fifo = tmp_path / "secret" / "pipe"
    os.mkfifo(fifo)
    name = name.format(secret=tmp_path / "secret", fifo=fifo)
    main = submissions_doc(MSFT, [Filing(accession(MSFT, 2024, 1))], pages=[name])
    (root / "submissions" / f"CIK{MSFT:010d}.json").write_bytes(to_bytes(main))
    if name.startswith("CIK0000320193"):  # the other company's page exists in the folder
        (root / "submissions" / name).write_bytes((tmp_path / "secret" / MSFT_PAGE).read_bytes())
    with _writer_into(fifo):  # a page written into the FIFO, should anything read it
        docs = FolderSource(root).fetch(MSFT)
    assert len(docs.submissions) == 1  # the main document alone
    [warning] = docs.warnings
    assert "refused" in warning and "older filings incomplete" in warning
    assert repr(name)[:30] in warning and "\n" not in warning
    parsed = parse_documents(docs)
    assert parsed.filings.column("accession").to_pylist() == [accession(MSFT, 2024, 1)]


@contextmanager
def _writer_into(fifo: Path) -> Iterator[None]:
    """While the block runs, write a page into ``fifo`` as soon as anything opens it."""
    done = threading.Event()

    def write() -> None:
        while not done.is_set():
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no reader yet
                time.sleep(0.01)
                continue
            with os.fdopen(fd, "wb") as out:
                out.write(to_bytes(filing_columns([Filing(OUTSIDE_ACCESSION)])))
            return

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)


def test_a_well_named_page_that_is_not_a_regular_file_fails_the_company(tmp_path: Path) -> None:
    root = _hostile_folder(tmp_path, [MSFT_PAGE])
    page = root / "submissions" / MSFT_PAGE
    os.mkfifo(page)
    with _writer_into(page), pytest.raises(ResponseParseError) as info:
        FolderSource(root).fetch(MSFT)
    assert str(page) in str(info.value) and "not a regular file" in str(info.value)
    assert (info.value.source, info.value.cik) == (str(page), MSFT)
    main = root / "submissions" / f"CIK{MSFT:010d}.json"
    main.unlink()
    main.symlink_to("/dev/zero")  # a device behind the company's own document name
    [outcome] = download_batch(FolderSource(root, max_bytes=1 << 20), [MSFT])
    assert isinstance(outcome, CompanyOutcome) and outcome.status is Status.FAILED
    assert f"{main}: not a regular file" in (outcome.reason or "")
    assert "\n" not in (outcome.reason or "")


def test_a_well_named_page_resolving_outside_the_folder_is_not_read(tmp_path: Path) -> None:
    root = _hostile_folder(tmp_path, [MSFT_PAGE])
    page = root / "submissions" / MSFT_PAGE
    page.symlink_to(tmp_path / "secret" / MSFT_PAGE)
    with pytest.raises(ResponseParseError) as info:
        FolderSource(root).fetch(MSFT)
    assert "resolves outside" in str(info.value) and str(page) in str(info.value)


@pytest.mark.parametrize("kind", ["submissions", "companyfacts", "page"])
def test_a_local_document_over_the_cap_is_refused_by_its_size(tmp_path: Path, kind: str) -> None:
    root = _hostile_folder(tmp_path, [MSFT_PAGE])
    big = b" " * 5000
    if kind == "page":
        path = root / "submissions" / MSFT_PAGE
        path.write_bytes(to_bytes(filing_columns([Filing(OUTSIDE_ACCESSION)])) + big)
    elif kind == "companyfacts":
        path = _folder_with(tmp_path, "companyfacts", MSFT, to_bytes(companyfacts_doc(MSFT)) + big)
    else:
        path = root / "submissions" / f"CIK{MSFT:010d}.json"
        path.write_bytes(path.read_bytes() + big)
    with pytest.raises(DocumentLimitError) as info:
        FolderSource(root, max_bytes=4096).fetch(MSFT)
    assert str(path) in str(info.value) and "4,096-byte document cap" in str(info.value)
    assert info.value.cik == MSFT and "\n" not in str(info.value)


def test_an_api_page_name_never_reaches_a_url(shared_edgar: Path, staging: Path) -> None:
    client = FakeClient(shared_edgar)
    asked: list[str] = []
    main = submissions_doc(MSFT, [Filing(accession(MSFT, 2024, 1))],
                           pages=["../../files/company_tickers.json", MSFT_PAGE])  # fmt: skip
    page = to_bytes(filing_columns([Filing(accession(MSFT, 2001, 1))]))
    client.submissions = lambda cik: to_bytes(main)  # type: ignore[method-assign]
    client.submissions_page = lambda name: asked.append(name) or page  # type: ignore[method-assign]
    docs = ApiSource(client, staging).fetch(MSFT)
    assert asked == [MSFT_PAGE]  # the other name never became a URL
    assert len(docs.submissions) == 2
    assert any("'../../files/company_tickers.json'" in w for w in docs.warnings)


# ---- oversized archive members ------------------------------------------------------------

ZEROS = 2 << 20  # a member of 2 MiB of zeros: a few KB deflated


def _zip_with(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _companyfacts_of_size(cik: int, size: int) -> bytes:
    doc = to_bytes(companyfacts_doc(cik))
    return doc[:-1] + b" " * (size - len(doc)) + b"}"


def test_a_member_declaring_more_than_the_cap_is_refused_before_extraction(
    tmp_path: Path, staging: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = _zip_with(tmp_path / "companyfacts.zip",
                        {"CIK0000789019.json": _companyfacts_of_size(MSFT, ZEROS)})  # fmt: skip
    opened: list[str] = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(
        zipfile.ZipFile, "open", lambda self, name, *a, **k: opened.append(str(name))
        or real_open(self, name, *a, **k),
    )  # fmt: skip
    source = ZipSource(archive, staging, max_bytes=1 << 20)
    try:
        with pytest.raises(DocumentLimitError) as info:
            source.fetch(MSFT)
        [outcome] = download_batch(source, [MSFT])
    finally:
        source.close()
    assert opened == []  # refused by its declared size: never opened, nothing staged
    assert not staging.exists() or list(staging.iterdir()) == []
    assert f"{archive}:CIK0000789019.json" in str(info.value)
    assert "2,097,152 bytes" in str(info.value) and "1,048,576-byte document cap" in str(info.value)
    assert isinstance(outcome, CompanyOutcome) and outcome.status is Status.FAILED


@pytest.mark.parametrize("member", ["CIK0000789019.json", "CIK0000789019-submissions-001.json"])
def test_a_member_larger_than_it_declares_stops_at_the_cap(
    tmp_path: Path, staging: Path, monkeypatch: pytest.MonkeyPatch, member: str
) -> None:
    """Declared sizes can lie: the copy counts what it extracts, stops at the cap and leaves
    no partial file behind (staging never holds more than the cap plus one chunk)."""
    main = submissions_doc(MSFT, pages=[MSFT_PAGE])
    facts_size, page_size = (ZEROS, 10) if member == "CIK0000789019.json" else (1000, ZEROS)
    facts = _zip_with(tmp_path / "companyfacts.zip",
                      {"CIK0000789019.json": _companyfacts_of_size(MSFT, facts_size)})  # fmt: skip
    _zip_with(tmp_path / "submissions.zip", {
        "CIK0000789019.json": to_bytes(main),
        MSFT_PAGE: b"[" + b" " * page_size + b"]",
    })  # fmt: skip
    archive = facts if member == "CIK0000789019.json" else tmp_path / "submissions.zip"
    monkeypatch.setattr(ZipSource, "_check_declared", lambda self, archive, member, cik: None)
    staged_sizes: list[int] = []
    real_read = zipfile.ZipExtFile.read

    def read(self: zipfile.ZipExtFile, n: int = -1) -> bytes:
        if staging.exists():
            staged_sizes.append(sum(p.stat().st_size for p in staging.iterdir()))
        return real_read(self, n)

    monkeypatch.setattr(zipfile.ZipExtFile, "read", read)
    source = ZipSource(facts, staging, max_bytes=1 << 20)
    try:
        with pytest.raises(DocumentLimitError) as info:
            source.fetch(MSFT)
    finally:
        source.close()
        monkeypatch.undo()
    assert f"{archive}:{member}" in str(info.value)
    assert "more than 1,048,576 bytes" in str(info.value)
    assert list(staging.iterdir()) == [] if staging.exists() else True
    assert max(staged_sizes, default=0) <= 1 << 20


def test_stage_stream_stops_at_the_cap_and_deletes_the_partial_file(tmp_path: Path) -> None:
    stream = io.BytesIO(b"0" * (3 << 20))
    with pytest.raises(DocumentLimitError) as info:
        stage_stream(tmp_path, MSFT, stream, limit=1 << 20, origin="bulk.zip:member")
    assert stream.tell() <= (2 << 20)  # read no further than one chunk past the cap
    assert list(tmp_path.iterdir()) == []
    assert "bulk.zip:member: more than 1,048,576 bytes" in str(info.value)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_new_run_removes_the_staging_folders_of_dead_processes_only(tmp_path: Path) -> None:
    dead = _dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        folders = {
            "dead": tmp_path / f"finloom-staging-{dead}-k2j4",
            "dead_default": tmp_path / f"finloom-staging-{dead}",
            "mine": tmp_path / f"finloom-staging-{os.getpid()}-a1b2",
            "live": tmp_path / f"finloom-staging-{live.pid}-x9y8",
            "unnamed": tmp_path / "finloom-staging-notapid",
            "other": tmp_path / f"other-{dead}",
        }
        for folder in folders.values():
            folder.mkdir()
            (folder / "CIK0000320193.json").write_bytes(b"{}")
        staging = new_staging(tmp_path)
    finally:
        live.kill()
        live.wait()
    assert staging.parent == tmp_path and staging.is_dir()
    assert staging.name.startswith(f"finloom-staging-{os.getpid()}-")
    assert not folders["dead"].exists() and not folders["dead_default"].exists()
    for kept in ("mine", "live", "unnamed", "other"):
        assert (folders[kept] / "CIK0000320193.json").is_file(), kept


# ---- silent substitutions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("archive_name", "members"),
    [
        ("companyfacts.zip", ["a/CIK0000320193.json", "b/CIK0000320193.json"]),
        ("companyfacts.zip", ["CIK0000320193.json", "CIK0000320193.json"]),
        ("submissions.zip", ["x/CIK0001318605-submissions-001.json",
                             "CIK0001318605-submissions-001.json"]),
    ],
)  # fmt: skip
def test_two_members_for_one_document_refuse_the_archive(
    shared_edgar: Path, tmp_path: Path, staging: Path, archive_name: str, members: list[str]
) -> None:
    facts = shared_edgar / "companyfacts"
    sources = [facts / "CIK0000320193.json", facts / "CIK0001318605.json"]
    _zip_with(tmp_path / "companyfacts.zip", {"CIK0001997711.json": b"{}"})
    path = tmp_path / archive_name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for member, source_file in zip(members, sources, strict=True):
                archive.write(source_file, member)
    with pytest.raises(SourceError) as info:
        ZipSource(tmp_path / "companyfacts.zip", staging)
    message = str(info.value)
    assert members[0] in message and members[1] in message and str(path) in message
    assert "\n" not in message
    with pytest.raises(SourceError):
        open_source(SourceSpec(str(tmp_path)), staging=staging)


APPLE_FACTS = "companyfacts/CIK0000320193.json"
TESLA_FACTS = "companyfacts/CIK0001318605.json"


def _assert_refused_as_other_company(error: BaseException, origin: str) -> None:
    message = str(error)
    assert isinstance(error, ResponseParseError)
    assert origin in message and "\n" not in message
    assert "CIK 0001318605" in message and "CIK 0000320193" in message
    assert (error.source, error.cik) == (origin, 320193)


@pytest.mark.parametrize("kind", ["companyfacts", "submissions"])
def test_a_folder_document_of_another_company_fails_its_company(
    shared_edgar: Path, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "edgar" / kind / "CIK0000320193.json"
    path.parent.mkdir(parents=True)
    path.symlink_to(shared_edgar / kind / "CIK0001318605.json")  # Tesla's, under Apple's name
    with pytest.raises(ResponseParseError) as info:
        FolderSource(tmp_path / "edgar").fetch(320193)
    _assert_refused_as_other_company(info.value, str(path))
    [outcome] = download_batch(FolderSource(tmp_path / "edgar"), [320193])
    assert isinstance(outcome, CompanyOutcome)
    assert (outcome.status, outcome.stage) == (Status.FAILED, "download")


@pytest.mark.parametrize("kind", ["companyfacts", "submissions"])
def test_an_archived_document_of_another_company_fails_its_company(
    shared_edgar: Path, tmp_path: Path, staging: Path, kind: str
) -> None:
    archive_path = tmp_path / "edgar.zip"
    with zipfile.ZipFile(archive_path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(shared_edgar / "companyfacts/CIK0001997711.json",
                      "companyfacts/CIK0001997711.json")  # fmt: skip
        archive.write(shared_edgar / kind / "CIK0001318605.json", f"{kind}/CIK0000320193.json")
    source = ZipSource(archive_path, staging)
    try:
        with pytest.raises(ResponseParseError) as info:
            source.fetch(320193)
    finally:
        source.close()
    _assert_refused_as_other_company(info.value, f"{archive_path}:{kind}/CIK0000320193.json")
    assert not staging.exists() or list(staging.iterdir()) == []  # nothing left staged


@pytest.mark.parametrize("kind", ["companyfacts", "submissions"])
def test_an_api_document_of_another_company_fails_its_company(
    shared_edgar: Path, staging: Path, kind: str
) -> None:
    client = FakeClient(shared_edgar)
    tesla = (shared_edgar / kind / "CIK0001318605.json").read_bytes()
    setattr(client, kind, lambda cik: tesla)
    with pytest.raises(ResponseParseError) as info:
        ApiSource(client, staging).fetch(320193)
    url = getattr(EdgarUrls(), kind)(320193)
    _assert_refused_as_other_company(info.value, url)
    assert info.value.url == url
    assert not staging.exists() or list(staging.iterdir()) == []


def test_a_document_stating_its_own_cik_in_any_spelling_is_accepted(
    shared_edgar: Path, tmp_path: Path
) -> None:
    """SEC writes ``cik`` as a number in companyfacts (a padded string for some companies)
    and as a padded string in submissions: all are the company's own."""
    source = FolderSource(shared_edgar)
    for cik in (320193, 1318605):
        docs = source.fetch(cik)
        assert docs.companyfacts is not None and docs.submissions
    assert source.fetch(1997711).companyfacts is not None  # "cik": "0001997711"
    path = _folder_with(tmp_path, "companyfacts", MSFT, to_bytes(companyfacts_doc(MSFT)))
    assert FolderSource(path.parent.parent).fetch(MSFT).companyfacts is not None
