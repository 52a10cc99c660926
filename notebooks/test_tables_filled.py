"""Every table of every notebook has numbers of ours: a table whose "ours" rows are all "–" passed
`--nbval-lax` silently before (Table 6 in every profile, Table 4 in mini).

This file sits beside the notebooks so that `make test` (`pytest tests notebooks`) collects it after them:
it reads the tables the smoke run of each notebook just wrote (results/smoke/<section>/tableN.md, each at
least as new as that run's records.csv) and fails on an "ours" row without a single number."""
from __future__ import annotations

from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parent.parent / "results" / "smoke"

TABLES = {"bilingual": [1, 2], "multilingual": [3, 4, 5, 6], "all_languages": [7, 9, 10, 11, 12, 13],
          "ablation": [8]}

# Tables the smoke profile cannot fill, and why: smoke evaluates XNLI and XCOPA only (eval.smoke.tasks),
# so the per-language tables of the other three tasks have no record of ours.
SMOKE_CANNOT_FILL = {("all_languages", 10): "PAWS-X is not in eval.smoke.tasks",
                     ("all_languages", 12): "XStoryCloze is not in eval.smoke.tasks",
                     ("all_languages", 13): "XWinograd is not in eval.smoke.tasks"}


def ours_rows(markdown: str) -> list[tuple[str, list[str]]]:
    """(model, cells) of each "ours" row of a table written by afp_lib.analysis.render.to_markdown."""
    rows = []
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == "ours":
            rows.append((cells[1], cells[2:]))
    return rows


def empty_rows(markdown: str) -> list[str]:
    return [model for model, cells in ours_rows(markdown) if all(c in ("–", "") for c in cells)]


def test_empty_rows_are_found():
    table = ("| block | model | EN | Avg |\n|:--|:--|:--|:--|\n| ours | a | 1.0 | – |\n| ours | b | – | – |\n"
             "| paper | P | 2.0 | 2.0 |\n")
    assert empty_rows(table) == ["b"]
    assert [m for m, _ in ours_rows(table)] == ["a", "b"]


@pytest.mark.parametrize("section,n", [(s, n) for s, ns in TABLES.items() for n in ns])
def test_smoke_table_has_ours_numbers(section, n):
    records, table = RESULTS / section / "records.csv", RESULTS / section / f"table{n}.md"
    if not records.exists() or not table.exists():
        pytest.fail(f"{table} or {records} is missing: run the smoke notebooks first (`make test` runs them "
                    "before this file)")
    assert table.stat().st_mtime >= records.stat().st_mtime, f"{table} is older than {records}: a stale table"
    text = table.read_text(encoding="utf-8")
    rows, empty = ours_rows(text), empty_rows(text)
    if (section, n) in SMOKE_CANNOT_FILL:   # no record of ours at all: no row, or only empty ones
        assert len(empty) == len(rows), (f"{table} now has numbers of ours: remove it from SMOKE_CANNOT_FILL "
                                         f"({SMOKE_CANNOT_FILL[section, n]})")
        return
    assert rows, f"{table} has no 'ours' row"
    assert not empty, f"{table}: 'ours' rows without a single number: {empty}"
