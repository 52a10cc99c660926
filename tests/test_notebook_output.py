"""What notebooks print: progress bars off where asked or off a terminal, log paths relative to the repository,
the config as short YAML, figures without font substitution, compact tables with reference rows, the
findings split into two narrow tables, and the checker of executed notebooks."""
import io
import logging

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from afp_lib.analysis import findings as F
from afp_lib.analysis import notebook as N
from afp_lib.analysis import plots, tables
from afp_lib.config import bar_disable
from afp_lib.paths import repo_root


@pytest.mark.parametrize("env,disable,expected", [(None, False, None), (None, True, True), ("1", False, True),
                                                  ("0", False, None), ("false", True, True)])
def test_bar_disable(monkeypatch, env, disable, expected):
    if env is None:
        monkeypatch.delenv("TQDM_DISABLE", raising=False)
    else:
        monkeypatch.setenv("TQDM_DISABLE", env)
    assert bar_disable(disable) is expected


def test_log_lines_name_no_absolute_path(monkeypatch, tmp_path):
    monkeypatch.setenv("AFP_RUNS", str(tmp_path / "elsewhere" / "runs"))
    fmt = N.RelativePaths("%(message)s")
    rec = lambda msg: logging.LogRecord("x", logging.INFO, __file__, 1, msg, (), None)   # noqa: E731
    assert fmt.format(rec(f"run cache hit: {repo_root()}/runs/align/afp-1")) == "run cache hit: runs/align/afp-1"
    assert fmt.format(rec(f"hit: {tmp_path}/elsewhere/runs/align/x")) == "hit: runs/align/x"


def test_short_config_is_one_yaml_line_per_field():
    text = N.short_config({"archs": ["xglm", "bloom"], "methods": {"vanilla": None, "AFP": ["objective=afp"]},
                           "runs": {"models": {"methods": "methods"}}})
    assert text == "```yaml\narchs: [xglm, bloom]\nmethods: {vanilla: null, AFP: [objective=afp]}\n```"
    with pytest.raises(KeyError, match="not in the params block"):
        N.short_config({"a": 1}, ["b"])


def test_figures_need_no_font_substitution(caplog):
    log = [{"step": s, "align": 1.0 - s / 10, "uniform": -1.0 - s / 10} for s in (0, 5)]
    fig = plots.align_uniform_trajectories({"AFP": log})
    with caplog.at_level(logging.INFO, logger="matplotlib.mathtext"):
        fig.savefig(io.BytesIO(), format="png")
    assert not [r for r in caplog.records if "Substituting" in r.getMessage()]
    N.show(fig)   # outside IPython: closes it, displays nothing
    import matplotlib.pyplot as plt
    assert fig.number not in plt.get_fignums()


def _nb(*outputs):
    return new_notebook(cells=[new_code_cell("x", outputs=list(outputs))])


def test_output_problems_finds_tracebacks_paths_bars_and_warnings():
    clean = _nb(new_output("stream", name="stderr", text="21:00 afp_lib.experiment: run runs/align/afp-1\n"),
                new_output("display_data", data={"image/png": "iVBOR", "text/plain": "<Image>"}))
    assert N.output_problems(clean) == []
    bad = _nb(new_output("error", ename="KeyError", evalue="'x'", traceback=[]),
              new_output("stream", name="stderr", text="hit: /work/main/runs/align/afp-1\n"),
              new_output("stream", name="stderr", text="\rembed:  40%|████      | 4/10 [00:00<00:00, 36.87it/s]"),
              new_output("stream", name="stderr", text="matplotlib.mathtext: Substituting symbol L from STIXNonUnicode"))
    kinds = [p.split(": ")[1] for p in N.output_problems(bad)]
    assert kinds == ["error KeyError", "absolute path", "progress bar", "warning"]
    assert N.images(clean) == 1 and N.images(bad) == 0


def test_compact_table_cells_and_reference_rows():
    recs = [dict(model="m", task=t, language=l, shots=s, seed=1, metric="acc", value=v, n_items=10)
            for t, v in (("xnli", 40.0), ("pawsx", 90.0), ("xcopa", 50.0), ("xstorycloze", 50.0), ("xwinograd", 50.0))
            for l in ("en", "zh") for s in (0, 5)]
    t = tables.table1(recs, paper=False)
    md = tables.to_markdown(t, compact=True)
    row = next(line for line in md.splitlines() if line.startswith("| ours"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2].startswith("40.0±") and cells[2].endswith("†") and "[" not in cells[2]   # 40% of 10: chance
    assert cells[4].startswith("90.0±") and "†" not in cells[4].split("/")[0]                  # PAWS-X 90% of 10
    assert "| chance  | uniform " in md and "33.3/33.3" in md
    assert "[" in tables.to_markdown(t)   # the full form keeps the intervals


def test_findings_views_fit_a_column():
    f = pd.DataFrame({"retrieval": [30.0], "retrieval se": [1.0], "retrieval lo": [27.0], "retrieval hi": [33.0],
                      "uniform": [-1.0], "uniform se": [0.02], "ppl en": [50.0], "ppl en se": [1.0],
                      "n seeds": [2]}, index=["AFP"])
    views = F.findings_views(f)
    rep, lm = views.values()
    assert list(rep.columns) == ["Tatoeba retrieval (%)", "Tatoeba uniform"]
    assert rep.loc["AFP", "Tatoeba retrieval (%)"] == "30.0 [27.0, 33.0]"
    assert rep.loc["AFP", "Tatoeba uniform"] == "-1.000 ± 0.020" and lm.loc["AFP", "seeds"] == "2"
    assert all(len(v.columns) <= 7 for v in views.values())


def test_executed_notebook_check_on_files(tmp_path):
    nbformat.write(_nb(new_output("stream", name="stderr", text="/home/me/x\n")), tmp_path / "a.ipynb")
    assert N.main([str(tmp_path / "a.ipynb")]) == 1
    nbformat.write(_nb(new_output("display_data", data={"image/png": "iVBOR"})), tmp_path / "b.ipynb")
    assert N.main([str(tmp_path / "b.ipynb")]) == 0
