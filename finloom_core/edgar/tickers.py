"""SEC's ticker map (``company_tickers.json``) and ticker/CIK resolution."""

from __future__ import annotations

from dataclasses import dataclass

from finloom_core.cik import parse_cik
from finloom_core.errors import (
    InputError,
    InvalidCikError,
    ResponseParseError,
    UnknownTickerError,
)
from finloom_core.parse.json_doc import load_json_object


@dataclass(frozen=True, slots=True)
class TickerMap:
    """Upper-case ticker -> CIK, and CIK -> title."""

    ciks: dict[str, int]
    titles: dict[int, str]

    def resolve(self, tickers: list[str]) -> list[int]:
        """CIKs of ``tickers`` in order; UnknownTickerError naming every unknown one."""
        wanted = [normalize_ticker(t) for t in tickers]
        unknown = [t for t in wanted if t not in self.ciks]
        if unknown:
            raise UnknownTickerError(unknown)
        return [self.ciks[t] for t in wanted]


def normalize_ticker(ticker: str) -> str:
    """SEC lists share classes with a dash (BRK-B); accept BRK.B and brk-b too."""
    return ticker.strip().upper().replace(".", "-")


def parse_company_tickers(data: bytes, *, origin: str) -> TickerMap:
    doc = load_json_object(data, origin=origin)
    ciks: dict[str, int] = {}
    titles: dict[int, str] = {}
    try:
        for row in doc.values():
            cik = parse_cik(row["cik_str"])
            ciks.setdefault(normalize_ticker(str(row["ticker"])), cik)
            titles.setdefault(cik, str(row.get("title") or ""))
    except (KeyError, TypeError, AttributeError, InvalidCikError) as exc:
        raise ResponseParseError(
            f"{origin}: not SEC's company_tickers.json: {exc}", source=origin
        ) from None
    return TickerMap(ciks, titles)


def resolve_companies(
    ticker_map: TickerMap | None, tickers: list[str], ciks: list[str | int]
) -> list[int]:
    """Unique CIKs for tickers and CIKs, in the order given (tickers first)."""
    if tickers and ticker_map is None:
        raise InputError("tickers given but no ticker map to resolve them: pass CIKs")
    resolved = ticker_map.resolve(tickers) if tickers and ticker_map else []
    resolved += [parse_cik(c) for c in ciks]
    return list(dict.fromkeys(resolved))
