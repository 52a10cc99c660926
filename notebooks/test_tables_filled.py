"""Every table of every notebook has numbers of ours: a table whose "ours" rows are all "–" passed
`--nbval-lax` silently before (Table 6 in every profile, Table 4 in mini).

The test executes each section notebook with tables itself, on the smoke profile through papermill (as DVC
does for results/<profile>/), and reads the tables that this run wrote (results/smoke/<section>/tableN.md, no
older than the run's start): it needs no other test to have run first. Under `make test` the notebooks' runs
and evaluations are cached by nbval's pass, so each execution only re-does the analysis."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results" / "smoke"
KERNEL = "afp"

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


def _kernel_available() -> bool:
    from jupyter_client.kernelspec import KernelSpecManager
    return KERNEL in KernelSpecManager().find_kernel_specs()


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """executed(section): when this module's run of the section notebook started (it runs once per section)."""
    started = {}

    def run(section: str) -> float:
        if section not in started:
            import papermill
            from afp_lib.sections import NOTEBOOKS
            t0 = time.time() - 1   # file systems with 1 s mtimes
            out = tmp_path_factory.mktemp(section) / NOTEBOOKS[section]
            papermill.execute_notebook(str(HERE / NOTEBOOKS[section]), str(out), parameters={"profile": "smoke"},
                                       kernel_name=KERNEL, progress_bar=False, cwd=str(HERE))
            started[section] = t0
        return started[section]

    return run


@pytest.mark.slow
@pytest.mark.skipif(not _kernel_available(), reason=f"no Jupyter kernel {KERNEL!r} (`make setup` installs it)")
@pytest.mark.parametrize("section,n", [(s, n) for s, ns in TABLES.items() for n in ns])
def test_smoke_table_has_ours_numbers(section, n, executed):
    started = executed(section)
    table = RESULTS / section / f"table{n}.md"
    assert table.exists(), f"the smoke run of the {section} notebook wrote no {table}"
    assert table.stat().st_mtime >= started, f"{table} was not written by this run of the notebook: a stale table"
    text = table.read_text(encoding="utf-8")
    rows, empty = ours_rows(text), empty_rows(text)
    if (section, n) in SMOKE_CANNOT_FILL:   # no record of ours at all: no row, or only empty ones
        assert len(empty) == len(rows), (f"{table} now has numbers of ours: remove it from SMOKE_CANNOT_FILL "
                                         f"({SMOKE_CANNOT_FILL[section, n]})")
        return
    assert rows, f"{table} has no 'ours' row"
    assert not empty, f"{table}: 'ours' rows without a single number: {empty}"
