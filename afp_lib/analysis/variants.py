"""The model of a section `Variant` (afp_lib.sections): its training config, its run folder (trained through
the run cache, `afp_lib.trainer.get_or_train`, when missing), and the loaded (model, tokenizer); the probes
(`analysis.probes`) and the notebooks (`afp_lib.experiment`, which re-exports these) share them."""
from __future__ import annotations

import functools
import logging
import time
from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..sections import Variant

logger = logging.getLogger(__name__)


def train_config(v: Variant, profile: str):
    from ..trainer import load_train_config
    return load_train_config(profile, list(v.train or ()) + [f"seed={v.seed}"])


def run_dir(v: Variant, profile: str) -> Path | None:
    """The alignment run folder (train_log.jsonl, final/), training it first if needed; None if vanilla."""
    if v.vanilla:
        return None
    from ..devices import require_gpu
    from ..trainer import get_or_train
    from ..world import base_model
    require_gpu(profile, train_config(v, profile).device)
    t0 = time.time()
    path = get_or_train(train_config(v, profile), base_model(profile, v.arch))
    seconds = time.time() - t0   # a cache hit (well under a second) is not news in a notebook
    logger.log(logging.INFO if seconds >= 1 else logging.DEBUG, "%s ready in %.0fs: %s", v.name(profile), seconds, path)
    return path


def model_path(v: Variant, profile: str) -> str:
    """A folder (or hub id) that `afp_lib.models.load_model` loads."""
    from ..world import base_model
    return base_model(profile, v.arch) if v.vanilla else str(run_dir(v, profile) / "final")


def load(v: Variant, profile: str):
    """(model, tokenizer) of `v` in eval mode on the device `afp_lib.devices.resolve_device` picks (a GPU when
    there is one; $AFP_DEVICE overrides); the last few are kept, since a notebook asks for the same model for
    several probes in a row."""
    from ..devices import require_gpu, resolve_device
    require_gpu(profile)
    return _load_path(model_path(v, profile), str(resolve_device()))


@functools.lru_cache(maxsize=2)
def _load_path(path: str, device: str = "cpu"):
    from ..models import load_model
    model, tokenizer = load_model(path, device=device)
    return model.eval(), tokenizer


def model_ref(v: Variant, profile: str) -> str:
    """What `model_path` returns, without training: the folder the run cache puts the model in."""
    from ..trainer.runs import run_dir as run_folder
    from ..world import base_model, world_dir
    try:
        base = base_model(profile, v.arch)
    except FileNotFoundError:   # the smoke/mini world is not built yet: the folder it will be (plans, tests)
        base = str(world_dir(profile) / v.arch)
    return base if v.vanilla else str(run_folder(train_config(v, profile), base) / "final")


def train_log(v: Variant, profile: str) -> list[dict]:
    """The JSON-lines training log of an aligned variant (Fig. 3c)."""
    from .plots import read_train_log  # matplotlib
    return read_train_log(run_dir(v, profile) / "train_log.jsonl")
