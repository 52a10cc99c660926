"""The evaluation grid: every cell the notebooks ask `experiment.evaluate` for, deduplicated across sections.

`section_requests(name, profile)` lists a notebook's `ex.evaluate(variant, profile, overrides, translation)`
calls: the section's declared models (`afp_lib.sections.section_runs`) with the overrides the notebook passes
(tests/test_eval_grid.py runs the notebooks' own code with a recording `evaluate` and checks the two agree);
each request expands into
cells through `experiment.eval_cells`, the function `evaluate` itself reads the cache with. So the sharded
`evaluate --plan` run writes exactly the files the notebooks then read."""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

from ..config import deep_merge
from ..eval.config import load_eval_config
from ..experiment import eval_cells
from ..sections import NOTEBOOKS, Variant, section, section_runs
from ..eval.runner import Cell, cell_file
from .facts import HUB_MODELS, EvalThroughput

logger = logging.getLogger(__name__)


SECTION_NOTEBOOKS = NOTEBOOKS


@dataclass(frozen=True)
class EvalRequest:
    """One `ex.evaluate` call of a notebook."""
    section: str
    variant: Variant
    overrides: dict | None
    translation: bool = True


def section_requests(name: str, profile: str) -> list[EvalRequest]:
    """The evaluate calls of notebook section `name`, in the notebook's order: its models are the section's
    `runs:` (afp_lib.sections), the overrides those the notebook passes."""
    sec, runs = section(name, profile), section_runs(name, profile)
    req = functools.partial(EvalRequest, name)
    if name == "bilingual":      # 01: Tables 1-2
        return [req(v, sec["eval"]) for v in runs["models"]]
    if name == "multilingual":   # 04: Tables 3-5, then Table 6 (semantic demonstrations, bridge models)
        eval_over = multilingual_eval(sec)
        out = [req(v, eval_over) for v in runs["models"]]
        k_shots = [s for s in load_eval_config(profile, overrides=eval_over).shots if s > 0]
        bridge = [v for v in runs["models"] if v.meta.get("policy") == "bridge"] if k_shots else []
        return out + [req(v, {**eval_over, "demos": "semantic", "shots": k_shots}, False) for v in bridge]
    if name == "all_languages":  # 05: Table 7, Tables 9-13
        return [req(v, {"langs": None, **sec.get("eval", {})}, False) for vs in runs.values() for v in vs]
    if name == "ablation":       # 06: Table 8
        return [req(v, {**(sec.get("eval") or {}), "shots": sec["shots"]}, False) for v in runs["models"]]
    # 02, 03, 07 (Figs. 4a, 4b, 5a-b) and any new section: every model under the block's `eval`, no translation
    return [req(v, sec.get("eval"), False) for vs in runs.values() for v in vs]


def multilingual_eval(sec: dict) -> dict:
    """Notebook 04's evaluation: XNLI and XCOPA in English and the aligned languages, and Table 4's translation
    among them at one shot count (`table4_shots`), under the block's own `eval`."""
    five = ["en", *sec["langs"]]
    return deep_merge({"tasks": ["xnli", "xcopa"], "langs": five,
                       "translation": {"langs": five, "shots": [sec["table4_shots"]]}}, sec.get("eval", {}))


@functools.lru_cache(maxsize=None)
def cell_size(task: str, language: str, max_items: int | None, demo_lang: str) -> tuple[int, int]:
    """(items scored, candidates per item) of one cell, read from the data (mirror or hub)."""
    from ..eval.tasks import TASKS, load_task_data
    if task == "flores":
        from ..eval.translation import _sentences
        n = len(_sentences(language.split("-")[0], TASKS["flores"].splits.test))
        return (n if max_items is None else min(n, max_items)), 1
    t = TASKS[task]
    data = load_task_data(t, language, max_items, demo_lang)
    return len(data.test), len(t.example(data.test[0], language).candidates) if data.test else 0


@dataclass
class GridCell:
    cell: Cell
    n_items: int | None
    candidates: int | None
    gpu_seconds: float       # estimate (EvalThroughput), what largest-first scheduling sorts by
    used_by: list[str] = field(default_factory=list)   # "section:label" of every request that reads it

    def row(self) -> dict:
        return {**self.cell.to_json(), "n_items": self.n_items, "candidates": self.candidates,
                "gpu_seconds": round(self.gpu_seconds, 2), "used_by": self.used_by}


def _params(model: str) -> float | None:
    hub = HUB_MODELS.get(model)
    if hub:
        return hub.params
    return None


def cell_seconds(cell: Cell, n_items: int, candidates: int, params: float | None, tp: EvalThroughput) -> float:
    """GPU-seconds of one cell under the measured-then-converted throughput (see EvalThroughput)."""
    if params is None:
        params = tp.ref_params   # smoke/mini folders: no hub size; only the order matters for them
    scale = params / tp.ref_params
    if cell.task == "flores":
        return n_items * scale / tp.translate_items_per_s(cell.shots)
    seed_free = cell.shots == 0 or cell.demos == "semantic"
    rows = n_items * candidates / (3 if seed_free else 1)   # a seed-free score is computed once for 3 seeds
    return rows * scale / tp.icl_rows_per_s(cell.shots)


@dataclass
class Grid:
    cells: list[GridCell]
    sections: dict[str, dict]
    problems: list[str]
    throughput: EvalThroughput

    @property
    def totals(self) -> dict:
        return {"cells": len(self.cells), "items": sum(c.n_items or 0 for c in self.cells),
                "gpu_hours": round(sum(c.gpu_seconds for c in self.cells) / 3600, 1)}

    def to_json(self) -> dict:
        return {"assumption": self.throughput.describe(), "totals": self.totals, "sections": self.sections,
                "problems": self.problems, "cells": [c.row() for c in self.cells]}


def resolve_grid(profile: str, sections: tuple[str, ...], tp: EvalThroughput | None = None,
                 sizes: bool = True) -> Grid:
    """Every cell of every section's evaluate calls, each once, with its item count and estimate."""
    tp = tp or EvalThroughput()
    cells: dict[Cell, GridCell] = {}
    summary, problems = {}, []
    for name in sections:
        before, mine = len(cells), set()
        for r in section_requests(name, profile):
            for c in eval_cells(r.variant, profile, r.overrides, r.translation):
                mine.add(c)
                if c in cells:
                    cells[c].used_by.append(f"{name}:{r.variant.label}")
                    continue
                n = cand = None
                if sizes:
                    try:
                        n, cand = cell_size(c.task, c.language, c.max_items, c.demo_lang)
                    except Exception as e:  # no mirror and no hub: the grid still lists the cell
                        problems.append(f"{name}: {c.task}/{c.language}: item count unknown ({type(e).__name__}: {e})")
                secs = cell_seconds(c, n or 0, cand or 1, _params(c.model), tp)
                cells[c] = GridCell(c, n, cand, secs, [f"{name}:{r.variant.label}"])
        summary[name] = {"requests": len(section_requests(name, profile)), "cells": len(mine),
                         "new_cells": len(cells) - before,
                         "gpu_hours": round(sum(cells[c].gpu_seconds for c in mine) / 3600, 1),
                         "new_gpu_hours": round(sum(g.gpu_seconds for g in list(cells.values())[before:]) / 3600, 1)}
    return Grid(list(cells.values()), summary, sorted(set(problems)), tp)


def cells_of_plan(data: dict) -> list[tuple[Cell, float]]:
    """(cell, estimated seconds) of a plan file's `eval.cells`."""
    if "eval" not in data or "cells" not in data["eval"]:
        raise KeyError("the plan has no `eval.cells`: write it with `python -m afp_lib paper-plan --out FILE.json`")
    return [(Cell.from_json(d), float(d.get("gpu_seconds") or 0.0)) for d in data["eval"]["cells"]]


__all__ = ["EvalRequest", "Grid", "GridCell", "cell_file", "cells_of_plan", "resolve_grid", "section_requests"]
