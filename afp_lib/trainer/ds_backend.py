"""DeepSpeed backend (ZeRO-1/2), for multi-GPU and multi-node runs started with `deepspeed` or `torchrun`.

Same interface as `TorchBackend`. On GPUs DeepSpeed's own bf16 mode is used; on CPU (tests, laptops)
DeepSpeed's bf16 mode fails, so there the optimizer is a torch AdamW (`torch_adam`) and the loop's
torch autocast provides the bf16 compute. ZeRO 1/2 keep full parameters on every rank, so the model can
be run (and early-exited) through `engine.module` directly and saved with `save_pretrained` from rank 0."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import torch.distributed as dist

from .backends import lr_factor
from .checkpoint import rng_state, set_rng_state
from .config import TrainConfig

logger = logging.getLogger(__name__)


def init_distributed(device: torch.device) -> None:
    """Join the process group named by the launcher's env (RANK, WORLD_SIZE, MASTER_ADDR/PORT)."""
    if dist.is_initialized():
        return
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        if key not in os.environ:
            raise RuntimeError(f"backend 'deepspeed' needs ${key} (set by the deepspeed/torchrun launcher; "
                               "for one process set RANK=0 WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500)")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def ds_config(cfg: TrainConfig, world_size: int, cuda: bool) -> dict:
    o = cfg.optim
    return {
        "train_micro_batch_size_per_gpu": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "train_batch_size": cfg.batch_size * cfg.grad_accum * world_size,
        "gradient_clipping": o.grad_clip,
        "zero_optimization": {"stage": cfg.zero_stage},
        "bf16": {"enabled": cuda and cfg.precision in ("bf16", "auto")},
        "optimizer": {"type": "AdamW", "params": {"lr": o.lr, "betas": list(o.betas), "eps": o.eps,
                                                  "weight_decay": o.weight_decay, "torch_adam": not cuda}},
        "steps_per_print": 10 ** 9,
        "wall_clock_breakdown": False,
    }


class DeepSpeedBackend:
    name = "deepspeed"

    def __init__(self, cfg: TrainConfig, model: torch.nn.Module, device: torch.device):
        import deepspeed  # imported here: it is slow to import and only this backend needs it

        init_distributed(device)
        self.cfg, self.device = cfg, device
        cuda = device.type == "cuda"
        if cuda:
            torch.cuda.set_device(device)
        model = model.to(device)
        config = ds_config(cfg, dist.get_world_size(), cuda)
        sched = lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))  # noqa: E731
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model, model_parameters=[p for p in model.parameters() if p.requires_grad], config=config,
            lr_scheduler=sched, dist_init_required=False)
        self.model = self.engine.module
        self._micro = 0

    def backward(self, loss: torch.Tensor) -> None:
        # DeepSpeed divides by gradient_accumulation_steps itself and only updates at the boundary
        self.engine.backward(loss)
        self._micro += 1
        if self._micro % self.cfg.grad_accum:
            self.engine.step()

    def step(self) -> float:
        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else 0.0

    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def save(self, folder: Path) -> None:
        """Collective: every rank writes its optimizer partition."""
        self.engine.save_checkpoint(str(folder), tag="deepspeed", client_state={"rng": rng_state()})

    def load(self, folder: Path) -> None:
        _, client = self.engine.load_checkpoint(str(folder), tag="deepspeed")
        if client and "rng" in client:
            set_rng_state(client["rng"])
