"""One device rule (afp_lib.devices) for training, evaluation and probes; the paper profile refuses to run
on a torch without CUDA unless the CPU is asked for; the trainer honours train.gradient_checkpointing."""
import pytest
import torch

from afp_lib import devices
from afp_lib.devices import require_gpu, resolve_device
from afp_lib.models import build_model
from afp_lib.trainer import train
from test_trainer import data, tiny_cfg

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour of a torch without CUDA")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv(devices.ENV, raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)


@no_cuda
def test_auto_is_the_cpu_without_cuda(monkeypatch):
    assert resolve_device("auto") == resolve_device(None) == torch.device("cpu")
    monkeypatch.setenv(devices.ENV, "cpu")
    assert resolve_device("auto") == torch.device("cpu")


def test_auto_is_cuda_local_rank_when_cuda_is_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert resolve_device("auto") == torch.device("cuda", 3)     # each launcher process on its own GPU
    assert resolve_device("cuda") == torch.device("cuda", 3)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)  # an explicit index wins
    monkeypatch.setenv(devices.ENV, "cpu")
    assert resolve_device("auto") == torch.device("cpu")         # $AFP_DEVICE replaces auto
    assert resolve_device("cuda:0") == torch.device("cuda", 0)   # ... but not an explicit device


@no_cuda
def test_bad_or_missing_devices_are_named():
    with pytest.raises(RuntimeError, match="device='cuda' asks for CUDA, but this torch .* sees no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="device='gpu0' is not a device; use auto, cpu, cuda or cuda:N"):
        resolve_device("gpu0")


@no_cuda
def test_paper_profile_needs_cuda_unless_the_cpu_is_asked_for(monkeypatch):
    require_gpu("mini")    # other profiles run anywhere
    require_gpu("smoke")
    with pytest.raises(SystemExit, match="the 'paper' profile needs GPUs.*device=cpu or set AFP_DEVICE=cpu"):
        require_gpu("paper")
    require_gpu("paper", "cpu")
    monkeypatch.setenv(devices.ENV, "cpu")
    require_gpu("paper")


@no_cuda
def test_train_cli_stops_before_loading_anything(monkeypatch):
    """`python -m afp_lib train --profile paper` without CUDA: the message at once, no model is loaded."""
    from afp_lib.trainer import cli
    monkeypatch.setattr(cli, "get_or_train", lambda *a, **k: pytest.fail("must stop before training"))
    with pytest.raises(SystemExit, match="needs GPUs"):
        cli.main(["--profile", "paper", "--base-model", "facebook/xglm-564M", "objective=afp"])
    assert cli.main(["--profile", "paper", "--base-model", "facebook/xglm-564M", "--dry-run"]) == 0  # plans anywhere


@no_cuda
def test_notebook_helpers_stop_before_loading(monkeypatch):
    from afp_lib import experiment
    from afp_lib.analysis import variants
    monkeypatch.setattr(variants, "_load_path", lambda *a: pytest.fail("must stop before loading"))
    with pytest.raises(SystemExit, match="needs GPUs"):
        experiment.load(experiment.Variant("vanilla", "xglm"), "paper")


@no_cuda
def test_evaluate_cli_stops_before_loading_anything(monkeypatch, tmp_path):
    """`python -m afp_lib evaluate` under the paper profile without CUDA, one model or a plan's grid: the
    message at once (no model loaded, no process group joined); `--device cpu` is the way round for both."""
    import json

    from afp_lib.eval import cli
    monkeypatch.setattr(cli, "load_model", lambda *a, **k: pytest.fail("must stop before loading"))
    monkeypatch.setattr(cli, "_join_group", lambda: pytest.fail("must stop before joining the process group"))
    with pytest.raises(SystemExit, match="needs GPUs"):
        cli.main(["--profile", "paper", "--model", "facebook/xglm-564M"])
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"profile": "paper", "eval": {"cells": []}}))
    with pytest.raises(SystemExit, match="needs GPUs"):
        cli.main(["--plan", str(plan)])
    monkeypatch.setattr(cli, "_join_group", lambda: (0, 1, "token"))
    monkeypatch.setenv("AFP_RUNS", str(tmp_path / "runs"))
    assert cli.main(["--plan", str(plan), "--device", "cpu"]) == 0  # asked for the CPU: an empty grid is done


def test_trainer_honours_gradient_checkpointing(toy_tokenizer, tiny_shape, tmp_path, monkeypatch):
    """Same run with and without checkpointing: the same final weights (fp32, dropout 0), and the model was
    really checkpointed while it trained."""
    seen = []
    from afp_lib.trainer import loop
    real = loop._make_backend
    monkeypatch.setattr(loop, "_make_backend", lambda cfg, model, device: (
        seen.append(model.is_activation_checkpointing), real(cfg, model, device))[1])
    finals = []
    for on in (False, True):
        model = build_model("xglm", tiny_shape, toy_tokenizer, seed=0)
        train(tiny_cfg(gradient_checkpointing=on, save_every=0), model, toy_tokenizer, tmp_path / str(on), data=data())
        finals.append(model.state_dict())
    assert seen == [False, True]
    for name, value in finals[0].items():
        torch.testing.assert_close(finals[1][name], value, rtol=1e-4, atol=1e-6, msg=name)


# --- precision: one vocabulary (auto | bf16 | fp32) and one rule for the trainer and world pretraining ---------

def test_precision_auto_follows_the_device_and_the_cpu(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert devices.resolve_precision("fp32", cuda) == "fp32" and devices.resolve_precision("bf16", cpu) == "bf16"
    assert devices.resolve_precision("auto", cuda) == "bf16"
    for native in (False, True):
        monkeypatch.setattr(devices, "cpu_has_bf16", lambda native=native: native)
        assert devices.resolve_precision("auto", cpu) == ("bf16" if native else "fp32")


@pytest.mark.parametrize("bad", ["none", "fp16", "bfloat16"])
def test_old_or_unknown_precision_names_are_refused_with_the_key(bad):
    with pytest.raises(ValueError, match=rf"world.pretrain.precision='{bad}' is not a precision; use one of auto, bf16, fp32"):
        devices.resolve_precision(bad, torch.device("cpu"), "world.pretrain.precision")


def test_world_trainer_and_evaluation_read_precision_alike():
    """Every section spells it `precision`; the CPU profiles pin fp32, the paper profile trains and scores in bf16."""
    from afp_lib.eval.config import load_eval_config
    from afp_lib.trainer import load_train_config
    from afp_lib.world.config import load_world_config
    for profile in ("smoke", "mini"):
        assert load_world_config(profile).pretrain.precision == load_train_config(profile).precision == "fp32"
        assert load_eval_config(profile).precision == "fp32" and not load_eval_config(profile).bf16
    assert load_train_config("paper").precision == load_eval_config("paper").precision == "bf16"
    assert load_eval_config("paper").bf16  # what the scorer and the evaluation records read
    x = torch.ones(2, 2)
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        with devices.autocast(precision, torch.device("cpu")):
            assert (x @ x).dtype == dtype
