"""What every source checks in a company's documents, whatever it read them from.

- The submissions document must be the company's (the ``cik`` it states), and only its own
  pages (``CIK##########-submissions-NNN.json``) are read: any other name listed in
  ``filings.files`` (a path, ``../``, another company's page) is never used as a path or a
  URL, and is noted like a missing page.
- The companyfacts document must state the company's ``cik`` too (checked on its first
  bytes, where SEC puts it).
"""

from __future__ import annotations

from collections.abc import Callable

from finloom_core.cik import cik10
from finloom_core.parse.json_doc import (
    HEAD_BYTES,
    check_document_cik,
    declared_cik,
    load_json_object,
)
from finloom_core.parse.submissions import is_page_name, submissions_pages
from finloom_core.staging import FactsDocument


def submissions_with_pages(
    main_bytes: bytes | None,
    origin: str,
    read_page: Callable[[str], bytes | None],
    cik: int,
) -> tuple[tuple[bytes, ...], tuple[str, ...]]:
    """The main submissions document followed by every page it lists that can be read.

    The main document must be the company's (its ``cik``); a listed page name that is not
    one of the company's pages (``CIK##########-submissions-NNN.json``) is never read, and
    noted like a missing page.

    Documents stay bytes (decoded again by the parser): nested JSON passed between Prefect
    tasks would be walked element by element by the engine.
    """
    if main_bytes is None:
        return (), ()
    main = load_json_object(main_bytes, origin=origin, cik=cik)
    check_document_cik(main.get("cik"), cik, origin=origin)
    docs, missing, refused = [main_bytes], [], []
    for name in submissions_pages(main):
        if not is_page_name(name, cik):
            refused.append(repr(name[:60] + ("..." if len(name) > 60 else "")))
            continue
        page = read_page(name)
        if page is None:
            missing.append(name)
        else:
            docs.append(page)
    warnings = []
    if missing:
        warnings.append(
            f"{len(missing)} submissions page(s) not found, older filings incomplete: "
            + _some(missing)
        )
    if refused:
        warnings.append(
            f"{len(refused)} submissions page name(s) refused (not this company's "
            f"CIK{cik10(cik)}-submissions-NNN.json), older filings incomplete: " + _some(refused)
        )
    return tuple(docs), tuple(warnings)


def _some(names: list[str]) -> str:
    return ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")


def check_facts_cik(doc: FactsDocument, cik: int, origin: str) -> FactsDocument:
    """The companyfacts document, if it is the company's own (by the ``cik`` it states)."""
    try:
        with doc.path.open("rb") as handle:
            check_document_cik(declared_cik(handle.read(HEAD_BYTES)), cik, origin=origin)
    except BaseException:
        doc.discard()
        raise
    return doc
