"""The metric catalogue: FinLoom's reviewed mapping from XBRL concepts to standard metrics.

``metrics.toml`` beside this module is the source; ``load_catalogue`` validates it (every
metric has a concept chain or a formula, formulas name known metrics of the same period
type and unit, no concept feeds metrics of two statements) and returns immutable specs.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finloom_core.errors import ConfigurationError

CATALOGUE_PATH = Path(__file__).with_name("metrics.toml")
TAXONOMIES = ("us-gaap", "ifrs-full", "dei")
_TERM = re.compile(r"^(?P<sign>[+-])?\s*(?P<name>[a-z_]+)(?P<optional>\?)?$")


class _MetricModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    statement: Literal["income", "balance", "cash_flow", "per_share", "shares"]
    period: Literal["duration", "instant"]
    unit: Literal["currency", "currency_per_share", "shares"]
    sign: Literal["natural", "outflow"]
    description: str = Field(min_length=1)
    derived: str | None = None
    pick: Literal["first", "largest"] = "first"
    agrees_with: str | None = None
    concepts: dict[Literal["us-gaap", "ifrs-full", "dei"], list[str]] = {}


@dataclass(frozen=True, slots=True)
class Term:
    metric: str
    sign: int  # +1 or -1
    optional: bool


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    statement: str
    period: str
    unit: str
    sign: str
    description: str
    chains: Mapping[str, tuple[str, ...]]
    formula: tuple[Term, ...] = ()
    formula_text: str | None = None
    pick: str = "first"  # which of a filing's disagreeing chain concepts: first, largest
    agreement: tuple[Term, ...] = ()  # the statement identity the value should satisfy
    agreement_text: str | None = None

    def chain(self, taxonomy: str) -> tuple[str, ...]:
        return self.chains.get(taxonomy, ())


@dataclass(frozen=True, slots=True)
class Catalogue:
    metrics: Mapping[str, MetricSpec]

    def __getitem__(self, name: str) -> MetricSpec:
        return self.metrics[name]

    def __len__(self) -> int:
        return len(self.metrics)

    def concept_index(self) -> dict[tuple[str, str], list[tuple[str, int]]]:
        """(taxonomy, concept) -> [(metric, rank in that metric's chain), ...]."""
        index: dict[tuple[str, str], list[tuple[str, int]]] = {}
        for spec in self.metrics.values():
            for taxonomy, chain in spec.chains.items():
                for rank, concept in enumerate(chain):
                    index.setdefault((taxonomy, concept), []).append((spec.name, rank))
        return index


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Read and validate a catalogue (FinLoom's own, read once, when ``path`` is None);
    ConfigurationError (one line) when it is invalid."""
    return _default_catalogue() if path is None else _read(path)


@cache
def _default_catalogue() -> Catalogue:
    return _read(CATALOGUE_PATH)


def _read(path: Path) -> Catalogue:
    try:
        raw = tomllib.loads(path.read_text())["metrics"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"metric catalogue {path}: {exc}") from None
    specs = {name: _spec(name, _validate(name, body, path)) for name, body in raw.items()}
    _check(specs, path)
    return Catalogue(specs)


def _validate(name: str, body: object, path: Path) -> _MetricModel:
    try:
        return _MetricModel.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in (name, *first["loc"]))
        raise ConfigurationError(f"metric catalogue {path}: {where}: {first['msg']}") from None


def _spec(name: str, model: _MetricModel) -> MetricSpec:
    return MetricSpec(
        name=name,
        statement=model.statement,
        period=model.period,
        unit=model.unit,
        sign=model.sign,
        description=model.description,
        chains={taxonomy: tuple(chain) for taxonomy, chain in model.concepts.items()},
        formula=parse_formula(model.derived) if model.derived else (),
        formula_text=model.derived,
        pick=model.pick,
        agreement=parse_formula(model.agrees_with) if model.agrees_with else (),
        agreement_text=model.agrees_with,
    )


def parse_formula(text: str) -> tuple[Term, ...]:
    """``"a - b - c?"`` -> terms; ``?`` marks a term that counts as zero when missing."""
    pieces = re.findall(r"[+-]?\s*[a-z_]+\??", text)
    if "".join(pieces).replace(" ", "") != text.replace(" ", ""):
        raise ConfigurationError(f"formula {text!r}: expected metric names joined by + and -")
    terms = []
    for piece in pieces:
        match = _TERM.match(piece.strip())
        if match is None:  # pragma: no cover - the findall above admits only valid pieces
            raise ConfigurationError(f"formula {text!r}: cannot read {piece!r}")
        sign = -1 if match["sign"] == "-" else 1
        terms.append(Term(match["name"], sign, bool(match["optional"])))
    return tuple(terms)


def _check(specs: Mapping[str, MetricSpec], path: Path) -> None:
    seen: dict[tuple[str, str], MetricSpec] = {}
    for spec in specs.values():
        if not any(spec.chains.values()) and not spec.formula:
            raise ConfigurationError(f"metric catalogue {path}: {spec.name} has no concepts")
        for taxonomy, chain in spec.chains.items():
            for concept in chain:
                # one concept may feed sibling metrics (EarningsPerShareBasicAndDiluted
                # feeds basic and diluted EPS), never metrics of different statements
                other = seen.setdefault((taxonomy, concept), spec)
                if (other.statement, other.period) != (spec.statement, spec.period):
                    raise ConfigurationError(
                        f"metric catalogue {path}: {taxonomy}:{concept} feeds both "
                        f"{other.name} and {spec.name}"
                    )
        for term in (*spec.formula, *spec.agreement):
            target = specs.get(term.metric)
            if target is None or term.metric == spec.name:
                raise ConfigurationError(
                    f"metric catalogue {path}: {spec.name} derives from unknown {term.metric}"
                )
            if (target.period, target.unit) != (spec.period, spec.unit):
                raise ConfigurationError(
                    f"metric catalogue {path}: {spec.name} mixes {target.name}'s "
                    f"{target.period}/{target.unit} into {spec.period}/{spec.unit}"
                )
