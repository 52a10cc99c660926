"""The DeepSpeed backend on CPU: ZeRO-2, world size 1, gloo, torch AdamW + torch bf16 autocast.
(The first run on a machine compiles DeepSpeed's shared-memory op once, which takes about a minute.)"""
import json
import os

import pytest
import torch

pytest.importorskip("deepspeed")

from afp_lib.models import build_model  # noqa: E402
from afp_lib.trainer import TrainData, train  # noqa: E402
from afp_lib.trainer import checkpoint as ckpt  # noqa: E402
from test_trainer import PAIRS, tiny_cfg  # noqa: E402


@pytest.fixture()
def one_rank(monkeypatch):
    import torch.distributed as dist
    port = str(29500 + os.getpid() % 500)
    for k, v in dict(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, RANK="0", LOCAL_RANK="0", WORLD_SIZE="1").items():
        monkeypatch.setenv(k, v)
    dist.init_process_group("gloo", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.slow
def test_deepspeed_zero2_cpu_trains_checkpoints_and_resumes(one_rank, toy_tokenizer, tiny_shape, tmp_path):
    cfg = tiny_cfg(backend="deepspeed", zero_stage=2, precision="bf16", steps=3, save_every=2, device="cpu",
                   seq_len=64)  # long enough that MCL reads the context sides from the CIT forward
    data = TrainData(pairs=list(PAIRS), dev_pairs=list(PAIRS[:6]))
    model = build_model("xglm", tiny_shape, toy_tokenizer, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    seen = []
    def stop_after_save(done, record):
        seen.append(sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*")))
        if done == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(cfg, model, toy_tokenizer, tmp_path, data=data, callbacks=[stop_after_save])
    last = ckpt.latest_checkpoint(tmp_path)
    assert last.name == "step-0000002" and (last / "deepspeed").is_dir() and (last / "model.safetensors").is_file()

    resumed = build_model("xglm", tiny_shape, toy_tokenizer, seed=0)
    res = train(cfg, resumed, toy_tokenizer, tmp_path, data=data)
    assert res.resumed_from == 2 and res.steps == 3
    log = [json.loads(line) for line in open(res.log_path)]
    assert [r["step"] for r in log] == [1, 2, 3] and all(torch.isfinite(torch.tensor(r["loss"])) for r in log)
    assert {"mcl", "cit", "align", "retrieval"} <= set(log[-1])
    changed = any(not torch.equal(before[k], v.cpu()) for k, v in resumed.state_dict().items())
    assert changed and (res.final_dir / "model.safetensors").is_file()
