"""The plain-torch backend and the learning-rate schedule; `ds_backend` has the same interface for DeepSpeed.

A backend owns the optimizer and scheduler and answers: backward(loss), step() -> grad norm, lr(),
save(folder), load(folder), full_state_dict(). The loop never asks which backend it has. Each rank's RNG
state is saved by the loop (one file per rank), not here.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from . import distributed
from .config import TrainConfig


def warmup_steps(cfg: TrainConfig) -> int:
    return math.ceil(cfg.optim.warmup_ratio * cfg.steps)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of the base lr before optimizer step `step` (0-based)."""
    warm, total, floor = warmup_steps(cfg), cfg.steps, cfg.optim.min_lr_ratio
    # 1) linear warm-up
    if step < warm:
        return (step + 1) / warm
    if cfg.optim.schedule == "constant":
        return 1.0
    # 2) decay from 1 to `floor` over the remaining steps
    progress = min(1.0, (step - warm) / max(1, total - warm))
    if cfg.optim.schedule == "linear":
        return floor + (1 - floor) * (1 - progress)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    o = cfg.optim
    # foreach=False: the same kernel order on every run, so CPU runs are bitwise reproducible
    return torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay,
                             foreach=False)


def make_scheduler(optimizer, cfg: TrainConfig):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))


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
        self.optimizer = make_optimizer(self.model.parameters(), cfg)
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

    def save(self, folder: Path) -> None:
        """Optimizer and scheduler, identical on every rank: rank 0 writes them."""
        if distributed.is_main():
            torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()},
                       folder / "trainer_state.pt")

    def load(self, folder: Path) -> None:
        state = torch.load(folder / "trainer_state.pt", map_location=self.device, weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
