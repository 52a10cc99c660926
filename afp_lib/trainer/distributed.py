"""Data parallelism without surprises: the process group, rank-0 decisions, gradient averaging.

A run started by `torchrun` or `deepspeed` joins the process group before anything else (the run cache
included), so every later decision can be taken by rank 0 and broadcast. In one plain process every
helper here is a no-op and costs nothing.

Gradients are averaged by one all-reduce of a flat buffer after the backward passes of a step (not by
wrapping the model in DistributedDataParallel): the AFP step calls the model in pieces (an early exit to
block l, the CIT forward with a hook on block l), which DDP's forward-bound bookkeeping does not follow.
The result is what DDP computes: every rank holds the mean of the ranks' gradients before clipping.

Rank 0 alone writes checkpoints (safetensors of ~15 GB, deleting older ones of ~120 GB, on NFS: minutes).
The other ranks must not wait for that inside a collective, whose timeout would end the job: `on_main`
lets them poll a flag file that rank 0 writes when done, with a bound of their own. It is the one way ranks
wait for each other here: checkpoints, the tokenized data's build (trainer.tokenized), the run cache's lock
(trainer.runs) and, with `ranks_done`, the end of a sharded evaluation (eval.cli)."""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import time
import uuid
from pathlib import Path

import torch
import torch.distributed as dist

from .. import atomic

LAUNCHER_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
FLAG = ".rank0-done.json"  # in the run folder: {"token", "error"} of the last `on_main`


def launched() -> bool:
    """True under a multi-process launcher (torchrun, deepspeed) that set WORLD_SIZE > 1."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: torch.device, required: bool = False, timeout_minutes: float = 60.0) -> None:
    """Join the process group named by the launcher's env: gloo on CPU, nccl on CUDA. Nothing happens in a
    plain process unless `required` (one-process DeepSpeed), where a missing variable is named.
    `timeout_minutes`: how long any collective may wait (train.dist_timeout_minutes; NCCL's own is 10)."""
    if dist.is_initialized() or not (launched() or required):
        return
    missing = [k for k in LAUNCHER_ENV if k not in os.environ]
    if missing:
        raise RuntimeError(f"a multi-process run needs ${', $'.join(missing)} (set by torchrun/deepspeed; for one "
                           "process set RANK=0 WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500)")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                            timeout=datetime.timedelta(minutes=timeout_minutes))
    if dist.get_rank() > 0:  # one log line per event: rank 0 speaks (the others see the same data)
        logging.getLogger("afp_lib").setLevel(logging.ERROR)


def rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return rank_world()[0] == 0


def multi() -> bool:
    return rank_world()[1] > 1


def barrier() -> None:
    if multi():
        dist.barrier()


def new_token() -> str:
    """A token naming one coordinated call, broadcast from rank 0 (a collective: call it where every rank is)."""
    return broadcast(uuid.uuid4().hex if is_main() else None)


def on_main(work, flag_dir: Path, what: str, wait_s: float, poll_s: float = 1.0, name: str = FLAG):
    """Rank 0 runs `work()` (its result is returned there, None elsewhere) while the other ranks poll
    `flag_dir/name` for this call's token, holding no collective: a slow write cannot trip the process
    group's timeout. They give up after `wait_s` seconds (train.save_wait_minutes), and re-raise at once
    what rank 0 raised. `flag_dir` must be shared by the ranks, as the run folder is."""
    if not multi():
        return work()
    token = new_token()  # instant: every rank is here; never stale
    flag = Path(flag_dir) / name
    if is_main():
        try:
            out = work()
        except BaseException as e:
            _write_flag(flag, token, f"{type(e).__name__}: {e}")
            raise
        _write_flag(flag, token, None)
        return out
    _wait_for([flag], token, "rank 0", what, wait_s, poll_s, "see rank 0's log, or raise train.save_wait_minutes")
    return None


def ranks_done(flag_dir: Path, token: str, what: str, wait_s: float, poll_s: float = 5.0) -> None:
    """The end of work each rank does on its own share: ranks > 0 write their flag and go on; rank 0 returns
    once every rank's flag holds `token` (`new_token`, taken while the ranks were together), with no
    collective held, since ranks may finish hours apart."""
    if not multi():
        return
    rank, world = rank_world()
    flags = [Path(flag_dir) / f".rank{r}-done.json" for r in range(world)]
    if rank:
        _write_flag(flags[rank], token, None)
    else:
        _wait_for(flags[1:], token, "a rank", what, wait_s, poll_s, "see the other ranks' logs")


def _wait_for(flags: list[Path], token: str, who: str, what: str, wait_s: float, poll_s: float, hint: str) -> None:
    """Poll until every flag holds `token`; raise what a flag's error says, or TimeoutError after `wait_s`."""
    deadline = time.monotonic() + wait_s
    while True:
        seen = [_read_flag(f) for f in flags]
        errors = [s["error"] for s in seen if s.get("token") == token and s.get("error")]
        if errors:
            raise RuntimeError(f"{who} failed while {what}: {errors[0]}")
        missing = [str(f) for f, s in zip(flags, seen) if s.get("token") != token]
        if not missing:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"rank {rank_world()[0]}: {who} did not finish {what} within {wait_s:.0f}s "
                               f"(no token {token} in {', '.join(missing)}); {hint}")
        time.sleep(min(poll_s, left))


def _write_flag(flag: Path, token: str, error: str | None) -> None:
    flag.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(flag, json.dumps({"token": token, "error": error}))


def _read_flag(flag: Path) -> dict:
    try:
        return json.loads(flag.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # not written yet (or, on a lax file system, caught mid-replace)
        return {}


def broadcast(obj, src: int = 0):
    """Rank src's `obj` on every rank (a picklable object; in one process: `obj`)."""
    if not multi():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """{key: mean over ranks} of per-rank floats (every rank passes the same keys)."""
    if not multi():
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return {k: v / dist.get_world_size() for k, v in zip(keys, t.tolist())}


def sum_over_ranks(x: float) -> float:
    if not multi():
        return x
    t = torch.tensor([float(x)], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return float(t.item())


def broadcast_parameters(model: torch.nn.Module) -> None:
    """Rank 0's weights on every rank (all ranks load the same checkpoint, but a build or a dtype cast that
    is not bitwise reproducible must not let the replicas start apart)."""
    if not multi():
        return
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(t.data, src=0)


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Replace each .grad by its mean over ranks, in one all-reduce of a flat buffer. A parameter that got
    no gradient on any rank keeps grad None (the optimizer then skips it, as in one process); one that got a
    gradient on some ranks only counts zero on the others."""
    if not multi():
        return
    world = dist.get_world_size()
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=_comm_device())
    dist.all_reduce(has)
    live = [p for p, h in zip(params, has.tolist()) if h]
    if not live:
        return
    for p in live:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    by_dtype: dict[torch.dtype, list] = {}
    for p in live:
        by_dtype.setdefault(p.grad.dtype, []).append(p)
    for group in by_dtype.values():
        flat = torch.cat([p.grad.reshape(-1) for p in group])
        dist.all_reduce(flat)
        flat /= world
        offset = 0
        for p in group:
            n = p.grad.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
            offset += n


def weights_digest(model: torch.nn.Module) -> str:
    """A hash of the exact bytes of every parameter: equal digests on every rank = identical replicas."""
    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        t = p.detach().cpu().contiguous().reshape(-1)
        h.update(name.encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def gather_objects(obj) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank."""
    if not multi():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
