"""`python -m afp_lib prepare {train,score}`: a section's runs and evaluation cells made ahead of its notebook,
through the same caches, so that the notebook stage only reads them (dvc.yaml prepare_train/prepare_score)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow   # the CLI trains and scores in subprocesses (about 90 s in all)

ROOT = Path(__file__).resolve().parent.parent
SECTION = "p_src"   # smoke: vanilla and two aligned runs, scored 0-shot; seconds


def prepare(step, runs, out, *extra):
    env = {**os.environ, "AFP_RUNS": str(runs), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "afp_lib", "prepare", step, "--section", SECTION, "--profile",
                           "smoke", "--out", str(out), *extra], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(Path(out).read_text(encoding="utf-8")), done.stderr


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, mirror_env):
    tmp = tmp_path_factory.mktemp("prepared")
    train, _ = prepare("train", tmp / "runs", tmp / "train.json")
    score, log = prepare("score", tmp / "runs", tmp / "score.json")
    return tmp, train, score, log


@pytest.fixture(scope="module")
def mirror_env():
    mirror = ROOT.parent / "shared" / "afp-data"
    if not os.environ.get("AFP_DATA_MIRROR") and not mirror.is_dir():
        pytest.skip("no data mirror beside the checkout")
    old = os.environ.get("AFP_DATA_MIRROR")
    os.environ["AFP_DATA_MIRROR"] = old or str(mirror)
    yield
    if old is None:
        os.environ.pop("AFP_DATA_MIRROR", None)


def test_prepare_makes_every_run_and_cell_the_notebook_reads(prepared, monkeypatch):
    from afp_lib.eval.runner import read_cell
    from afp_lib.experiment import eval_cells, model_ref
    from afp_lib.plan.grid import section_requests
    from afp_lib.sections import section_runs
    tmp, train, score, log = prepared
    monkeypatch.setenv("AFP_RUNS", str(tmp / "runs"))
    aligned = [v for vs in section_runs(SECTION, "smoke").values() for v in vs if not v.vanilla]
    assert len(train["runs"]) >= 2 and sorted(train["runs"]) == sorted(
        {"runs/" + Path(model_ref(v, "smoke")).parent.relative_to(tmp / "runs").as_posix() for v in aligned})
    for folder in train["runs"]:
        assert (tmp / folder / "final" / "config.json").is_file()
    wanted = [c for r in section_requests(SECTION, "smoke") for c in eval_cells(r.variant, "smoke", r.overrides,
                                                                             r.translation)]
    assert wanted and [c.key() for c in wanted if read_cell(c) is None] == []   # the notebook would evaluate nothing
    assert len(score["cells"]) == len(set(wanted)) and all((tmp / c).is_file() for c in score["cells"])
    assert "cells evaluated" in log                                          # it did evaluate them


def test_prepare_again_finds_everything_and_writes_the_same_manifest(prepared):
    tmp, train, score, _ = prepared
    before = {c: (tmp / c).stat().st_mtime_ns for c in score["cells"]}
    again, _ = prepare("train", tmp / "runs", tmp / "train2.json")
    rescored, log = prepare("score", tmp / "runs", tmp / "score2.json")
    assert (again, rescored) == (train, score)
    assert (tmp / "train.json").read_bytes() == (tmp / "train2.json").read_bytes()
    assert "cells evaluated" not in log and {c: (tmp / c).stat().st_mtime_ns for c in score["cells"]} == before


def test_the_listing_without_building_is_the_same_manifest(prepared, monkeypatch):
    """What the paper profile writes (it trains on GPUs): the folders and files a build would make, unbuilt.
    A run's key holds its base model's identity (a hash of the weights), so the base models must be there."""
    import shutil

    from afp_lib.plan import prepare as prep
    tmp, train, score, _ = prepared
    shutil.copytree(tmp / "runs" / "world", tmp / "elsewhere" / "world")   # the base models, no runs or cells
    monkeypatch.setenv("AFP_RUNS", str(tmp / "elsewhere"))   # listing must not train or score
    assert prep.train(SECTION, "smoke", build=False) == train
    assert prep.score(SECTION, "smoke", build=False) == score
    assert not (tmp / "elsewhere" / "align").exists() and not (tmp / "elsewhere" / "eval").exists()
    monkeypatch.setenv("AFP_RUNS", str(tmp / "empty"))       # without the base models: refused, not other keys
    with pytest.raises(FileNotFoundError, match="has no pretrained xglm model yet"):
        prep.train(SECTION, "smoke", build=False)


def test_a_prepared_run_is_the_notebooks_run_bit_for_bit(prepared, monkeypatch):
    """The CLI process trains the very weights the notebook's in-process call would (threads and precision
    pinned by the profile, not inherited), so a notebook reading a prepared run reads its own model."""
    from afp_lib.experiment import run_dir
    from afp_lib.sections import section_runs
    tmp, train, _, _ = prepared
    v = next(v for vs in section_runs(SECTION, "smoke").values() for v in vs if not v.vanilla)
    import shutil
    shutil.copytree(tmp / "runs" / "world", tmp / "in_process" / "world")   # the same base model, no runs
    monkeypatch.setenv("AFP_RUNS", str(tmp / "in_process"))
    here = run_dir(v, "smoke")
    name = here.relative_to(tmp / "in_process").as_posix()
    assert "runs/" + name in train["runs"]
    ours = (here / "final" / "model.safetensors").read_bytes()
    assert ours == (tmp / "runs" / name / "final" / "model.safetensors").read_bytes()
