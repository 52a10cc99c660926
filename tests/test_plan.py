"""The paper plan: every notebook run resolved, shared runs deduplicated, the paper's models, data and
hyperparameters; the dry run trains every distinct configuration on tiny models (offline, seconds)."""
import csv
import json
import math
import subprocess
import sys

import pytest

from afp_lib.plan import DS_CONFIG, main, resolve_plan, section_variants
from afp_lib.plan import resolve as resolve_mod
from afp_lib.plan.dryrun import distinct_runs
from afp_lib.plan.facts import BACTRIAN_X_LANGS, HubModel, Throughput
from afp_lib.paths import repo_root
from afp_lib.trainer.config import EVAL_SOURCES
from afp_lib.trainer.runs import run_key

PAPER_MODELS = {"facebook/xglm-564M", "facebook/xglm-1.7B", "facebook/xglm-7.5B", "bigscience/bloom-560m",
                "bigscience/bloom-1b7", "bigscience/bloom-7b1", "huggyllama/llama-7b"}


@pytest.fixture(scope="module")
def plan():
    return resolve_plan("paper")


def runs_of(plan, section):
    return [r for r in plan.runs if any(u.startswith(section + ":") for u in r.used_by)]


def test_every_run_once_with_its_cache_key(plan):
    keys = [r.key for r in plan.runs]
    assert len(keys) == len(set(keys)) == sum(s["new_runs"] for s in plan.sections.values())
    assert all(r.key == run_key(r.cfg, r.hub_id) and r.run_dir.endswith(r.key) for r in plan.runs)
    # the XGLM-564M AFP run is the one run behind six notebook models
    shared = next(r for r in plan.runs if r.hub_id == "facebook/xglm-564M" and "bilingual:AFP" in r.used_by)
    assert {"mcl_layer:layer 1", "p_src:p_src 0.5", "ablation:w/ AFP", "appendix:pooling mean",
            "appendix:alpha 1.5"} <= set(shared.used_by)


def test_sections_resolve_to_the_papers_runs(plan):
    table1 = [r for r in plan.runs if any(u == "bilingual:AFP" for u in r.used_by)]
    assert {r.hub_id for r in table1} == PAPER_MODELS and len(table1) == len(PAPER_MODELS)
    assert set(plan.vanilla) == PAPER_MODELS
    baselines = {r.objective for r in runs_of(plan, "bilingual") if r.hub_id == "facebook/xglm-564M"}
    assert baselines == {"afp", "clm", "bit", "cit", "mcl"}
    layers = section_variants("mcl_layer", "paper")
    assert len(layers) == 20 and plan.sections["mcl_layer"]["new_runs"] == 16   # + 2 vanilla; layer 1 is Table 1's run
    assert [v.arch for v in layers if v.vanilla] == ["xglm", "bloom"]
    multi = runs_of(plan, "multilingual")
    assert {(r.hub_id.split("/")[1], r.policy) for r in multi if r.policy == "pairwise"} == {
        ("xglm-564M", "pairwise"), ("bloom-560m", "pairwise")}
    assert len(multi) == 8 and all(r.langs == ["zh", "th", "tr", "sw"] for r in multi)
    every = runs_of(plan, "all_languages")
    assert {r.hub_id for r in every} == {"facebook/xglm-7.5B", "bigscience/bloom-7b1"}
    assert all(sorted(r.langs) == sorted(set(BACTRIAN_X_LANGS) - {"en"}) and len(r.langs) == 51 for r in every)
    assert {(r.pooling, r.alpha) for r in runs_of(plan, "appendix")} == {
        ("mean", 1.5), ("max", 1.5), ("last", 1.5), ("mean", 1.0), ("mean", 2.0)}


def test_paper_hyperparameters_and_data(plan):
    for r in plan.runs:
        c = r.cfg
        assert (c.optim.lr, tuple(c.optim.betas), c.mcl.temperature, c.steps, r.global_batch, c.seq_len) == (
            1.0e-5, (0.9, 0.999), 0.05, 10000, 128, 512)
        assert (c.backend, c.zero_stage, c.precision) == ("deepspeed", 2, "bf16")
        assert not set(c.data.sources) & set(EVAL_SOURCES) and set(r.sources) <= {"opus100", "bactrian"}
        assert all(n == 67_000 for n in r.sources["bactrian"].values())
    zh = next(r for r in plan.runs if r.langs == ["zh"] and r.objective == "afp")
    assert zh.sources["opus100"] == {"zh": 100_000} and zh.mcl_pairs == 167_000   # "167k parallel samples" (§3.2)


def test_languages_without_opus100_pairs_take_bactrian_pairs(plan):
    """OPUS-100 has no en-sw / en-tl: those runs get their pairs from Bactrian-X, so no run is left uncovered."""
    with_sw = [r for r in plan.runs if "sw" in r.langs]
    assert with_sw and all(r.sources["opus100"]["sw"] == 0 and r.sources["bactrian"]["sw"] > 0 for r in with_sw)
    assert not [r.key for r in plan.runs if r.uncovered] and not plan.problems


def test_layer_beyond_the_model_is_a_problem(monkeypatch):
    shallow = dict(resolve_mod.HUB_MODELS, **{"facebook/xglm-564M": HubModel("xglm", 564e6, 12, 1024)})
    monkeypatch.setattr(resolve_mod, "HUB_MODELS", shallow)
    problems = resolve_plan("paper", sections=("mcl_layer",)).problems
    assert sorted(p.split(" (")[0] for p in problems if "blocks" in p) == [
        "mcl_layer:layer 16", "mcl_layer:layer 20", "mcl_layer:layer 24"]


def test_estimates_follow_the_stated_throughput(plan):
    faster = resolve_plan("paper", sections=("bilingual",), throughput=Throughput(mfu=0.7))
    by_key = {r.key: r for r in plan.runs}
    for r in faster.runs:
        assert math.isclose(r.gpu_hours * 2, by_key[r.key].gpu_hours, rel_tol=0.02)
    size = {r.hub_id: r.gpu_hours for r in plan.runs if "bilingual:AFP" in r.used_by}
    assert size["facebook/xglm-564M"] < size["facebook/xglm-1.7B"] < size["facebook/xglm-7.5B"]
    assert plan.totals["gpu_hours"] > 0 and plan.totals["optimizer_steps"] == 10000 * len(plan.runs)
    assert all(r.state_gb_per_gpu < 80 for r in plan.runs)   # ZeRO-2 model states fit an A100 80GB


def test_cli_writes_json_and_csv(tmp_path, capsys):
    out_json, out_csv = tmp_path / "plan.json", tmp_path / "plan.csv"
    assert main(["--out", str(out_json), "--out", str(out_csv), "--no-grid"]) == 0
    data = json.loads(out_json.read_text())
    rows = list(csv.DictReader(out_csv.open()))
    assert len(data["runs"]) == len(rows) == data["totals"]["runs"] > 0
    assert "TFLOP/s" in data["assumption"] and "GPU-hours" in capsys.readouterr().out


def test_committed_deepspeed_config_is_the_trainers(plan):
    from afp_lib.trainer.ds_backend import ds_config
    committed = json.loads((repo_root() / DS_CONFIG).read_text())
    assert committed == ds_config(plan.runs[0].cfg, 8, cuda=True)
    assert (committed["train_batch_size"], committed["zero_optimization"]["stage"], committed["bf16"]["enabled"]) == (
        128, 2, True)


@pytest.mark.multiprocess
@pytest.mark.slow
def test_dry_run_trains_every_distinct_configuration(plan, tmp_path):
    """The CLI in its own process (DeepSpeed's communication state is process-global), as CI runs it."""
    pytest.importorskip("deepspeed")
    out = tmp_path / "dry_run.json"
    proc = subprocess.run([sys.executable, "-m", "afp_lib", "paper-plan", "--dry-run", "--report", str(out)],
                          cwd=repo_root(), capture_output=True, text=True, timeout=600)
    report = json.loads(out.read_text())
    distinct = distinct_runs(plan)
    assert [r["key"] for r in report["runs"]] == [r.key for r in distinct]
    covered = {(f, getattr(r, f)) for r in distinct for f in ("objective", "layer", "pooling", "policy", "family", "p_src")}
    everything = {(f, getattr(r, f)) for r in plan.runs for f in ("objective", "layer", "pooling", "policy", "family", "p_src")}
    assert covered == everything
    failed = {r["name"] for r in report["runs"] if r.get("error")}
    assert failed == set(report["blocked"]), report["failures"]
    assert not report["blocked"] and not failed, report["failures"]   # sw/tl runs train on Bactrian-X pairs
    assert all(math.isfinite(r["loss"]) for r in report["runs"] if not r.get("error"))
    assert report["deepspeed"]["paper_config"] == {"train_batch_size": 128, "micro_batch_per_gpu": 16,
                                                   "zero_stage": 2, "bf16": True}
    assert math.isfinite(report["deepspeed"]["loss"])
    assert report["eval"]["tasks"] == ["flores", "pawsx", "xcopa", "xnli", "xstorycloze", "xwinograd"]
    assert proc.returncode == (1 if report["failures"] else 0), proc.stdout[-2000:] + proc.stderr[-2000:]


def test_launch_commands_hit_the_notebooks_run_cache(plan, capsys):
    """Each launch line, parsed by the trainer's own CLI, names the run folder the notebooks will look in."""
    import shlex

    from afp_lib.plan import launch_commands
    from afp_lib.trainer import cli as train_cli
    script = launch_commands(plan)
    lines = [line for line in script.splitlines() if line.startswith("torchrun --nproc_per_node 8 -m afp_lib train")]
    assert len(lines) == len(plan.runs)
    by_dir = {r.run_dir: r for r in plan.runs}
    for line in lines[:2] + [line for line in lines if "af, ar" in line][:1] + lines[-2:]:
        capsys.readouterr()
        assert train_cli.main(shlex.split(line.split(" || fail ")[0])[6:] + ["--dry-run"]) == 0
        assert capsys.readouterr().out.strip().splitlines()[-1] in by_dir
