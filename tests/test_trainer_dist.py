"""Data parallelism at function level, in a real 2-process gloo group (torch.multiprocessing):
one step on 2 ranks (autograd all-gather of the negatives, CIT normalised by the joined token count,
gradients averaged over ranks) equals one step of one process on the joined batch; the authors'
`local_grad` variant does not. Plus the bookkeeping that makes ranks see disjoint data."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from afp_lib.losses import mcl_loss
from afp_lib.models import build_model
from afp_lib.trainer import TrainData, distributed
from afp_lib.trainer.loop import Stream, _check_resume, micro_batches, micro_index, prepare, step_losses
from test_trainer import PAIRS, tiny_cfg

WORLD = 2
B = 4  # rows per rank


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out: str, model_dir: str, tok_dir: str) -> None:
    """Every 2-rank case in one process group (a process start costs seconds: imports)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        result = {"grad": _mcl_case(rank, "grad"), "local_grad": _mcl_case(rank, "local_grad"),
                  "afp": _afp_step(tiny_cfg(batch_size=B, seq_len=64), model_dir, tok_dir, rank, WORLD)}
    finally:
        dist.destroy_process_group()
    torch.save(result, os.path.join(out, f"rank{rank}.pt"))


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, toy_tokenizer, tiny_shape):
    root = tmp_path_factory.mktemp("dist")
    build_model("xglm", tiny_shape, toy_tokenizer, seed=0).save_pretrained(root / "model")
    toy_tokenizer.save_pretrained(root / "tok")
    return root


@pytest.fixture(scope="module")
def ranks(dirs) -> list[dict]:
    mp.spawn(_worker, args=(_free_port(), str(dirs), str(dirs / "model"), str(dirs / "tok")), nprocs=WORLD)
    return [torch.load(dirs / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


# --- MCL alone on a linear encoder ---------------------------------------------------------------

def _encoder_and_inputs():
    torch.manual_seed(0)
    enc = torch.nn.Linear(8, 6)
    return enc, torch.randn(WORLD * B, 8), torch.randn(WORLD * B, 8)


def _mcl_case(rank: int, mode: str) -> dict:
    enc, x_src, x_tgt = _encoder_and_inputs()
    rows = slice(rank * B, (rank + 1) * B)  # this rank's part of the joined batch
    loss = mcl_loss(enc(x_src[rows]), enc(x_tgt[rows]), 0.05, True, mode)
    loss.backward()
    distributed.average_gradients(list(enc.parameters()))
    return {"loss": distributed.mean_over_ranks({"loss": loss.item()})["loss"],
            "grads": [p.grad.clone() for p in enc.parameters()]}


def _mcl_joined() -> dict:
    enc, x_src, x_tgt = _encoder_and_inputs()
    loss = mcl_loss(enc(x_src), enc(x_tgt), 0.05, True, "off")  # one process, W*B rows
    loss.backward()
    return {"loss": loss.item(), "grads": [p.grad.clone() for p in enc.parameters()]}


def _max_diff(a: list, b: list) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


@pytest.mark.multiprocess
def test_gathered_negatives_give_the_joined_batch_gradient(ranks):
    joined = _mcl_joined()
    assert ranks[0]["grad"]["loss"] == pytest.approx(joined["loss"], abs=1e-6)
    scale = max(float(g.abs().max()) for g in joined["grads"])
    for r in ranks:  # every rank holds the averaged gradient = the joined batch's
        diff = _max_diff(r["grad"]["grads"], joined["grads"])
        print(f"MCL 2-rank vs joined: max |grad diff| {diff:.2e} (max |grad| {scale:.2e})")
        assert diff < 1e-6 * max(1.0, scale)


@pytest.mark.multiprocess
def test_local_grad_variant_differs_from_the_joined_batch(ranks):
    """The authors' variant (other ranks' rows detached): same loss, a different gradient."""
    joined = _mcl_joined()
    assert ranks[0]["local_grad"]["loss"] == pytest.approx(joined["loss"], abs=1e-6)
    scale = max(float(g.abs().max()) for g in joined["grads"])
    assert _max_diff(ranks[0]["local_grad"]["grads"], joined["grads"]) > 0.05 * scale


# --- the whole AFP step of the loop on a tiny XGLM ---------------------------------------------

def _afp_step(cfg, model_dir, tok_dir, rank: int, world: int) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tok_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager")
    model.train()
    prep = prepare(cfg, tok, TrainData(pairs=list(PAIRS), dev_pairs=list(PAIRS[:2])))
    assert prep.share is not None  # the shared AFP step: the CIT forward gives one side of most pairs
    stream = Stream(len(prep.pairs), cfg.seed)
    pair_idx = stream.take(micro_index(0, 0, 1, rank, world) * cfg.batch_size, cfg.batch_size)
    pairs, lm = micro_batches(cfg, prep, pair_idx, None, tok.pad_token_id)
    parts = step_losses(model, cfg, pairs, lm, shared=True)
    parts["loss"].backward()
    params = [p for p in model.parameters() if p.requires_grad]
    distributed.average_gradients(params)
    values = distributed.mean_over_ranks({k: v.item() for k, v in parts.items()})
    return {"values": values, "grads": {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
            "cit_tokens": int((lm["labels"] != -100).sum())}


@pytest.mark.multiprocess
def test_two_rank_afp_step_equals_the_joined_batch_step(ranks, dirs):
    joined = _afp_step(tiny_cfg(batch_size=WORLD * B, seq_len=64), dirs / "model", dirs / "tok", 0, 1)
    afp = [r["afp"] for r in ranks]
    assert afp[0]["cit_tokens"] != afp[1]["cit_tokens"]  # uneven CIT tokens: the normalisation matters
    for k in ("mcl", "cit", "loss"):
        assert afp[0]["values"][k] == pytest.approx(joined["values"][k], abs=1e-6), k
    assert set(afp[0]["grads"]) == set(joined["grads"])
    worst = 0.0
    for r in afp:
        for name, g in joined["grads"].items():
            worst = max(worst, float((r["grads"][name] - g).abs().max()))
            assert torch.allclose(r["grads"][name], g, rtol=1e-5, atol=1e-6), name
    print(f"AFP 2-rank vs joined: max |grad diff| {worst:.2e}")


# --- bookkeeping --------------------------------------------------------------------------------

def test_ranks_take_disjoint_slices_that_join_to_the_big_batch():
    stream = Stream(120, seed=3)  # 3 steps x 2 micro x 20 rows: one epoch
    for step in range(3):
        for micro in range(2):
            parts = [stream.take(micro_index(step, micro, 2, r, 4) * 5, 5) for r in range(4)]
            joined = stream.take(micro_index(step, micro, 2, 0, 1) * 20, 20)
            assert sum(parts, []) == joined
            assert len(set(sum(parts, []))) == 20


def test_one_process_helpers_are_no_ops():
    assert distributed.rank_world() == (0, 1)
    assert distributed.broadcast("x") == "x" and distributed.mean_over_ranks({"a": 2.0}) == {"a": 2.0}
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.full((2,), 3.0)
    distributed.average_gradients([p])
    assert p.grad.tolist() == [3.0, 3.0]


def test_resume_with_another_world_size_or_batch_is_refused(tmp_path):
    cfg = tiny_cfg(batch_size=4)
    _check_resume({"step": 2, "world_size": 2, "global_batch": 8}, cfg, 2, tmp_path)  # the same launch: fine
    with pytest.raises(RuntimeError, match="lacks step/world_size/global_batch"):
        _check_resume({"step": 2}, cfg, 1, tmp_path)  # a checkpoint of an older afp: not guessed at
    with pytest.raises(RuntimeError, match=r"written by 2 rank\(s\) with a global batch of 8, this launch has 1"):
        _check_resume({"step": 2, "world_size": 2, "global_batch": 8}, cfg, 1, tmp_path)
    with pytest.raises(RuntimeError, match="global batch of 16"):
        _check_resume({"step": 2, "world_size": 2, "global_batch": 16}, cfg, 2, tmp_path)
