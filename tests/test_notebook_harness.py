"""The section-notebook harness of conftest.py (`run_notebook`) fails on a cell's own bugs and lets only the
analysis of the recorded (empty) results stop a cell."""
import json

import pytest

from afp_lib import sections


def _notebook(tmp_path, monkeypatch, *cells):
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "source": c} for c in cells]}))
    monkeypatch.setitem(sections.NOTEBOOKS, "harness", str(path))   # an absolute path wins over notebooks/
    return "harness"


def test_cells_stopped_by_empty_results_are_passed_over(run_notebook, tmp_path, monkeypatch):
    name = _notebook(tmp_path, monkeypatch, "records = []", "first = records[0]", "print(first)", "done = 1")
    assert run_notebook(name, "smoke") == ([], [])


@pytest.mark.parametrize("bug, error", [("x = undefined_name", "NameError"), ("import no_such_module", "ModuleNotFoundError"),
                                        ("def f(:\n    pass", "SyntaxError")])
def test_a_cells_own_bug_fails_naming_the_cell(run_notebook, tmp_path, monkeypatch, bug, error):
    name = _notebook(tmp_path, monkeypatch, "ok = 1", bug)
    with pytest.raises(AssertionError, match=rf"nb.ipynb cell 1 raised {error}"):
        run_notebook(name, "smoke")


def test_a_cell_calling_the_model_functions_must_finish(run_notebook, tmp_path, monkeypatch):
    name = _notebook(tmp_path, monkeypatch, "from afp_lib import experiment as ex", "rows = ex.evaluate(None)\nrows[0]")
    with pytest.raises(AssertionError, match="cell 1 raised IndexError"):
        run_notebook(name, "smoke")
