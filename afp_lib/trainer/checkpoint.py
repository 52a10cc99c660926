"""Checkpoints that plain transformers can load, plus what a resume needs.

Layout of a run folder:
    train_config.json
    train_log.jsonl
    checkpoints/step-0000100/   save_pretrained (safetensors) + tokenizer + train_config.json
                                + trainer_state.pt (optimizer, scheduler) or deepspeed/, rng-rank<r>.pt
                                (each rank's RNG), state.json (step, world size, global batch)
                                + complete.json (every file's size and sha256, written last)
    final/                      save_pretrained + tokenizer + train_config.json + result.json (written last)

Every folder is written under a temporary name and renamed into place (afp_lib.atomic), so a run killed at any moment
leaves either the previous checkpoint or the new one, never half of one. A checkpoint damaged afterwards
(a disk that filled up, a copy cut short, bytes overwritten at the same size) fails `verify` against its
complete.json (sizes, then sha256 of every file); resume then warns, naming the file, and falls back to
the previous good checkpoint. A checkpoint written before checksums existed is checked by its sizes and
safetensors headers, with a warning that its bytes cannot be checked (docs/run-cache.md)."""
from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from .. import atomic
from ..data.store import sha256_file

logger = logging.getLogger(__name__)

STATE = "state.json"
MANIFEST = "complete.json"  # {"files": {path: size in bytes}, "sha256": {path: hex}}, a checkpoint's last file
RESULT = "result.json"  # the last file written into final/: its presence means the run finished
TRAINER_STATE = "trainer_state.pt"  # optimizer and scheduler state


def write_json(path: Path, obj) -> None:
    atomic.write_text(path, json.dumps(obj, indent=2, ensure_ascii=False))


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_model_folder(folder: Path, model, tokenizer, config: dict, state_dict: dict | None = None) -> None:
    """`state_dict`: the weights when the live module does not hold them whole (DeepSpeed ZeRO-3)."""
    model.save_pretrained(folder, safe_serialization=True, state_dict=state_dict)
    tokenizer.save_pretrained(folder)
    write_json(folder / "train_config.json", config)


def save_optimizer(folder: Path, optimizer, scheduler) -> None:
    """The optimizer's and the schedule's state (trainer_state.pt), beside the weights of a checkpoint."""
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, Path(folder) / TRAINER_STATE)


def load_optimizer(folder: Path, optimizer, scheduler, device="cpu") -> None:
    state = torch.load(Path(folder) / TRAINER_STATE, map_location=device, weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])


def checkpoints(out_dir: Path) -> list[Path]:
    """Complete checkpoints (those with a state.json), oldest first."""
    root = Path(out_dir) / "checkpoints"
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.name.startswith("step-") and (p / STATE).is_file()]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def write_manifest(folder: Path) -> None:
    """Record every file's size and sha256 (of the bytes on disk, read back after writing); written last
    (atomically), so its presence means the folder was written whole."""
    paths = [p for p in sorted(Path(folder).rglob("*")) if p.is_file() and p.name != MANIFEST and not p.name.endswith(".tmp")]
    names = [str(p.relative_to(folder)) for p in paths]
    write_json(Path(folder) / MANIFEST, {"files": {n: p.stat().st_size for n, p in zip(names, paths)},
                                         "sha256": {n: sha256_file(p) for n, p in zip(names, paths)}})


def verify(folder: Path) -> str | None:
    """None when the checkpoint is whole, else what is wrong with which file: sizes first (cheap), then
    the checksums. A manifest without checksums (older checkpoints) is taken on its sizes and safetensors
    headers, with a warning; a checkpoint without a manifest on its headers only."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if manifest.is_file():
        try:
            record = json.loads(manifest.read_text(encoding="utf-8"))
            files, sums = record["files"], record.get("sha256")
        except (ValueError, KeyError, TypeError) as e:
            return f"{manifest}: unreadable ({e})"
        for name, size in files.items():
            path = folder / name
            if not path.is_file():
                return f"{path}: missing"
            if path.stat().st_size != size:
                return f"{path}: {path.stat().st_size} bytes, {size} when written (truncated?)"
        if sums is not None:
            for name, digest in sums.items():
                if sha256_file(folder / name) != digest:
                    return f"{folder / name}: sha256 differs from {manifest} (the bytes changed after saving)"
            return None
        logger.warning("checkpoint %s has no checksums (written before they existed): sizes and safetensors "
                       "headers checked, its bytes cannot be", folder)
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except Exception as e:  # safetensors raises its own error type for a cut or garbled header
            return f"{path}: unreadable ({type(e).__name__}: {e})"
    return None


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The newest complete checkpoint; damaged newer ones are skipped with a warning naming the file."""
    for path in reversed(checkpoints(out_dir)):
        problem = verify(path)
        if problem is None:
            return path
        logger.warning("checkpoint %s is damaged, skipped (falling back to an earlier one): %s", path.name, problem)
    return None


def prune(out_dir: Path, keep: int) -> None:
    for old in checkpoints(out_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def load_weights(model, folder: Path) -> None:
    """Load a save_pretrained folder's safetensors into a live model; only tied copies may be missing."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no .safetensors weights in {folder}")
    state = {}
    for f in files:
        state.update(load_file(str(f)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    params = dict(model.named_parameters(remove_duplicate=False))
    loaded = {params[k].data_ptr() for k in state if k in params}
    untied = [k for k in missing if k in params and params[k].data_ptr() not in loaded]  # buffers are rebuilt
    if untied or unexpected:
        raise ValueError(f"checkpoint {folder} does not match the model: missing {untied[:5]}, unexpected {unexpected[:5]}")
