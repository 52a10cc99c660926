"""DeepSpeed backend (ZeRO-1/2/3), for multi-GPU and multi-node runs started with `deepspeed` or `torchrun`.

Same interface as `TorchBackend`. On GPUs DeepSpeed's own bf16 mode and its FusedAdam are used; when
FusedAdam cannot be built or loaded (no CUDA toolkit on the node) and on CPU (tests, laptops) the optimizer
is torch's AdamW handed to DeepSpeed as a client optimizer, and the log says which one ran. On CPU
DeepSpeed's bf16 mode fails, so there the loop's torch autocast provides the bf16 compute.
ZeRO 1/2 keep full parameters on every rank, so the model can be run (and early-exited) through
`engine.module` directly and saved from rank 0; ZeRO-3 partitions them (DeepSpeed's per-module hooks
gather them for each call) and the full weights are consolidated for saving."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from . import distributed
from .backends import make_scheduler
from .optim import make_optimizer
from .config import TrainConfig

logger = logging.getLogger(__name__)


def ds_config(cfg: TrainConfig, world_size: int, cuda: bool, fused_adam: bool = True) -> dict:
    """DeepSpeed's config for a run; without `fused_adam` the optimizer is a client optimizer (no block)."""
    o = cfg.optim
    conf = {
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
    if not (cuda and fused_adam):
        del conf["optimizer"]
    return conf


def fused_adam_error() -> str | None:
    """None when DeepSpeed's FusedAdam op loads (prebuilt or JIT-built with nvcc), else why it does not."""
    try:
        from deepspeed.ops.op_builder import FusedAdamBuilder
        builder = FusedAdamBuilder()
        if not builder.is_compatible(verbose=False):
            return "FusedAdam is not compatible with this system"
        builder.load(verbose=False)
        return None
    except Exception as e:  # noqa: BLE001 - any failure to build (no nvcc, no ninja, ABI mismatch) means: fall back
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


class DeepSpeedBackend:
    name = "deepspeed"

    def __init__(self, cfg: TrainConfig, model: torch.nn.Module, device: torch.device, extra: dict | None = None):
        """`extra`: DeepSpeed config entries merged over the run's (e.g. smaller ZeRO buckets for a rehearsal)."""
        import deepspeed  # imported here: it is slow to import and only this backend needs it

        distributed.init_from_env(device, required=True)
        self.cfg, self.device = cfg, device
        cuda = device.type == "cuda"
        model = model.to(device)
        params = [p for p in model.parameters() if p.requires_grad]
        why = fused_adam_error() if cuda else "CPU run"
        optimizer = None
        if why is None:
            self.optimizer_name = "DeepSpeed FusedAdam"
        else:
            optimizer = make_optimizer(params, cfg.optim)
            self.optimizer_name = f"torch AdamW (client optimizer; {why})"
            if cuda:
                logger.warning("DeepSpeed FusedAdam unavailable (%s): training with torch AdamW", why)
        config = ds_config(cfg, distributed.rank_world()[1], cuda, fused_adam=why is None)
        for key, value in (extra or {}).items():
            config[key] = {**config[key], **value} if isinstance(value, dict) and key in config else value
        sched = lambda opt: make_scheduler(opt, cfg)  # noqa: E731
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model, model_parameters=params, optimizer=optimizer, config=config, lr_scheduler=sched,
            dist_init_required=False)
        self.model = self.engine.module
        self.replicated = cfg.zero_stage < 3
        logger.info("DeepSpeed ZeRO-%d, optimizer: %s", cfg.zero_stage, self.optimizer_name)
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

    def full_state_dict(self) -> dict | None:
        """ZeRO-3: the consolidated weights on rank 0 (collective). ZeRO-1/2: None (the module has them)."""
        if self.replicated:
            return None
        return self.engine._zero3_consolidated_16bit_state_dict()

    def save_shards(self, folder: Path) -> None:
        """Collective: every rank writes its optimizer partition."""
        self.engine.save_checkpoint(str(folder), tag="deepspeed")

    def save_on_main(self, folder: Path) -> None:
        """Nothing: the engine wrote its state in save_shards."""

    def load(self, folder: Path) -> None:
        """The module, optimizer and schedule (DeepSpeed's load_checkpoint restores all three)."""
        self.engine.load_checkpoint(str(folder), tag="deepspeed")
