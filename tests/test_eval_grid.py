"""The evaluation grid of the plan: the cells the notebooks ask for, each once, with its item count; the
notebooks' own code (run with a recording `evaluate`) asks for exactly the grid's cells."""
import json
from unittest import mock

import pytest

from afp_lib import experiment as ex
from afp_lib.eval.runner import Cell, cell_file
from afp_lib.plan import launch_commands, resolve_plan
from afp_lib.plan.grid import resolve_grid, section_requests
from afp_lib.sections import SECTIONS


@pytest.mark.parametrize("profile", ["smoke", "mini", "paper"])
@pytest.mark.parametrize("name", SECTIONS)
def test_notebooks_request_exactly_the_grid(name, profile, run_notebook, mirror):
    """A section's plan requests are the notebook's evaluate calls (its own code, run with a recording
    `evaluate`: conftest.run_notebook), and the cells they expand to are the grid's."""
    expected = section_requests(name, profile)
    calls, _ = run_notebook(name, profile)
    assert calls, f"notebook {name} made no evaluate call"
    cells = lambda reqs: [c for v, o, t in reqs for c in ex.eval_cells(v, profile, o, t)]   # noqa: E731
    assert cells(calls) == cells([(r.variant, r.overrides, r.translation) for r in expected])
    assert [(v.label, v.arch, v.seed) for v, _, _ in calls] == [(r.variant.label, r.variant.arch, r.variant.seed)
                                                                for r in expected]


def test_grid_deduplicates_across_sections():
    grid = resolve_grid("smoke", SECTIONS, sizes=False)
    keys = [g.cell for g in grid.cells]
    assert len(keys) == len(set(keys)) == sum(s["new_cells"] for s in grid.sections.values())
    assert len({cell_file(c) for c in keys}) == len(keys)   # one cache file per cell
    # the vanilla and AFP 0-shot cells of notebook 01 are the ablation's (notebook 06) too
    shared = [g for g in grid.cells if g.cell.task == "xnli" and g.cell.language == "zh" and "ablation:w/ AFP" in g.used_by]
    assert shared and all("bilingual:AFP" in g.used_by for g in shared)
    assert grid.sections["ablation"]["new_cells"] < grid.sections["ablation"]["cells"]


@pytest.mark.parametrize("name", ["bilingual", "mcl_layer", "p_src", "ablation", "appendix"])
def test_en_zh_sections_evaluate_english_and_chinese_only(name):
    """Tables 1, 8 and Figs. 4-5 average the five EN-ZH datasets: under `paper` (eval langs null = every language
    of each task) a section without its own `eval.langs` would score about five times as many cells per model."""
    for r in section_requests(name, "paper"):
        langs = {c.language for c in ex.eval_cells(r.variant, "paper", r.overrides, r.translation) if c.task != "flores"}
        assert langs == {"en", "zh"}, f"{name}: {r.variant.label} ({r.variant.arch}) is evaluated in {sorted(langs)}"


def test_paper_grid_counts_items(mirror):
    """The paper's grid for Table 1: full test sets, 3 seeds, 0/5 shots, every FLORES sentence."""
    grid = resolve_grid("paper", ("bilingual",))
    by = {(g.cell.model, g.cell.task, g.cell.language, g.cell.shots, g.cell.seed): g for g in grid.cells}
    xnli = by[("facebook/xglm-564M", "xnli", "zh", 5, 2)]
    # the mirror's XNLI test split is unlabelled: xnli.yaml scores validation (2,490) less a 200-item holdout
    assert (xnli.n_items, xnli.candidates) == (2290, 3) and xnli.gpu_seconds > 0
    assert by[("facebook/xglm-564M", "flores", "en-zh", 5, 1)].n_items == 1012
    big = by[("facebook/xglm-7.5B", "xnli", "zh", 5, 2)]
    assert big.gpu_seconds > 10 * xnli.gpu_seconds          # scales with parameters
    assert not grid.problems
    seeds = {k[4] for k in by if k[1] == "xnli"}
    assert seeds == {0, 1, 2} and {k[3] for k in by if k[1] == "xnli"} == {0, 5}


def test_plan_file_holds_the_grid_and_the_commands_evaluate_it(tmp_path):
    plan = resolve_plan("smoke", sections=("bilingual", "ablation"), grid=True)
    data = json.loads(plan.to_json())
    cells = [Cell.from_json(d) for d in data["eval"]["cells"]]
    assert cells == [g.cell for g in plan.grid.cells] and all("n_items" in d for d in data["eval"]["cells"])
    script = launch_commands(plan).splitlines()
    evaluate = [i for i, line in enumerate(script) if line.startswith("torchrun --nproc_per_node 8 -m afp_lib evaluate")]
    train = [i for i, line in enumerate(script) if " -m afp_lib train " in line]
    assert evaluate == [len(script) - 1] and (not train or max(train) < evaluate[0])
    assert script[-1].endswith("--plan results/paper_plan.json")


def test_paper_notebook_reports_missing_cells_with_the_command(monkeypatch, tmp_path):
    """Under `paper` a notebook only reads the cache: a missing cell stops it with the command that fills it,
    unless it may evaluate in place."""
    monkeypatch.setenv("AFP_RUNS", str(tmp_path))
    v = ex.Variant("vanilla", "xglm")
    monkeypatch.setattr(ex, "load", mock.MagicMock(side_effect=AssertionError("must not load a model")))
    with pytest.raises(ex.MissingEvaluation, match="torchrun --nproc_per_node 8 -m afp_lib evaluate --plan"):
        ex.evaluate(v, "paper", overrides={"tasks": ["xcopa"], "langs": ["zh"], "shots": [0], "seeds": [0]},
                    translation=False)
    # the cells present: the records come back without loading any model
    for c in ex.eval_cells(v, "paper", {"tasks": ["xcopa"], "langs": ["zh"], "shots": [0], "seeds": [0]}, False):
        from afp_lib.eval.runner import write_cell
        write_cell(c, [{"model": c.model, **c.unit, "metric": "acc", "value": 55.0, "n_items": 500}])
    recs = ex.evaluate(v, "paper", overrides={"tasks": ["xcopa"], "langs": ["zh"], "shots": [0], "seeds": [0]},
                       translation=False)
    assert [(r["task"], r["language"], r["value"], r["model"]) for r in recs] == [("xcopa", "zh", 55.0, "xglm-paper")]
