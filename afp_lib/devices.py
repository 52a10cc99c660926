"""Where a model runs and in which precision: one rule for training, world pretraining, evaluation, probes,
perplexity and generation.

`resolve_device("auto")` is cuda:LOCAL_RANK when torch sees CUDA (each process of a launcher on its own
GPU), else the CPU. `$AFP_DEVICE` (e.g. `cpu`, `cuda:1`) replaces "auto" everywhere at once, so a notebook
or a DVC stage can be pinned without editing params.yaml.

Precision has one vocabulary everywhere (`precision: auto | bf16 | fp32` in params.yaml): bf16 is torch
autocast over fp32 weights; "auto" picks bf16 where it is fast (CUDA, CPUs with native bf16) and fp32
elsewhere, because emulated bf16 on a plain AVX2 CPU is 6-9x slower than fp32 (measured). The `paper` profile is meant for GPUs: without
CUDA it stops at once (`require_gpu`) instead of evaluating a 7B model on the CPU for days."""
from __future__ import annotations

import contextlib
import logging
import os

import torch

logger = logging.getLogger(__name__)

ENV = "AFP_DEVICE"
PRECISIONS = ("auto", "bf16", "fp32")


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """"auto" (or None): $AFP_DEVICE if set, else cuda:LOCAL_RANK when CUDA is present, else cpu.
    "cuda" without an index also means cuda:LOCAL_RANK; an explicit device is checked, not trusted."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = (spec or "auto").strip()
    if spec == "auto":
        spec = os.environ.get(ENV, "").strip() or "auto"
    if spec == "auto":
        return torch.device("cuda", _local_rank()) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ValueError(f"device={spec!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device={spec!r} asks for CUDA, but this torch ({torch.__version__}) sees no CUDA "
                               "device; use device=cpu, or install a CUDA build of torch (README, 'GPU install, "
                               "devices and precision')")
        if device.index is None:
            device = torch.device("cuda", _local_rank())
    return device


def cpu_requested(spec: str | None = "auto") -> bool:
    """The user asked for the CPU: device=cpu, or $AFP_DEVICE=cpu under "auto"."""
    spec = (spec or "auto").strip()
    if spec == "auto":
        spec = os.environ.get(ENV, "").strip() or "auto"
    return spec == "cpu"


def require_gpu(profile: str, spec: str | None = "auto") -> None:
    """Stop at once when the `paper` profile would run on a machine whose torch has no CUDA, unless the CPU
    was asked for explicitly (device=cpu or AFP_DEVICE=cpu)."""
    if profile != "paper" or torch.cuda.is_available():
        return
    if cpu_requested(spec):
        logger.warning("the paper profile runs on the CPU because device=cpu / %s=cpu was asked for: "
                       "expect days per 7B model", ENV)
        return
    raise SystemExit(
        f"the 'paper' profile needs GPUs, but this torch ({torch.__version__}) sees no CUDA device. Install a "
        "CUDA build of torch (README, 'GPU install, devices and precision'), or, to run it on the CPU anyway, pass "
        f"device=cpu or set {ENV}=cpu.")



def cpu_has_bf16() -> bool:
    """The CPU computes bf16 natively (AVX512-BF16 or AMX), as torch's own kernels detect it."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_precision(setting: str, device: torch.device, key: str = "precision") -> str:
    """"auto" -> "bf16" on CUDA and on CPUs with native bf16, else "fp32"; "bf16" and "fp32" as given.
    `key` names the setting in the error (e.g. "world.pretrain.precision")."""
    if setting not in PRECISIONS:
        raise ValueError(f"{key}={setting!r} is not a precision; use one of {', '.join(PRECISIONS)}")
    if setting != "auto":
        return setting
    return "bf16" if device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16()) else "fp32"


def autocast(precision: str, device: torch.device):
    """The context a forward runs in: bf16 autocast (weights stay fp32) or nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
