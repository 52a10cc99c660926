"""`evaluate --plan` sharded over ranks: a 2-process gloo run (torchrun) of a smoke-profile grid writes
exactly the records of a 1-process run, and a run stopped part way then relaunched leaves no cell missing
or duplicated. Tiny random models, the shared mirror's test sets; seconds."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from afp_lib.eval import load_eval_config
from afp_lib.eval.runner import assign, cell_file, config_cells, read_cell, work_units

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def smoke_plan(tmp_path, tiny_models, toy_tokenizer, mirror):
    """A plan file holding the smoke profile's eval grid (ICL and translation) for two tiny saved models."""
    cells = []
    for arch in ("xglm", "llama"):
        folder = tmp_path / "models" / arch
        tiny_models[arch].save_pretrained(folder)
        toy_tokenizer.save_pretrained(folder)
        cfg = load_eval_config("smoke", overrides={"shots": [0, 1], "seeds": [0, 1]})
        cells += config_cells(cfg, str(folder))
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"eval": {"cells": [{**c.to_json(), "gpu_seconds": 1.0 + i % 3}
                                                   for i, c in enumerate(cells)]}}))
    return path, cells


def records(cells, root):
    out = {}
    for c in cells:
        recs = read_cell(c, root)
        out[c] = None if recs is None else [{k: v for k, v in r.items() if k != "seconds"} for r in recs]
    return out


def torchrun(plan, runs, *extra):
    env = {**os.environ, "AFP_RUNS": str(runs), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "afp_lib", "evaluate", "--plan", str(plan), *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_assignment_is_deterministic_largest_first_and_disjoint(smoke_plan):
    _, cells = smoke_plan
    units = work_units([(c, 1.0 + i % 3) for i, c in enumerate(cells)])
    assert [u[2] for u in units] == sorted((u[2] for u in units), reverse=True)
    shards = assign(units, 2)
    assert shards == assign(work_units([(c, 1.0 + i % 3) for i, c in enumerate(cells)]), 2)
    mine = [[c for u in s for c in u[1]] for s in shards]
    assert not set(mine[0]) & set(mine[1]) and sorted(map(str, mine[0] + mine[1])) == sorted(map(str, cells))
    assert all(u[1][0].group == c.group for s in shards for u in s for c in u[1])   # a group stays on one rank


@pytest.mark.multiprocess
@pytest.mark.slow
def test_two_ranks_write_the_one_rank_records_and_resume(smoke_plan, tmp_path, monkeypatch):
    """One process evaluates the grid; into a second cache, a run stopped after 3 cells (as if killed), then
    a 2-process gloo launch that resumes it: the same records, each cell once, the first 3 not redone."""
    plan, cells = smoke_plan
    one, two = tmp_path / "one", tmp_path / "two"
    from afp_lib.eval.cli import main
    monkeypatch.setenv("AFP_RUNS", str(one))
    assert main(["--plan", str(plan)]) == 0
    expected = records(cells, one / "eval")
    # per model: xnli and xcopa in en and zh x 2 shots x 2 seeds, and flores en-zh, zh-en
    assert all(expected.values()) and len(cells) == 2 * (2 * 2 * 2 * 2 + 2)

    monkeypatch.setenv("AFP_RUNS", str(two))
    assert main(["--plan", str(plan), "--max-cells", "3"]) == 1      # stopped part way: cells missing
    done = [c for c, r in records(cells, two / "eval").items() if r is not None]
    assert len(done) == 3
    stamp = {c: cell_file(c, two / "eval").stat().st_mtime_ns for c in done}

    full = torchrun(plan, two)
    assert full.returncode == 0, full.stdout[-2000:] + full.stderr[-4000:]
    assert f"{len(cells)}/{len(cells)} cells" in full.stdout
    assert records(cells, two / "eval") == expected                       # same numbers as one process
    assert all(cell_file(c, two / "eval").stat().st_mtime_ns == t for c, t in stamp.items())   # not redone
    files = sorted(p for p in (two / "eval").rglob("*") if p.is_file())
    assert len(files) == len(cells) and not [p for p in files if p.name.endswith(".tmp")]
    for c in cells:   # one record per metric, no duplicates
        metrics = [r["metric"] for r in read_cell(c, two / "eval")]
        assert len(metrics) == len(set(metrics)) == (2 if c.task == "flores" else 3)
