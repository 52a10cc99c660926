"""The plain-torch backend; `ds_backend` has the same interface for DeepSpeed (optimizer and schedule: `optim`).

A backend owns the optimizer and scheduler and answers: backward(loss), step() -> grad norm, lr(),
save_shards(folder) (every rank, a collective), save_on_main(folder) (rank 0 alone, no collective held),
load(folder) (weights and optimizer), full_state_dict(). The loop never asks which backend it has. Each rank's RNG
state is saved by the loop (one file per rank), not here.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from . import checkpoint as ckpt
from . import distributed, optim
from .config import TrainConfig


def warmup_steps(cfg: TrainConfig) -> int:
    return math.ceil(cfg.optim.warmup_ratio * cfg.steps)


def make_scheduler(optimizer, cfg: TrainConfig):
    """The run's schedule (optim.lr_at): warm-up over warmup_ratio of the steps, then optim.schedule."""
    return optim.make_scheduler(optimizer, cfg.optim, warmup_steps(cfg), cfg.steps)


class TorchBackend:
    """One process, or data parallel under torchrun: AdamW, gradient accumulation, gradients averaged over
    ranks before clipping (see distributed.py), so every replica takes the same update."""

    name = "torch"
    replicated = True  # every rank holds the whole model
    optimizer_name = "torch AdamW"

    def __init__(self, cfg: TrainConfig, model: torch.nn.Module, device: torch.device):
        self.cfg, self.device = cfg, device
        self.model = model.to(device)
        distributed.broadcast_parameters(self.model)
        self.optimizer = optim.make_optimizer(self.model.parameters(), cfg.optim)
        self.scheduler = make_scheduler(self.optimizer, cfg)

    def backward(self, loss: torch.Tensor) -> None:
        (loss / self.cfg.grad_accum).backward()

    def step(self) -> float:
        """Average over ranks, clip, then update; returns the pre-clip grad norm (inf/nan -> caller stops)."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        distributed.average_gradients(params)
        params = [p for p in params if p.grad is not None]
        max_norm = self.cfg.optim.grad_clip or float("inf")
        norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        if math.isfinite(norm):
            self.optimizer.step()
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return norm

    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def full_state_dict(self) -> None:
        return None  # the module holds its weights

    def save_shards(self, folder: Path) -> None:
        """Nothing per rank: the optimizer state is the same on every rank."""

    def save_on_main(self, folder: Path) -> None:
        """Optimizer and scheduler, identical on every rank: rank 0 writes them."""
        ckpt.save_optimizer(folder, self.optimizer, self.scheduler)

    def load(self, folder: Path) -> None:
        ckpt.load_weights(self.model, folder)
        ckpt.load_optimizer(folder, self.optimizer, self.scheduler, self.device)
