"""The GPU rehearsal's pieces that run without a GPU: the published configs of the family registry (parameter
counts on the meta device), the per-block arithmetic, the wheel check, and the script's CPU dry run."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from afp_lib.families import FAMILIES, hub_checkpoint
from afp_lib.trainer import rehearse

ROOT = Path(__file__).resolve().parent.parent
WITH_CONFIG = [c.name for f in FAMILIES.values() for c in f.hub if c.config]


@pytest.mark.parametrize("name", WITH_CONFIG)
def test_registry_configs_build_the_published_sizes(name):
    """Each HubCheckpoint.config builds a model of the entry's own parameter count, depth and width."""
    _, ckpt = hub_checkpoint(name)
    with torch.device("meta"):
        model = rehearse.build(name)
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - ckpt.params) / ckpt.params < 0.01, (n, ckpt.params)
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (ckpt.n_layers, ckpt.d_model)


def test_paper_7b_shapes_and_embeddings():
    with torch.device("meta"):
        xglm, llama = rehearse.build("xglm-7.5B", layers=2), rehearse.build("llama-7b", layers=2)
    assert rehearse.embedding_params(xglm) == 256008 * 4096           # tied: counted once
    assert rehearse.embedding_params(llama) == 2 * 32000 * 4096       # untied LM head
    with pytest.raises(ValueError, match=r"'gpt-9' is not registered.*xglm-7.5B"):
        rehearse.build("gpt-9")
    with pytest.raises(ValueError, match=r"facebook/xglm-1.7B: no published config"):
        rehearse.build("xglm-1.7B")


def test_per_layer_difference_and_sharded_estimate():
    """A cost linear in depth is recovered exactly; ZeRO-2 over 8 removes 14 x 7/8 bytes per parameter."""
    def run(layers):  # 3 GiB fixed + 0.5 GiB per block allocated, 0.75 reserved; 0.1 s + 0.02 s per block
        return {"layers": layers, "peak_allocated_gib": 3 + 0.5 * layers, "peak_reserved_gib": 4 + 0.75 * layers,
                "step_s_mean": 0.1 + 0.02 * layers, "params": 1e9 + 2e8 * layers, "tokens_per_step": 1000}
    p = rehearse.per_layer([run(4), run(2)], full_layers=32, shard=8)
    assert p["depths"] == [2, 4] and p["peak_allocated_gib_per_layer"] == 0.5
    assert p["peak_allocated_gib_full"] == 19 and p["peak_reserved_gib_full"] == 28
    assert p["params_full"] == 1e9 + 2e8 * 32 and p["step_s_mean_full"] == pytest.approx(0.74)
    assert p["tokens_per_s_full"] == pytest.approx(1000 / 0.74, abs=0.1)
    saved = (1e9 + 2e8 * 32) * 14 * (1 - 1 / 8) / 2**30
    assert p["peak_allocated_gib_full_sharded"] == pytest.approx(19 - saved, abs=1e-3)
    assert "shard" not in rehearse.per_layer([run(2), run(4)], 32, 8, zero2=False)


@pytest.mark.slow
def test_sweep_extrapolates_to_the_registry_size(tmp_path):
    """`--depths` on a cut-down Llama in one CPU process: both depths, with and without checkpointing, and
    the parameter count extrapolated to 32 blocks equals the 32-block model's own."""
    out = tmp_path / "r.json"
    assert rehearse.main(["--arch", "llama-7b", "--width", "32", "--vocab", "256", "--depths", "1,2", "--steps", "2",
                          "backend=torch", "device=cpu", "precision=fp32", "batch_size=2", "seq_len=16",
                          "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert [(x["layers"], x["gradient_checkpointing"]) for x in r["runs"]] == [(1, False), (2, False), (1, True),
                                                                             (2, True)]
    assert all(x["packed"] and x["tokens_per_s"] > 0 and x["mfu_nonembedding"] is None for x in r["runs"])
    with torch.device("meta"):
        full = rehearse.build("llama-7b", vocab=256, width=32)
    for name in ("no_ckpt", "ckpt"):
        assert r["per_layer"][name]["params_full"] == sum(p.numel() for p in full.parameters())
        assert r["per_layer"][name]["full_layers"] == 32 and "shard" not in r["per_layer"][name]  # torch backend


def test_wheel_check_names_the_missing_package(tmp_path):
    listing = tmp_path / "wheels.txt"
    listing.write_text("# comment\njson5==1.0 json\nnot-a-package==0.1 afp_no_such_module  # needed\n")
    res = subprocess.run([sys.executable, str(ROOT / "scripts/check_rehearsal_wheels.py"), str(listing)],
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert "not-a-package==0.1 (import afp_no_such_module: ModuleNotFoundError" in res.stderr
    assert "json5" not in res.stderr
    listing.write_text("deepspeed\n")
    res = subprocess.run([sys.executable, str(ROOT / "scripts/check_rehearsal_wheels.py"), str(listing)],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "wheels.txt:1: expected '<distribution>==<version> <import name>'" in res.stderr


def test_wheel_list_pins_every_package():
    lines = [l.split("#")[0].split() for l in (ROOT / "scripts/rehearsal_wheels.txt").read_text().splitlines()]
    names = {l[0].split("==")[0] for l in lines if l}
    assert {"deepspeed", "hjson", "pydantic", "datasets", "ninja"} <= names
    assert all(len(l) == 2 and "==" in l[0] for l in lines if l)


@pytest.mark.multiprocess
@pytest.mark.slow
def test_dry_run_of_the_gpu_script(tmp_path):
    """scripts/gpu_rehearsal.sh --dry-run: the same launcher (torch.distributed.run), arguments and summary
    as on the GPU, on the CPU with cut-down models (one sweep, the torch backend, to keep it short)."""
    env = {**os.environ, "OUT": str(tmp_path), "PY": sys.executable, "BACKEND": "torch", "ARCHS": "bloom-7b1"}
    res = subprocess.run(["bash", str(ROOT / "scripts/gpu_rehearsal.sh"), "--dry-run"], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=900)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["dry_run"] and [a["attempt"] for a in summary["attempts"]] == ["xglm-564M-paper-path",
                                                                                 "bloom-7b1-per-block"]
    assert all(a["status"] == "ok" for a in summary["attempts"]), summary
    first, sweep = summary["attempts"]
    assert first["runs"][0]["packed"] and first["seq_len"] == 32 and first["runs"][0]["layers"] == 1
    assert set(sweep["per_layer"]) == {"no_ckpt", "ckpt"} and sweep["per_layer"]["ckpt"]["full_layers"] == 30
    md = (tmp_path / "summary.md").read_text()
    assert "| xglm-564M-paper-path | ok |" in md and "| bloom-7b1 (30 blocks; measured at 1 and 2) | on |" in md
