"""`repro-check` refuses to compare committed files with themselves; generated outputs are ignored by git;
`dvc plots show` pages work offline (docs/cli.md)."""
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from afp_lib import reprocheck

ROOT = Path(__file__).resolve().parent.parent
METRICS = {"icl_accuracy": {"xglm-mini 0-shot": 45.625}, "best_layer": {"xglm": 2}}


def git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


@pytest.fixture
def clone(tmp_path, monkeypatch):
    """A committed repository with two metrics files, as a fresh clone has them (AFP_ROOT points there)."""
    repo = tmp_path / "repo"
    (repo / "results/mini/metrics").mkdir(parents=True)
    (repo / "params.yaml").write_text("profile: mini\n")
    (repo / "dvc.yaml").write_text("stages: {}\n")
    for name in ("a.json", "b.json"):
        (repo / "results/mini/metrics" / name).write_text(json.dumps(METRICS))
    (repo / "results/world/mini").mkdir(parents=True)
    (repo / "results/world/mini/diagnostic.json").write_text(json.dumps({"xglm": {"ppl": {"en": 82.3}}}))
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "results")
    monkeypatch.setenv("AFP_ROOT", str(repo))
    return repo


def later(path: Path, seconds: float = 600) -> None:
    """As if a repro had written `path` `seconds` after the checkout (same content)."""
    t = time.time() + seconds
    os.utime(path, (t, t))


def test_untouched_clone_is_not_called_reproduced(clone, capsys):
    assert reprocheck.main(["--profile", "mini"]) == 3
    err = capsys.readouterr().err
    assert "nothing was regenerated" in err and "the 3 metrics files" in err and "reproduced" not in err


def test_regenerated_files_are_compared_and_the_others_named(clone, capsys):
    later(clone / "results/mini/metrics/a.json")          # rewritten by a repro, identical numbers
    assert reprocheck.main(["--profile", "mini"]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 committed numbers reproduced within tolerance (1 files)" in out
    assert "note results/mini/metrics/b.json: not regenerated since the checkout" in out
    changed = {**METRICS, "icl_accuracy": {"xglm-mini 0-shot": 50.0}}    # a different number: written, compared
    (clone / "results/mini/metrics/b.json").write_text(json.dumps(changed))
    assert reprocheck.main(["--profile", "mini"]) == 1
    assert "FAIL results/mini/metrics/b.json: icl_accuracy.xglm-mini 0-shot" in capsys.readouterr().out


def test_a_changed_configuration_makes_older_results_stale(clone, capsys):
    later(clone / "results/mini/metrics/a.json", 600)
    later(clone / "params.yaml", 1200)                    # edited after the repro
    assert reprocheck.main(["--profile", "mini"]) == 3


@pytest.mark.parametrize("path,ignored", [
    ("results/eval/xglm.jsonl", True), ("results/analysis/representations.csv", True),
    ("figures/analysis/tsne.png", True), ("results/world/smoke/diagnostic.json", True),
    ("figures/world/smoke/diagnostic.png", True), ("results/smoke/metrics/bilingual.json", True),
    ("figures/smoke/bilingual/fig1.png", True), ("runs/align/x/final/result.json", True),
    ("results/world/mini/diagnostic.json", True), ("figures/world/mini/diagnostic.png", True),
    ("runs/world/mini/xglm/config.json", True), ("runs/world/mini/corpus/stats.json", True),
    ("runs/models/gemma3-270m/model.safetensors", True),
    ("results/mini/metrics/bilingual.json", False), ("figures/mini/bilingual/fig1.png", False),
    ("results/mini/prepared/bilingual-train.json", False), ("results/smoke/prepared/bilingual-train.json", True),
])
def test_generated_outputs_are_ignored_by_git(path, ignored):
    done = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT)
    assert (done.returncode == 0) == ignored


def test_dvc_plots_template_needs_no_network():
    """`.dvc/config` names an HTML template that carries vega, vega-lite and vega-embed itself: no CDN."""
    config = (ROOT / ".dvc/config").read_text()
    name = re.search(r"html_template\s*=\s*(\S+)", config).group(1)
    page = (ROOT / ".dvc" / name).read_text(encoding="utf-8")
    assert "{plot_divs}" in page and "{scripts}" not in page   # dvc_render's CDN <script> tags go in {scripts}
    assert not re.search(r"<script[^>]+src=", page)
    for lib in ("vega", "vegaLite", "vegaEmbed"):
        assert f").{lib}=" in page or f".{lib}=" in page, lib
