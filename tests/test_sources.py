"""FolderSource, ZipSource and open_source over the real shared EDGAR folder."""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
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
from finloom_core.errors import FinloomError, NotFoundError, ResponseParseError, SourceError
from finloom_core.parse.companyfacts import parse_companyfacts
from finloom_core.pipeline import download_batch, parse_batch, parse_documents
from finloom_core.records import CompanyDocuments, CompanyOutcome, Status
from finloom_core.staging import FactsDocument

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
