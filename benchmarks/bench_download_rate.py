"""The request rate live-API downloads achieve: one company at a time against several.

A synthetic EDGAR folder of small companies (one companyfacts and one submissions document
each, no older-filings pages: two requests per company) is served by the EDGAR stand-in
(``tests/edgar_standin.py``: 429 above 10 requests per second) answering every request after
``--latency`` seconds, as SEC does from afar. ``download_batch`` over an ``ApiSource`` fetches
every company through one ``SecGate`` at ``--rate`` (``FINLOOM_MAX_REQUESTS_PER_SECOND``),
with ``concurrency`` 1 (one company after another) and ``FINLOOM_DOWNLOAD_CONCURRENCY``'s
default. The rate is measured on the stand-in's arrival times: (requests - 1) / (last
arrival - first arrival), and its share of the setting.

    uv run python benchmarks/bench_download_rate.py [--companies 24 96] [--latency 0.25]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from provenance import REPO, code_version, write_result

sys.path.insert(0, str(REPO))

from finloom_core.edgar import EdgarClient, SecGate
from finloom_core.edgar.sources import ApiSource
from finloom_core.pipeline import download_batch
from finloom_core.records import CompanyDocuments
from finloom_core.settings import DEFAULT_DOWNLOAD_CONCURRENCY, FinloomSettings
from tests.edgar_standin import EdgarStandIn
from tests.factories import companyfacts_doc, submissions_doc, to_bytes

FIRST_CIK = 7_000_001


def synthetic_edgar(root: Path, companies: int) -> list[int]:
    (root / "companyfacts").mkdir(parents=True)
    (root / "submissions").mkdir()
    ciks = list(range(FIRST_CIK, FIRST_CIK + companies))
    for cik in ciks:
        name = f"CIK{cik:010d}.json"
        (root / "companyfacts" / name).write_bytes(to_bytes(companyfacts_doc(cik)))
        (root / "submissions" / name).write_bytes(to_bytes(submissions_doc(cik)))
    return ciks


def measure(
    edgar: Path, ciks: list[int], *, concurrency: int, rate: float, latency: float, state: Path
) -> dict[str, Any]:
    with EdgarStandIn(edgar, latency=latency) as server, tempfile.TemporaryDirectory() as tmp:
        settings = FinloomSettings(  # type: ignore[call-arg]
            _env_file=None,
            sec_user_agent="FinLoom benchmark bench@example.com",
            edgar_data_url=server.data_url,
            edgar_www_url=server.www_url,
            max_requests_per_second=rate,
            state_dir=state,
        )
        source = ApiSource(EdgarClient(settings, SecGate.from_settings(settings)), Path(tmp))
        started = time.perf_counter()
        try:
            results = download_batch(source, ciks, concurrency=concurrency)
        finally:
            source.close()
        wall = time.perf_counter() - started
        arrivals = sorted(hit.at for hit in server.hits)
        too_many = server.count(429)
    span = arrivals[-1] - arrivals[0]
    achieved = (len(arrivals) - 1) / span if span > 0 else 0.0
    return {
        "companies": len(ciks),
        "concurrency": concurrency,
        "downloaded": sum(isinstance(r, CompanyDocuments) for r in results),
        "requests": len(arrivals),
        "window_seconds": round(span, 3),
        "wall_seconds": round(wall, 3),
        "requests_per_second": round(achieved, 2),
        "share_of_setting": round(achieved / rate, 3),
        "429s": too_many,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, nargs="+", default=[24, 96])
    parser.add_argument("--latency", type=float, default=0.25)
    parser.add_argument("--rate", type=float, default=8.0)
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, DEFAULT_DOWNLOAD_CONCURRENCY]
    )
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="finloom-bench-rate-") as tmp:
        for companies in args.companies:
            edgar = Path(tmp) / f"edgar-{companies}"
            ciks = synthetic_edgar(edgar, companies)
            for concurrency in args.concurrency:
                run = measure(
                    edgar, ciks, concurrency=concurrency, rate=args.rate,
                    latency=args.latency, state=Path(tmp) / "state",
                )  # fmt: skip
                runs.append(run)
                print(json.dumps(run))
    share = f"of {args.rate:g}/s"
    print(f"\n| companies | concurrency | requests | seconds | requests/s | {share} | 429s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        print(
            f"| {r['companies']} | {r['concurrency']} | {r['requests']} | {r['window_seconds']:.2f}"
            f" | {r['requests_per_second']:.2f} | {r['share_of_setting']:.0%} | {r['429s']} |"
        )
    path = write_result(
        "download_rate",
        {
            "code": code_version(),
            "python": platform.python_version(),
            "load_average": os.getloadavg(),
            "latency_seconds": args.latency,
            "max_requests_per_second": args.rate,
            "runs": runs,
        },
    )
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
