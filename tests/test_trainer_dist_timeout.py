"""Rank 0 writing a checkpoint for longer than the process group's timeout does not time out the other
ranks (issue 25, item 6): a real 2-process gloo group with a 3 s timeout, and a rank-0 save slowed to 5 s.
A plain barrier over the same wait does time out (so the 3 s reached init_process_group), the training
run with two slow checkpoint saves and a slow final save does not. Plus the flag protocol's errors."""
import datetime
import json
import os
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from afp_lib.trainer import distributed, train
from afp_lib.trainer import loop as train_loop
from test_trainer import tiny_cfg
from test_trainer_dist import _free_port

WORLD, TIMEOUT_S, SLOW_S = 2, 3.0, 5.0


def _worker(rank: int, port: int, out: str, model_dir: str, tok_dir: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from test_trainer import data
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    result = {}
    cfg = tiny_cfg(steps=3, save_every=1, keep_checkpoints=1, eval_every=0, dist_timeout_minutes=TIMEOUT_S / 60,
                   save_wait_minutes=1.0)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager")
    _meet(out, rank)   # the rendezvous itself has the 3 s timeout: start it together
    distributed.init_from_env(torch.device("cpu"), timeout_minutes=cfg.dist_timeout_minutes)
    if rank == 0:   # the injected slow save: rank 0's weights take longer to write than the timeout
        real = train_loop.ckpt.save_model_folder
        train_loop.ckpt.save_model_folder = lambda *a, **k: (time.sleep(SLOW_S), real(*a, **k))[1]
    t0 = time.perf_counter()
    try:
        res = train(cfg, model, tok, os.path.join(out, "run"), data=data())
        result["train"] = {"steps": res.steps, "final": res.final_dir.is_dir(), "seconds": time.perf_counter() - t0,
                           "digest": distributed.weights_digest(model)}
    except Exception as e:   # reported to the test, not raised: the other rank must still finish
        result["train"] = {"error": f"{type(e).__name__}: {e}"}
    # the control: the same wait inside a plain barrier; rank 1 must time out after ~3 s
    dist.barrier()
    t0 = time.perf_counter()
    try:
        if rank == 0:
            time.sleep(SLOW_S)
        dist.barrier()
        result["barrier"] = {"ok": True}
    except Exception as e:
        result["barrier"] = {"error": f"{type(e).__name__}: {e}", "seconds": time.perf_counter() - t0}
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)
    os._exit(0)   # the group is broken by the timed-out barrier: no clean destroy_process_group is possible


def _meet(out: str, rank: int) -> None:
    """A file barrier before the process group exists (imports may take the two processes apart by seconds)."""
    open(os.path.join(out, f"ready{rank}"), "w").close()
    while not all(os.path.exists(os.path.join(out, f"ready{r}")) for r in range(WORLD)):
        time.sleep(0.01)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory, toy_tokenizer, tiny_shape) -> list[dict]:
    from afp_lib.models import build_model
    root = tmp_path_factory.mktemp("timeout")
    build_model("xglm", tiny_shape, toy_tokenizer, seed=0).save_pretrained(root / "model")
    toy_tokenizer.save_pretrained(root / "tok")
    mp.spawn(_worker, args=(_free_port(), str(root), str(root / "model"), str(root / "tok")), nprocs=WORLD)
    return [json.loads((root / f"rank{r}.json").read_text()) for r in range(WORLD)], root


def test_slow_rank0_saves_do_not_time_out_the_others(ranks):
    results, root = ranks
    for r in results:
        assert "error" not in r["train"], r["train"]
        assert r["train"]["steps"] == 3 and r["train"]["final"]
    # 2 checkpoints + final/, each 5 s on rank 0 alone: rank 1 waited ~15 s in all, 5x the timeout
    assert results[1]["train"]["seconds"] >= 3 * SLOW_S
    assert results[0]["train"]["digest"] == results[1]["train"]["digest"]
    assert (root / "run" / "final" / "result.json").is_file() and not (root / "run" / "checkpoints").exists()


def test_the_timeout_reaches_the_process_group(ranks):
    """Without the flag file, the same 5 s wait in a barrier fails on rank 1 after the configured 3 s."""
    results, _ = ranks
    r1 = results[1]["barrier"]
    assert "error" in r1, "a plain barrier survived a wait longer than the 3 s timeout: the timeout is not in force"
    assert TIMEOUT_S - 0.5 <= r1["seconds"] < SLOW_S, r1


def test_init_passes_the_configured_timeout(monkeypatch):
    seen = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    for k, v in dict(RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="1").items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda backend, **kw: seen.update(backend=backend, **kw))
    monkeypatch.setattr(distributed.dist, "get_rank", lambda: 0)
    distributed.init_from_env(torch.device("cpu"), timeout_minutes=tiny_cfg(dist_timeout_minutes=45).dist_timeout_minutes)
    assert seen == {"backend": "gloo", "timeout": datetime.timedelta(minutes=45)}
    assert tiny_cfg().dist_timeout_minutes == 60 and tiny_cfg().save_wait_minutes == 240
    with pytest.raises(ValueError, match="dist_timeout_minutes"):
        tiny_cfg(dist_timeout_minutes=0)


def test_run_key_ignores_the_timeouts(tmp_path):
    from afp_lib.trainer.runs import run_key
    base = tiny_cfg()
    assert run_key(tiny_cfg(dist_timeout_minutes=5, save_wait_minutes=9), tmp_path) == run_key(base, tmp_path)
    assert run_key(tiny_cfg(steps=5), tmp_path) != run_key(base, tmp_path)


def test_waiting_rank_gives_up_or_re_raises(tmp_path, monkeypatch):
    """As rank 1 of 2: no flag within the bound -> TimeoutError naming the flag; rank 0's error -> raised."""
    monkeypatch.setattr(distributed, "multi", lambda: True)
    monkeypatch.setattr(distributed, "is_main", lambda: False)
    monkeypatch.setattr(distributed, "rank_world", lambda: (1, 2))
    monkeypatch.setattr(distributed, "broadcast", lambda obj, src=0: "tok1")
    t0 = time.perf_counter()
    with pytest.raises(TimeoutError, match=r"did not finish writing step-1 within 0s .*\.rank0-done\.json"):
        distributed.on_main(lambda: pytest.fail("rank 1 ran rank 0's work"), tmp_path, "writing step-1", 0.3, 0.05)
    assert time.perf_counter() - t0 < 2
    distributed._write_flag(tmp_path / distributed.FLAG, "tok0", None)   # a stale flag of an earlier call
    with pytest.raises(TimeoutError):
        distributed.on_main(lambda: None, tmp_path, "writing step-2", 0.2, 0.05)
    distributed._write_flag(tmp_path / distributed.FLAG, "tok1", "OSError: [Errno 28] No space left on device")
    with pytest.raises(RuntimeError, match="rank 0 failed while writing step-3: OSError: .*No space left"):
        distributed.on_main(lambda: None, tmp_path, "writing step-3", 5, 0.05)
    distributed._write_flag(tmp_path / distributed.FLAG, "tok1", None)
    assert distributed.on_main(lambda: None, tmp_path, "writing step-4", 5, 0.05) is None
