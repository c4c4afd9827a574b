"""The README is the front door: its settings table and test command must match the code."""

from __future__ import annotations

import re
from pathlib import Path

from finloom_core.settings import FinloomSettings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_readme_table_with_its_default() -> None:
    rows = dict(re.findall(r"^\| `(FINLOOM_[A-Z_]+)` \| ([^|]+) \|", README, re.MULTILINE))
    for name, field in FinloomSettings.model_fields.items():
        variable = f"FINLOOM_{name.upper()}"
        assert variable in rows, f"{variable} missing from the README settings table"
        if field.default is not None:
            default = str(field.default)
            shown = rows[variable].strip().strip("`")
            assert shown in (default, default.removesuffix(".0")), (variable, shown, default)
    documented = set(rows) - {f"FINLOOM_{n.upper()}" for n in FinloomSettings.model_fields}
    assert documented <= {"FINLOOM_DEBUG"}, f"README documents unknown settings: {documented}"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    block = re.search(r"## Test\s+```bash\n(.+?)\n```", README, re.DOTALL)
    assert block is not None
    command = block.group(1).strip()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in [line.strip() for line in ci]


def test_ci_runs_exactly_the_readme_setup_command() -> None:
    block = re.search(r"## Set up.+?```bash\n(.+?)\n```", README, re.DOTALL)
    assert block is not None
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert block.group(1).strip() in [line.strip() for line in ci]
