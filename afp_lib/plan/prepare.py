"""`python -m afp_lib prepare {train,score} --section S [--profile P]`: a section's training runs, then its
evaluation cells, computed ahead of its notebook, each as its own DVC stage.

A section notebook trains and scores what it is missing itself, so one stage could hold hours of work (the
bilingual section: five runs, four models scored, the probes). These two commands do the same work through the
same caches (`experiment.run_dir`, `experiment.evaluate`: the run cache and one file per evaluation cell),
asked for by the same declarations (`sections.section_runs`, `plan.grid.section_requests`, which
tests/test_eval_grid.py holds to the notebooks' own calls), so the notebook that follows only reads. Runs and
cells another section already made are cache hits, as in the notebooks.

Each writes a manifest, `results/<profile>/prepared/<section>-{train,score}.json`: the run folders and cell
files it made or found, as paths under runs/. It names what the section's numbers come from and orders the
stages for DVC (train -> score -> section); it holds no times or absolute paths, so it is the same bytes on
every machine. The paper profile trains on GPUs (`paper-plan --commands`) and fills the grid with `evaluate
--plan`: there these commands only list what those would make."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from ..atomic import write_text
from ..config import Parser, default_profile, user_input
from ..paths import results_dir, runs_dir

logger = logging.getLogger(__name__)

STEPS = ("train", "score")


def manifest_file(profile: str, name: str, step: str) -> Path:
    return results_dir(profile) / "prepared" / f"{name}-{step}.json"


def _under_runs(path: Path | str) -> str:
    """`runs/...` as a relative POSIX path: the manifest must not depend on where the checkout lies."""
    return "runs/" + Path(path).resolve().relative_to(runs_dir().resolve()).as_posix()


def _require_base_models(name: str, profile: str) -> None:
    """A run's key and its cells' folder hold its base model's identity (a hash of its weights): listing
    without the base model would name other folders (`model_ref` falls back to a path), so it must be there."""
    from ..sections import section_variants
    from ..world import base_model
    for arch in dict.fromkeys(v.arch for v in section_variants(name, profile)):
        base_model(profile, arch)   # FileNotFoundError naming the command that makes it


def train(name: str, profile: str, build: bool = True) -> dict:
    """Every aligned model of section `name` (its params block's `runs:`), trained unless in the run cache."""
    from ..experiment import model_ref, run_dir
    from ..sections import section_runs
    _require_base_models(name, profile)
    runs: dict[str, list[str]] = {}   # run folder -> the section's models it is (a run can serve two groups)
    for group, variants in section_runs(name, profile).items():
        for v in (v for v in variants if not v.vanilla):   # model_ref: the folder's final/, without training
            folder = _under_runs(run_dir(v, profile) if build else Path(model_ref(v, profile)).parent)
            runs.setdefault(folder, []).append(f"{group}:{v.name(profile)}")
    return {"section": name, "profile": profile, "step": "train", "runs": runs}


def score(name: str, profile: str, build: bool = True) -> dict:
    """Every evaluation cell of section `name`'s notebook, evaluated unless in the cache (training a missing
    model first, as the notebook would)."""
    from ..eval.runner import cell_file
    from ..experiment import eval_cells, evaluate
    from .grid import section_requests
    _require_base_models(name, profile)
    cells = set()   # a cell two requests share (a model in two groups) is listed once
    for r in section_requests(name, profile):
        if build:
            evaluate(r.variant, profile, r.overrides, r.translation, evaluate_missing=True)
        cells |= {_under_runs(cell_file(c)) for c in eval_cells(r.variant, profile, r.overrides, r.translation)}
    return {"section": name, "profile": profile, "step": "score", "cells": sorted(cells)}


def main(argv: list[str] | None = None) -> int:
    ap = Parser(prog="python -m afp_lib prepare", description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=STEPS, help="train: the section's runs; score: its evaluation cells")
    ap.add_argument("--section", required=True, help="a notebook section (afp_lib.sections.NOTEBOOKS)")
    ap.add_argument("--profile", default=None, help="smoke | mini | paper (default: params.yaml `profile`)")
    ap.add_argument("--list", action="store_true", help="write the manifest of what it would make, making nothing "
                    "(the paper profile always lists: it trains and scores on GPUs)")
    ap.add_argument("--out", type=Path, help="the manifest (default: results/<profile>/prepared/<section>-<step>.json)")
    args = ap.parse_args(argv)
    from ..paths import SECTIONS
    if args.section not in SECTIONS:
        import difflib
        near = difflib.get_close_matches(args.section, SECTIONS, n=1)
        ap.error(f"unknown section {args.section!r}" + (f"; did you mean {near[0]!r}?" if near else "")
                 + f" (known: {', '.join(SECTIONS)})")
    profile = args.profile or default_profile()
    from ..analysis.notebook import configure
    configure()   # the notebooks' logging: paths relative, no progress bars
    build = profile != "paper" and not args.list
    if profile != "paper":
        from .. import world
        world.ensure_world(profile)   # smoke's toy models (the base models of its runs); mini's corpus
    t0 = time.time()
    with user_input():
        out = {"train": train, "score": score}[args.step](args.section, profile, build)
    made = out["runs"] if args.step == "train" else out["cells"]
    note = "" if build else " (listed, nothing made)" if profile != "paper" else \
        " (listed: the paper profile trains and scores on GPUs, docs/paper-profile.md)"
    logger.info("%s %s (%s): %d %s in %.0fs%s", args.step, args.section, profile, len(made),
                "runs" if args.step == "train" else "cells", time.time() - t0, note)
    path = args.out or manifest_file(profile, args.section, args.step)
    write_text(path, json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {path}")
    return 0
