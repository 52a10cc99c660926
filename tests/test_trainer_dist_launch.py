"""Multi-process training through the real CLI and launcher: `torchrun --nproc_per_node 2 -m afp_lib train`
on the smoke world (gloo on CPU), for both backends. Two ranks end with identical weights equal to one
process on the joined batch; a run killed with SIGKILL and relaunched ends bit-identical to an
uninterrupted one; two launches of one run train it once. Each launch costs seconds of imports per process,
so the cases share launches where they can."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from afp_lib.models import ModelShape, build_model
from conftest import ROOT, SHARED_MIRROR

pytestmark = [pytest.mark.skipif(not SHARED_MIRROR.is_dir(), reason="../shared/afp-data is not beside the checkout"),
              pytest.mark.multiprocess, pytest.mark.slow]


def _env(runs: Path) -> dict:
    return {**os.environ, "AFP_RUNS": str(runs), "AFP_DATA_MIRROR": str(SHARED_MIRROR), "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _cmd(base: Path, overrides: list[str], nproc: int) -> list[str]:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
                if nproc > 1 else [sys.executable])
    return [*launcher, "-m", "afp_lib", "train", "--profile", "smoke", "--base-model", str(base), "device=cpu",
            *overrides]


def launch(runs: Path, base: Path, overrides: list[str], nproc: int = 2, check: bool = True):
    t0 = time.perf_counter()
    proc = subprocess.run(_cmd(base, overrides, nproc), env=_env(runs), cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    proc.seconds = time.perf_counter() - t0
    if check and proc.returncode:
        raise AssertionError(f"launch failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def run_folder(runs: Path) -> Path:
    (run,) = (runs / "align").iterdir()
    return run


def weights(run: Path) -> dict:
    return load_file(str(run / "final" / "model.safetensors"))


def log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """Two smoke-shaped XGLMs on the toy tokenizer: without dropout (step equality) and with dropout 0.1
    (the resume test: bit-identical only if every rank's RNG state is restored)."""
    from afp_lib.tokenizer import train_bpe
    from conftest import TOY_TEXT
    tok = train_bpe(TOY_TEXT + ["人人生而自由，在尊严和权利上一律平等。", "All human beings are born free."] * 20,
                    vocab_size=400, min_frequency=1)
    out = {}
    for name, dropout in (("plain", 0.0), ("dropout", 0.1)):
        folder = tmp_path_factory.mktemp(f"base-{name}")
        shape = ModelShape(d_model=32, n_layers=2, n_heads=2, ffn_dim=64, max_positions=128, dropout=dropout)
        build_model("xglm", shape, tok, seed=0).save_pretrained(folder)
        tok.save_pretrained(folder)
        out[name] = folder
    return out


@pytest.fixture(scope="module")
def joined(bases, tmp_path_factory):
    """One process, batch 8: the joined batch of two ranks of batch 4."""
    runs = tmp_path_factory.mktemp("joined")
    launch(runs, bases["plain"], ["batch_size=8", "steps=2"], nproc=1)
    return run_folder(runs)


@pytest.mark.parametrize("backend", ["torch", "deepspeed", "deepspeed zero_stage=3"])
def test_two_ranks_train_one_model_equal_to_the_joined_batch(backend, bases, joined, tmp_path):
    overrides = [f"backend={backend.split()[0]}", *backend.split()[1:]]
    proc = launch(tmp_path, bases["plain"], ["batch_size=4", "steps=2", *overrides])
    print(f"{backend}: 2-rank launch took {proc.seconds:.1f} s")
    run = run_folder(tmp_path)
    assert "x 2 ranks" in proc.stderr and proc.stderr.count("***** AFP training") == 1  # rank 0 speaks once
    assert proc.stdout.count(str(run)) == 1 and proc.stdout.strip().endswith(str(run))  # printed by rank 0 only
    result = json.loads((run / "final" / "result.json").read_text())
    if "zero_stage=3" not in backend:  # ZeRO-3 partitions the weights: no replica to compare
        assert result["ranks"] == 2 and len(set(result["weights_digests"])) == 1  # identical weights on both ranks
    ours, ref = log(run), log(joined)
    assert [r["step"] for r in ours] == [1, 2]
    for a, b in zip(ours, ref):  # the logged loss is the mean over ranks = the joined batch's loss
        for k in ("loss", "mcl", "cit"):
            assert a[k] == pytest.approx(b[k], abs=1e-5), (k, a[k], b[k])
    got, want = weights(run), weights(joined)
    diff = max(float((got[k] - want[k]).abs().max()) for k in want)
    print(f"{backend}: max |2-rank - joined| weight difference after 2 steps: {diff:.2e}")
    assert diff < 1e-5
    assert any(not torch.equal(got[k], load_file(str(bases["plain"] / "model.safetensors"))[k]) for k in got)


def test_a_two_rank_launch_is_refused_the_one_process_run(bases, joined):
    """Issue 25 item 10a: the run key leaves the world size out (one-process readers find multi-GPU runs), so
    a 2-rank launch of a config trained by one process must not report a cache hit with those weights."""
    stamp = (joined / "final" / "model.safetensors").stat().st_mtime_ns
    proc = launch(joined.parent.parent, bases["plain"], ["batch_size=8", "steps=2"], check=False)
    assert proc.returncode != 0 and "run cache hit" not in proc.stderr
    assert "trained by 1 rank(s), a global batch of 8; this launch has 2 ranks, a global batch of 16" in proc.stderr
    assert (joined / "final" / "model.safetensors").stat().st_mtime_ns == stamp


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def test_kill_9_then_relaunch_is_bit_identical(bases, tmp_path):
    overrides = ["steps=30", "save_every=5", "log_every=5", "eval_every=0", "batch_size=4"]
    whole = tmp_path / "whole"
    launch(whole, bases["dropout"], overrides)

    runs = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(bases["dropout"], overrides, 2), env=_env(runs), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not list(runs.glob("align/*/checkpoints/step-*/state.json")):
        time.sleep(0.02)
    workers = _children(proc.pid)
    assert workers, "no worker processes to kill"
    os.kill(workers[-1], signal.SIGKILL)  # one rank dies; torchrun then stops the other
    assert proc.wait(timeout=120) != 0
    run = run_folder(runs)
    assert not (run / "final").exists(), "the run finished before it could be killed"
    last = sorted(run.glob("checkpoints/step-*"))[-1]
    assert {p.name for p in last.glob("rng-rank*.pt")} == {"rng-rank0.pt", "rng-rank1.pt"}

    again = launch(runs, bases["dropout"], overrides)
    assert f"resuming {run} from step" in again.stderr
    got, want = weights(run), weights(run_folder(whole))
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert [r["step"] for r in log(run)] == [5, 10, 15, 20, 25, 30]


def test_two_launches_of_one_run_train_it_once(bases, tmp_path):
    overrides = ["steps=6", "save_every=0", "batch_size=4"]
    procs = [subprocess.Popen(_cmd(bases["plain"], overrides, 2), env=_env(tmp_path), cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-3000:] for _, e in outs]
    run = run_folder(tmp_path)
    assert sum("***** AFP training" in e for _, e in outs) == 1  # one trained, the other found it finished
    assert sum("run cache hit" in e for _, e in outs) == 1
    assert [r["step"] for r in log(run)] == [1, 2, 3, 4, 5, 6]


DEEPSPEED_CLI = Path(sys.executable).parent / "deepspeed"


@pytest.mark.skipif(not DEEPSPEED_CLI.exists(), reason="no `deepspeed` launcher beside this python")
def test_deepspeed_launcher_trains_two_ranks_equal_to_the_joined_batch(bases, joined, tmp_path):
    """`deepspeed --num_gpus 2 --module afp_lib train ...` as the issue writes it: DeepSpeed's own launcher
    (its CPU accelerator standing in for GPUs) starts each rank as `python -m afp_lib --local_rank=N train ...`
    (no --no_local_rank), and the run is the same as under torchrun."""
    import socket
    with socket.socket() as s:  # a free port: the launcher's default 29500 may be taken by another job
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [str(DEEPSPEED_CLI), "--num_gpus", "2", "--master_port", str(port), "--module", "afp_lib", "train",
           "--profile", "smoke", "--base-model", str(bases["plain"]), "device=cpu", "backend=deepspeed",
           "batch_size=4", "steps=2"]
    env = {**_env(tmp_path), "DS_ACCELERATOR": "cpu", "LOCAL_SIZE": "2"}  # LOCAL_SIZE: CPU "devices" per node
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    print(f"deepspeed launcher: 2-rank launch took {time.perf_counter() - t0:.1f} s")
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    assert "'--local_rank=1', 'train'" in proc.stdout  # the launcher really passed the argument
    run = run_folder(tmp_path)
    assert "x 2 ranks" in proc.stderr and proc.stderr.count("***** AFP training") == 1
    result = json.loads((run / "final" / "result.json").read_text())
    assert result["ranks"] == 2 and len(set(result["weights_digests"])) == 1
    for a, b in zip(log(run), log(joined)):
        for k in ("loss", "mcl", "cit"):
            assert a[k] == pytest.approx(b[k], abs=1e-5), (k, a[k], b[k])
    got, want = weights(run), weights(joined)
    assert max(float((got[k] - want[k]).abs().max()) for k in want) < 1e-5
