"""docs/OUTPUTS.md documents every table and column the probe categories declare, with its unit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from profilemate import probes

DOC = Path(__file__).resolve().parents[2] / "docs" / "OUTPUTS.md"


def _section(text: str, table: str) -> str:
    m = re.search(rf"^### `{re.escape(table)}\.csv`.*?(?=^### |^## |\Z)", text, re.M | re.S)
    assert m, f"docs/OUTPUTS.md has no section for {table}.csv"
    return m.group(0)


@pytest.mark.parametrize("category", probes.category_names())
def test_every_declared_column_is_documented_with_its_unit(category):
    text = DOC.read_text(encoding="utf-8")
    for table in probes.load_category(category).TABLES:
        section = _section(text, table.name)
        for col in table.columns:
            row = re.search(rf"^\| `{re.escape(col.header)}` \|([^|]*)\|", section, re.M)
            assert row, f"{table.name}.csv: column {col.header} is not documented"
            assert row.group(1).strip() == col.unit, (table.name, col.header, row.group(1))
