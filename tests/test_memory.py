"""Memory per GPU, the checkpointing decision and the GPU-hours of the paper plan (afp_lib.trainer.memory and
resolve.estimate), the CPU-measured activation constants, and train_all.sh going on past a failed run."""
import dataclasses
import importlib.util
import os
import subprocess
from pathlib import Path

import pytest
import torch

import afp_lib.losses as losses
from afp_lib.plan import launch_commands, resolve_plan
from afp_lib.plan.facts import HUB_HEADS_VOCAB, HUB_MODELS, Throughput
from afp_lib.trainer.memory import ACT_BYTES, MemoryModel, Shape, estimate, resolve_checkpointing, shape_of
from afp_lib.plan.resolve import estimate as run_estimate
from afp_lib.trainer.config import load_train_config, replace

SEVEN_B = {"facebook/xglm-7.5B", "bigscience/bloom-7b1", "huggyllama/llama-7b"}


@pytest.fixture(scope="module")
def plan():
    return resolve_plan("paper", sections=("bilingual",))


def shape(hub):
    m = HUB_MODELS[hub]
    return Shape(m.family, m.params, m.n_layers, m.d_model, *HUB_HEADS_VOCAB[hub])


def test_activation_constants_are_what_the_cpu_measures():
    """ACT_BYTES is bench/activation_memory.py's measurement (saved tensors of one bf16 block in train mode):
    if transformers changes what a block keeps, this fails and the constants are re-measured."""
    spec = importlib.util.spec_from_file_location("activation_memory", Path(__file__).parent.parent / "bench" /
                                                  "activation_memory.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    from afp_lib.tokenizer import train_bpe
    tok = train_bpe(["a b c d e f g h i j k l m n o p"] * 20, vocab_size=300, min_frequency=1)
    for hub, s in bench.MODELS.items():
        per_hidden, per_score = ACT_BYTES[s["arch"]]
        for seq in bench.SEQS:
            measured = bench.block_bytes_per_token(s, tok, seq)
            assert measured == pytest.approx(per_hidden * s["d"] + per_score * s["heads"] * seq, rel=0.01), (hub, seq)


def test_7b_runs_checkpoint_and_then_fit_an_a100(plan):
    """`gradient_checkpointing: auto` (train.paper): on exactly where the estimate without it exceeds 90% of
    80 GB (the three 7B models), and every run's estimate with the decision fits."""
    table1 = {r.hub_id: r for r in plan.runs if "bilingual:AFP" in r.used_by}
    assert {h for h, r in table1.items() if r.checkpointing} == SEVEN_B
    for hub, r in table1.items():
        off = estimate(shape(hub), r.cfg, 8, False)["total"]
        assert (off > 72) == r.checkpointing, hub
        assert r.mem_gb_per_gpu == estimate(shape(hub), r.cfg, 8, r.checkpointing)["total"] < 72
        assert r.memory["total"] == r.mem_gb_per_gpu and r.state_gb_per_gpu == r.memory["states"]
    # XGLM-7.5B: the 256k vocabulary and eager attention make it the largest, Llama-7B the smallest
    off = {h: estimate(shape(h), table1[h].cfg, 8, False) for h in SEVEN_B}
    assert off["huggyllama/llama-7b"]["total"] < off["bigscience/bloom-7b1"]["total"] < off["facebook/xglm-7.5B"]["total"]
    # an H200 (141 GB) holds them without checkpointing: the decision follows the GPU's memory
    big = resolve_plan("paper", sections=("bilingual",), memory=MemoryModel(gpu_gb=141))
    assert not any(r.checkpointing for r in big.runs)


def test_memory_parts_scale_as_the_formula_says(plan):
    """Activations: linear in the per-micro-step rows, one block's worth plus 2H per block when
    checkpointing; model states: 2P replicated, the rest sharded; the LM head: one chunk of logits."""
    r = next(r for r in plan.runs if r.hub_id == "facebook/xglm-7.5B")
    s = shape(r.hub_id)
    cit = replace(r.cfg, objective="cit")   # no MCL term
    half = dataclasses.replace(cit, cit=dataclasses.replace(cit.cit, batch_size=8))
    for ckpt in (False, True):
        full, part = estimate(s, cit, 8, ckpt), estimate(s, half, 8, ckpt)
        assert full["activations"] == pytest.approx(2 * part["activations"], abs=0.1)
    block = MemoryModel().block_bytes(s, 512)
    tokens = 16 * 512
    assert estimate(s, cit, 8, False)["activations"] == pytest.approx(tokens * 32 * block / 1e9, abs=0.05)
    assert estimate(s, cit, 8, True)["activations"] == pytest.approx(tokens * (32 * 2 * 4096 + block) / 1e9, abs=0.05)
    one, many = estimate(s, cit, 1, False)["states"], estimate(s, cit, 64, False)["states"]
    assert one == pytest.approx((16 * s.params + 2e9) / 1e9, abs=0.1) and many < one / 5
    assert estimate(s, cit, 8, False)["logits"] == pytest.approx(losses.HEAD_CHUNK * s.vocab * 16 / 1e9, abs=0.05)


def test_tokens_per_step_and_hours_follow_packed_rows_and_checkpointing(plan, monkeypatch):
    """A packed CIT row is computed at seq_len (not 125 tokens); checkpointing multiplies the FLOPs by 4/3;
    the chunked head adds its recomputed forward, 2 x V x H per LM token."""
    tp = Throughput()
    r = next(r for r in plan.runs if r.hub_id == "facebook/xglm-7.5B")
    m, cfg = HUB_MODELS[r.hub_id], r.cfg
    assert cfg.cit.pack and r.tokens_per_step == 128 * 512 + 2 * tp.tokens_per_sentence * 128
    unpacked = dataclasses.replace(cfg, cit=dataclasses.replace(cfg.cit, pack=False))
    assert run_estimate(unpacked, m, 8, tp, r.hub_id)["tokens_per_step"] == 128 * 125 + 2 * tp.tokens_per_sentence * 128
    rate = tp.peak_tflops * 1e12 * tp.mfu * 3600
    lm, mcl = 128 * 512 * 10000, 2 * 60 * 128 * 10000
    plain = 6 * m.params * (lm + mcl / m.n_layers) / rate
    head = 2 * HUB_HEADS_VOCAB[r.hub_id][1] * m.d_model * lm / rate
    hours = {c: run_estimate(replace(cfg, gradient_checkpointing=c), m, 8, tp, r.hub_id)["gpu_hours"] for c in (False, True)}
    assert hours[False] == pytest.approx(plain + head, abs=0.01)
    assert hours[True] == pytest.approx(plain * 4 / 3 + head, abs=0.01)
    assert r.gpu_hours == hours[True] and r.wall_hours == pytest.approx(hours[True] / 8, abs=0.01)
    monkeypatch.setattr(losses, "HEAD_CHUNK", 10 ** 9)   # one-shot head: no recomputed head forward
    assert run_estimate(cfg, m, 8, tp, r.hub_id)["gpu_hours"] == pytest.approx(plain * 4 / 3, abs=0.01)
    assert resolve_plan("paper").totals["gpu_hours"] > 800   # was 211 at 125 tokens per packed row


def test_trainer_resolves_auto_from_the_device(tiny_models, monkeypatch):
    """auto: off on a CPU; on a CUDA device on when the estimate exceeds 90% of its memory (faked here)."""
    model = tiny_models["xglm"]
    cfg = load_train_config("paper", ["gradient_checkpointing=auto"])
    assert cfg.gradient_checkpointing == "auto" and shape_of(model).n_layers == 3
    assert resolve_checkpointing(cfg, model, "cpu", 8) is False
    gb = {"total": 0}
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: type("P", (), {"total_memory": gb["total"]}))
    for total, want in ((1e9, True), (80e9, False)):   # the constant overhead alone exceeds 0.9 GB
        gb["total"] = total
        assert resolve_checkpointing(cfg, model, "cuda:0", 8) is want
    assert resolve_checkpointing(replace(cfg, gradient_checkpointing=True), model, "cpu", 8) is True
    with pytest.raises(TypeError, match="gradient_checkpointing"):
        load_train_config("paper", ["gradient_checkpointing=sometimes"])


def _fake(bin_dir: Path, name: str, body: str) -> None:
    (bin_dir / name).write_text(f"#!/usr/bin/env bash\necho \"{name} $*\" >> \"$CALLS\"\n{body}\n")
    (bin_dir / name).chmod(0o755)


@pytest.mark.parametrize("fails", [True, False])
def test_train_all_goes_on_past_a_failed_run(plan, tmp_path, fails):
    """A run that fails (here: exit 137, as an OOM kill) is recorded, every other run still launches, and the
    script names the failed run and stops before the evaluation; with no failure the evaluation runs."""
    bad = next(r for r in plan.runs if r.hub_id == "facebook/xglm-1.7B")
    bins = tmp_path / "bin"
    bins.mkdir()
    _fake(bins, "torchrun", f'[[ "$*" == *{bad.hub_id}* && -n "$FAIL" ]] && exit 137; exit 0')
    _fake(bins, "python", "exit 0")
    script = tmp_path / "train_all.sh"
    script.write_text(launch_commands(plan))
    env = dict(os.environ, PATH=f"{bins}:{os.environ['PATH']}", CALLS=str(tmp_path / "calls"), FAIL="1" if fails else "")
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    calls = (tmp_path / "calls").read_text().splitlines()
    trains = [c for c in calls if " -m afp_lib train " in c]
    assert len(trains) == len(plan.runs)                          # every run launched, before and after the failure
    evaluated = any("afp_lib evaluate" in c for c in calls)
    if fails:
        assert proc.returncode == 1 and not evaluated
        assert f"run {bad.key} FAILED (exit 137)" in proc.stderr and f"1 of {len(plan.runs)} training runs failed: {bad.key}" in proc.stderr
    else:
        assert proc.returncode == 0 and evaluated, proc.stderr
    assert trains[0].split("--base-model ")[1].split()[0] in SEVEN_B   # largest first: an OOM shows in minutes


def test_trainer_with_a_chunked_head_and_auto_checkpointing(toy_tokenizer, tiny_shape, tmp_path, monkeypatch):
    """The trainer with the LM head chunked every 3 tokens and `gradient_checkpointing=auto` (off on the CPU)
    ends at the weights of the one-shot head (fp32, dropout 0), up to float summation order: measured 2e-6 at
    most after 4 Adam steps of lr 1e-3 (a dropped or doubled chunk moves weights by ~lr)."""
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from test_trainer import data, tiny_cfg

    from afp_lib.models import build_model
    from afp_lib.trainer import loop, train
    seen = []
    real = loop._make_backend
    monkeypatch.setattr(loop, "_make_backend", lambda cfg, model, device: (
        seen.append(model.is_activation_checkpointing), real(cfg, model, device))[1])
    finals = []
    for chunk, ckpt in ((0, False), (3, "auto")):
        monkeypatch.setattr(losses, "HEAD_CHUNK", chunk)
        model = build_model("xglm", tiny_shape, toy_tokenizer, seed=0)
        train(tiny_cfg(gradient_checkpointing=ckpt, save_every=0), model, toy_tokenizer, tmp_path / str(chunk), data=data())
        finals.append(model.state_dict())
    assert seen == [False, False]
    for name, value in finals[0].items():
        torch.testing.assert_close(finals[1][name], value, rtol=1e-4, atol=1e-5, msg=name)
