"""The optimizer and the learning-rate schedule, shared by the alignment trainer (`backends`, `ds_backend`)
and world pretraining (`world.pretrain`): AdamW, and a linear warm-up followed by a constant, linear or
cosine decay to `lr * floor` at the last step. The learning rate is a pure function of the step, so a
resumed run continues the schedule exactly."""
from __future__ import annotations

import math

import torch

from .config import OptimConfig


def lr_at(step: int, lr: float, warmup: int, total: int, schedule: str = "cosine", floor: float = 0.0) -> float:
    """The learning rate of optimizer step `step` (0-based) out of `total`."""
    # 1) linear warm-up over `warmup` steps
    if step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant":
        return lr
    # 2) decay from lr to lr * floor over the remaining steps
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return lr * (floor + (1 - floor) * (1 - progress))
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


class WarmupDecay(torch.optim.lr_scheduler.LRScheduler):
    """`lr_at` as a torch scheduler (DeepSpeed steps a scheduler object itself): each param group's initial
    lr follows the schedule; the state (last step) is saved and restored with the optimizer's."""

    def __init__(self, optimizer: torch.optim.Optimizer, warmup: int, total: int, schedule: str = "cosine",
                 floor: float = 0.0):
        self.warmup, self.total, self.schedule, self.floor = warmup, total, schedule, floor
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [lr_at(self.last_epoch, base, self.warmup, self.total, self.schedule, self.floor)
                for base in self.base_lrs]


def make_scheduler(optimizer: torch.optim.Optimizer, optim: OptimConfig, warmup: int, total: int) -> WarmupDecay:
    return WarmupDecay(optimizer, warmup, total, optim.schedule, optim.min_lr_ratio)


def make_optimizer(params, optim: OptimConfig) -> torch.optim.Optimizer:
    """AdamW over `params` (tensors, or param groups that set their own weight_decay)."""
    # foreach=False: the same kernel order on every run, so CPU runs are bitwise reproducible
    return torch.optim.AdamW(params, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps,
                             weight_decay=optim.weight_decay, foreach=False)


def decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Param groups with weight decay on matrices only: biases and norm weights (1-D) are not decayed."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
