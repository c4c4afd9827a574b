"""The exception tree of finloom_core.errors: ResponseParseError's source and CIK, the run
verdicts, and the tree drawn in the module docstring."""

from __future__ import annotations

import pickle
import re

import pytest

from finloom_core import errors, report
from finloom_core.errors import (
    EdgarError,
    FinloomError,
    IncompleteRunError,
    QualityCriticalError,
    ResponseParseError,
)
from finloom_core.quality.results import QualityReport

URL = "https://data.sec.gov/api/xbrl/companyfacts/CIK0000320193.json"


def test_a_url_keyword_is_the_source_too() -> None:
    error = ResponseParseError(f"HTML page instead of JSON from {URL}", url=URL, status=200)
    assert (error.url, error.source, error.status, error.cik) == (URL, URL, 200, None)
    assert isinstance(error, EdgarError) and isinstance(error, ValueError)


def test_an_http_source_is_the_url_and_a_file_is_not() -> None:
    assert ResponseParseError("x", source=URL).url == URL
    local = ResponseParseError("x", source="/data/companyfacts/CIK0000320193.json")
    assert local.url is None
    member = ResponseParseError("x", source="/bulk/companyfacts.zip:CIK0000320193.json")
    assert (member.url, member.source) == (None, "/bulk/companyfacts.zip:CIK0000320193.json")


def test_the_message_names_the_cik_once_and_stays_one_line() -> None:
    named = ResponseParseError("/bulk/a.zip:x.json: body is\nnot valid JSON", cik=320193)
    assert str(named) == "CIK 0000320193: /bulk/a.zip:x.json: body is not valid JSON"
    already = ResponseParseError("/data/CIK0000320193.json: truncated", cik=320193)
    assert str(already) == "/data/CIK0000320193.json: truncated"
    unknown = ResponseParseError("company_tickers.json: not SEC's company_tickers.json")
    assert str(unknown) == "company_tickers.json: not SEC's company_tickers.json"


def test_a_parse_error_keeps_its_fields_through_pickling() -> None:
    error = ResponseParseError("bad body", source=URL, cik=320193, status=200)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is ResponseParseError
    assert (again.source, again.url, again.cik, again.status) == (URL, URL, 320193, 200)
    assert str(again) == str(error)


def test_the_run_verdicts_are_finloom_errors_that_survive_pickling() -> None:
    assert report.IncompleteRunError is IncompleteRunError  # still importable from report
    incomplete = IncompleteRunError("backfill incomplete: 1 failed", {"failed": [{"cik": 1}]})
    published = QualityReport("run-1", (), (), (), critical=("referential_integrity",))
    critical = QualityCriticalError("critical: referential_integrity", published)
    for error in (incomplete, critical):
        assert isinstance(error, FinloomError)
    again = pickle.loads(pickle.dumps(incomplete))
    assert (str(again), again.summary) == (str(incomplete), incomplete.summary)
    again_critical = pickle.loads(pickle.dumps(critical))
    assert (str(again_critical), again_critical.report) == (str(critical), published)


def _drawn_tree() -> dict[str, str]:
    """Each class drawn in errors' docstring -> the class drawn as its parent."""
    doc = errors.__doc__ or ""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in doc.splitlines():
        match = re.match(r"^[│ ]*(?:[├└]── )?(?P<name>[A-Z]\w+Error)\b", line)
        if not match:
            continue
        depth = match.start("name")  # the column a class is drawn at is its depth
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[match["name"]] = stack[-1][1]
        stack.append((depth, match["name"]))
    return parents


def test_the_docstring_draws_every_error_under_its_real_parent() -> None:
    drawn = _drawn_tree()
    defined = {
        name: cls
        for name, cls in vars(errors).items()
        if isinstance(cls, type)
        and issubclass(cls, FinloomError)
        and cls is not FinloomError
        and not name.startswith("_")
    }
    assert set(drawn) == set(defined)
    for name, parent in drawn.items():
        assert issubclass(defined[name], getattr(errors, parent)), name


@pytest.mark.parametrize("name", ["IncompleteRunError", "QualityCriticalError"])
def test_the_verdicts_hang_from_finloom_error(name: str) -> None:
    assert _drawn_tree()[name] == "FinloomError"
