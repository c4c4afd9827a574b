"""The ingest stages as plain functions over batches of companies.

Prefect tasks wrap these one to one; calling them directly runs the same pipeline without
an orchestrator (benchmarks, notebooks). A company's failure becomes a CompanyOutcome and
never stops the rest of its batch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from finloom_core.cik import cik10
from finloom_core.edgar.sources import Source
from finloom_core.errors import (
    CircuitOpenError,
    ConfigurationError,
    FinloomError,
    RateLimitedError,
)
from finloom_core.normalize import normalize as normalize_companies
from finloom_core.normalize.freshness import marked_ciks
from finloom_core.parquet_stage import ParquetCompany, stage_parquet
from finloom_core.parse import parse_company, parse_filings
from finloom_core.parse.companyfacts import sniff_companyfacts
from finloom_core.parse.json_doc import load_json_object
from finloom_core.parse.submissions import FILING_SCHEMA
from finloom_core.records import (
    CompanyDocuments,
    CompanyOutcome,
    CompanyRecord,
    ParsedCompany,
    Status,
)
from finloom_core.redact import redact
from finloom_core.settings import DEFAULT_DOWNLOAD_CONCURRENCY, DEFAULT_MEMORY_LIMIT
from finloom_core.storage.database import open_warehouse
from finloom_core.storage.loader import LoadResult, load_companies

log = logging.getLogger(__name__)

Staged = CompanyDocuments | ParsedCompany | ParquetCompany | CompanyOutcome


def batched(ciks: Sequence[int], size: int) -> list[list[int]]:
    return [list(ciks[i : i + size]) for i in range(0, len(ciks), size)]


Timing = Callable[[int, float], None]
"""Called with (cik, seconds) after each company's download or parse (for metrics)."""


def download_batch(
    source: Source,
    ciks: Iterable[int],
    *,
    on_timing: Timing | None = None,
    concurrency: int = DEFAULT_DOWNLOAD_CONCURRENCY,
) -> list[CompanyDocuments | CompanyOutcome]:
    """Fetch each company's documents; failures and circuit deferrals become outcomes.

    A source that waits on the network (``fetch_concurrently``: the live API) has up to
    ``concurrency`` companies fetched at once by a thread pool; every request still starts
    only when the source's one rate limiter allows it, and once the circuit opens every
    company not yet fetched fails fast in the client (no request) and is deferred. Local
    sources are read one company after another. Results keep the order of ``ciks``;
    ``on_timing`` is called on the calling thread, in that order.
    """
    order = list(ciks)
    workers = min(concurrency, len(order))
    if workers <= 1 or not getattr(source, "fetch_concurrently", False) or _repeats(order):
        fetched = [_fetch_company(source, cik) for cik in order]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="finloom-fetch") as pool:
            futures = [pool.submit(_fetch_company, source, cik) for cik in order]
            try:
                fetched = [future.result() for future in futures]
            except BaseException:  # a configuration error: the queued companies never start
                pool.shutdown(cancel_futures=True)
                raise
    if on_timing is not None:
        for item, seconds in fetched:
            if seconds is not None:
                on_timing(item.cik, seconds)
    return [item for item, _seconds in fetched]


def _repeats(ciks: Sequence[int]) -> bool:
    """A CIK listed twice is fetched in order: both fetches would stage the same file."""
    return len(set(ciks)) != len(ciks)


def _fetch_company(
    source: Source, cik: int
) -> tuple[CompanyDocuments | CompanyOutcome, float | None]:
    """One company's documents (with its download seconds) or its outcome (and None)."""
    started = time.perf_counter()
    try:
        docs = source.fetch(cik)
    except (CircuitOpenError, RateLimitedError) as exc:
        reason = redact(str(exc))
        return CompanyOutcome(cik, Status.DEFERRED, reason=reason, stage="download"), None
    except ConfigurationError:
        raise
    except FinloomError as exc:
        reason = redact(str(exc))  # messages name URLs, which may carry credentials
        log.warning("cik %s: download failed: %s", cik, reason)
        return CompanyOutcome(cik, Status.FAILED, reason=reason, stage="download"), None
    if docs.companyfacts is None and not docs.submissions and not docs.not_modified:
        reason = redact(f"CIK {cik10(cik)} not found in {source.name}")
        return CompanyOutcome(cik, Status.FAILED, reason=reason, stage="download"), None
    return docs, time.perf_counter() - started


def parse_documents(docs: CompanyDocuments) -> ParsedCompany:
    """Parse one company's submissions and check its companyfacts document.

    The facts themselves are parsed by DuckDB's JSON reader when they load (see
    finloom_core.parse.companyfacts); here a document that cannot be companyfacts (an HTML
    page, a truncated body) is refused with a ResponseParseError whose source is where the
    document came from (a URL, a file or ``archive.zip:member``) and whose CIK is the
    company's. A company SEC answered 304 for (``not_modified``) is not parsed: it passes
    on as unchanged, to be confirmed by the loader.
    """
    if docs.not_modified:
        return ParsedCompany(
            cik=docs.cik, company=CompanyRecord(cik=docs.cik, name=None), facts=None,
            filings=FILING_SCHEMA.empty_table(), has_submissions=False,
            submissions_sha256=None, not_modified=True,
        )  # fmt: skip
    entity_name = None
    if docs.companyfacts is not None:
        origin = docs.facts_origin or str(docs.companyfacts.path)
        head = sniff_companyfacts(docs.companyfacts.path, origin=origin, cik=docs.cik)
        entity_name = head.entity_name
    if docs.submissions:
        origin = docs.submissions_origin or f"{docs.origin}: submissions"
        main = load_json_object(docs.submissions[0], origin=origin, cik=docs.cik)
        company = parse_company(main, cik=docs.cik)
        filings = parse_filings(main, list(docs.submissions[1:]), cik=docs.cik, origin=origin)
        subs_hash = hashlib.sha256(b"".join(docs.submissions)).hexdigest()
    else:
        company = CompanyRecord(cik=docs.cik, name=entity_name)
        filings = FILING_SCHEMA.empty_table()
        subs_hash = None
    return ParsedCompany(
        cik=docs.cik,
        company=company,
        facts=docs.companyfacts,
        filings=filings,
        has_submissions=bool(docs.submissions),
        submissions_sha256=subs_hash,
        warnings=docs.warnings,
        validators=docs.validators,
    )


def parse_batch(
    staged: Iterable[CompanyDocuments | CompanyOutcome], *, on_timing: Timing | None = None
) -> list[Staged]:
    """Parse every downloaded company; outcomes from earlier stages pass through."""
    results: list[Staged] = []
    for item in staged:
        if isinstance(item, CompanyOutcome):
            results.append(item)
            continue
        started = time.perf_counter()
        try:
            results.append(parse_documents(item))
            if on_timing is not None:
                on_timing(item.cik, time.perf_counter() - started)
        except FinloomError as exc:
            reason = redact(str(exc))
            log.warning("cik %s: parse failed: %s", item.cik, reason)
            if item.companyfacts is not None:
                item.companyfacts.discard()
            results.append(CompanyOutcome(item.cik, Status.FAILED, reason=reason, stage="parse"))
    return results


def parse_batch_to_parquet(
    staged: Iterable[CompanyDocuments | CompanyOutcome],
    out_dir: Path | str,
    *,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> list[ParquetCompany | CompanyOutcome]:
    """``parse_batch``, then each company's facts parsed by DuckDB's JSON reader into Parquet
    under ``out_dir`` (what a Dask worker does; see finloom_core.parquet_stage)."""
    timings: dict[int, float] = {}
    parsed = parse_batch(staged, on_timing=timings.__setitem__)
    return stage_parquet(
        [p for p in parsed if isinstance(p, ParsedCompany | CompanyOutcome)],
        Path(out_dir),
        memory_limit=memory_limit,
        seconds=lambda cik: timings.get(cik, 0.0),
    )


def load_batch(
    db_path: Path | str,
    staged: Iterable[Staged],
    *,
    source: str,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> list[CompanyOutcome]:
    """Load every parsed company of a batch through one connection (see load_companies).

    Companies a Dask worker parsed (``ParquetCompany``) are bulk-loaded from their Parquet
    files, which are removed once loaded, as staged JSON documents are.
    """
    given = list(staged)
    items = [i.load_ready() if isinstance(i, ParquetCompany) else i for i in given]
    on_disk = [i for i in given if isinstance(i, ParquetCompany)]
    parsed = [i for i in items if isinstance(i, ParsedCompany)]
    results: dict[int, LoadResult] = {}
    if parsed:
        with open_warehouse(db_path, memory_limit=memory_limit) as con:
            results = {r.cik: r for r in load_companies(con, parsed, source=source)}
        # kept when the load raised (a locked database): the task retries with these files
        for company in parsed:
            if company.facts is not None:
                company.facts.discard()
        for stored in on_disk:
            stored.discard()
    outcomes: list[CompanyOutcome] = []
    for item in items:
        if isinstance(item, ParsedCompany):
            outcomes.append(_outcome(item, results[item.cik]))
        elif isinstance(item, CompanyOutcome):
            outcomes.append(item)
    return outcomes


def _outcome(parsed: ParsedCompany, result: LoadResult) -> CompanyOutcome:
    name = parsed.company.name or result.name
    if result.error is not None:
        reason = redact(result.error)
        log.error("cik %s: load failed: %s", parsed.cik, reason)
        return CompanyOutcome(
            parsed.cik, Status.FAILED, name, reason=reason, stage=result.error_stage
        )
    if parsed.not_modified:
        status = Status.UNCHANGED
    elif parsed.facts is None:
        status = Status.NO_XBRL
    elif result.unchanged:
        status = Status.UNCHANGED
    else:
        status = Status.LOADED
    warnings = parsed.warnings
    if result.duplicates_dropped:
        warnings += (f"{result.duplicates_dropped} facts repeated a key; kept the last filed",)
    return CompanyOutcome(parsed.cik, status, name, result.facts, result.filings, warnings=warnings)


def changed_ciks(outcomes: Iterable[CompanyOutcome]) -> list[int]:
    """The companies whose facts a load replaced (status LOADED): the ones to re-normalize."""
    return [o.cik for o in outcomes if o.status is Status.LOADED]


def with_financials(
    outcomes: Iterable[CompanyOutcome], counts: Mapping[int, int]
) -> list[CompanyOutcome]:
    """The outcomes with the financials rows ``normalize_batch`` rebuilt for each company."""
    return [
        dataclasses.replace(o, financials=counts[o.cik]) if o.cik in counts else o for o in outcomes
    ]


def normalize_batch(
    db_path: Path | str, ciks: Sequence[int], *, memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> dict[int, int]:
    """Rebuild the standardized financials of ``ciks``; financials rows per company."""
    if not ciks:
        return {}
    with open_warehouse(db_path, memory_limit=memory_limit) as con:
        return normalize_companies(con, ciks)


def normalize_pending(
    db_path: Path | str, *, batch_size: int = 100, memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> dict[int, int]:
    """Rebuild the financials of every company whose facts a load replaced but whose
    normalize never ran (a run killed between the two); financials rows per company.

    Every run calls this before its first load, so a crash between load and normalize is
    healed even when all of the rerun's companies are unchanged. A warehouse that does not
    exist yet has nothing to rebuild (and is not created here).
    """
    if not Path(db_path).exists():
        return {}
    counts: dict[int, int] = {}
    with open_warehouse(db_path, memory_limit=memory_limit) as con:
        pending = marked_ciks(con)
        for chunk in batched(pending, batch_size):
            counts.update(normalize_companies(con, chunk))
    if pending:
        log.warning(
            "rebuilt the financials of %d companies whose facts were newer (an interrupted"
            " run): %s", len(pending), ", ".join(cik10(c) for c in pending[:20]),
        )  # fmt: skip
    return counts


def run_pipeline(
    source: Source,
    ciks: Sequence[int],
    db_path: Path | str,
    *,
    batch_size: int = 100,
    normalize: bool = True,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    download_concurrency: int = DEFAULT_DOWNLOAD_CONCURRENCY,
) -> list[CompanyOutcome]:
    """download -> parse -> load (-> normalize) with no orchestrator.

    The next batch is downloaded and parsed on a worker thread while the current one loads
    (DuckDB releases the GIL), so at most two batches are in memory at once. With
    ``normalize``, the companies an interrupted run left with facts newer than their
    financials are rebuilt first (``normalize_pending``), then each batch's companies whose
    facts changed (LOADED) are normalized after its load; unchanged, failed and deferred
    companies keep their financials. ``memory_limit`` caps DuckDB's memory in every
    connection the run opens; ``download_concurrency`` is ``download_batch``'s.
    """
    batches = batched(ciks, batch_size)
    outcomes: list[CompanyOutcome] = []
    healed = (
        normalize_pending(db_path, batch_size=batch_size, memory_limit=memory_limit)
        if normalize
        else {}
    )

    def prepare(batch: list[int]) -> list[Staged]:
        return parse_batch(download_batch(source, batch, concurrency=download_concurrency))

    def load(staged: list[Staged]) -> list[CompanyOutcome]:
        loaded = load_batch(db_path, staged, source=source.name, memory_limit=memory_limit)
        if not normalize:
            return loaded
        counts = normalize_batch(db_path, changed_ciks(loaded), memory_limit=memory_limit)
        return with_financials(loaded, {**healed, **counts})

    if len(batches) == 1:
        return load(prepare(batches[0]))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="finloom-prefetch") as pool:
        upcoming = [pool.submit(prepare, batches[0])] if batches else []
        for number in range(len(batches)):
            staged = upcoming.pop().result()
            if number + 1 < len(batches):
                upcoming.append(pool.submit(prepare, batches[number + 1]))
            outcomes += load(staged)
    return outcomes
