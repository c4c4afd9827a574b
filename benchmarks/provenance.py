"""What a benchmark figure was measured on: the commit, for the JSON each script writes."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_EDGAR = REPO.parent / "shared" / "edgar"
OUT = REPO / "benchmarks" / "out"


def code_version() -> str:
    """The commit measured, with ``+dirty`` when finloom_core has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "finloom_core"],
            cwd=REPO, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
    except OSError:
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Write ``result`` as ``benchmarks/out/<name>.json`` (the figures the README quotes)."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def quiet_prefect() -> None:
    """A Prefect home of the benchmark's own, no telemetry, warnings only (unless set)."""
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="finloom-bench-prefect-"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("DO_NOT_TRACK", "1")
