"""The run cache: a run is named by the hash of its resolved config plus the base model's identity (and
the data, when a caller passes its own), so asking twice for the same run trains once. Notebooks and
DVC stages share runs this way: `get_or_train(cfg, base_model)` returns `runs_dir()/align/<name>-<hash>`."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

from ..data.store import data_revisions
from ..paths import mirror_root, runs_dir
from . import distributed
from .checkpoint import RESULT, write_json
from .config import TrainConfig, config_dict

logger = logging.getLogger(__name__)
FULL_HASH_BYTES = 512 * 2**20  # weights up to this size are hashed in full; larger ones by header + size


def _hash_file(path: Path, h) -> None:
    size = path.stat().st_size
    h.update(f"{path.name}:{size}".encode())
    with open(path, "rb") as f:
        if size <= FULL_HASH_BYTES:
            for chunk in iter(lambda: f.read(2**20), b""):
                h.update(chunk)
        else:  # safetensors header: tensor names, shapes, dtypes, offsets; plus the first and last MiB
            h.update(f.read(2**20))
            f.seek(size - 2**20)
            h.update(f.read())


def model_identity(base_model: str | Path) -> str:
    """A local save_pretrained folder: hash of its config and weights. A hub id: the id itself."""
    path = Path(base_model)
    if not path.is_dir():
        return f"hub:{base_model}"
    h = hashlib.sha256()
    for f in sorted(path.glob("*.json")) + sorted(path.glob("*.safetensors")):
        if f.name != "train_config.json":
            _hash_file(f, h)
    return "dir:" + h.hexdigest()


def run_key(cfg: TrainConfig, base_model: str | Path, data=None) -> str:
    config = config_dict(cfg)
    for key in ("tokenized", "dist_timeout_minutes", "save_wait_minutes"):  # how a run is carried out, not what it computes
        config.pop(key, None)
    payload = {"config": config, "base_model": model_identity(base_model)}
    if data is not None:
        payload["data"] = asdict(data)
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:12]


def run_dir(cfg: TrainConfig, base_model: str | Path, data=None) -> Path:
    label = cfg.objective if cfg.name in ("afp", cfg.objective) else f"{cfg.name}-{cfg.objective}"
    return runs_dir() / "align" / f"{label}-{run_key(cfg, base_model, data)}"


def is_finished(path: Path) -> bool:
    return (Path(path) / "final" / RESULT).is_file()


def get_or_train(cfg: TrainConfig, base_model: str | Path, data=None) -> Path:
    """The run folder of (cfg, base_model): trained now if it has not finished before (resuming a
    killed run), loaded from the cache otherwise. The aligned model is in `<run>/final`.

    Under torchrun/deepspeed the process group is joined first; rank 0 alone holds the run's lock and
    decides (cache hit, or train/resume), every rank follows, so two launches of one run train it once."""
    from ..models import load_model
    from .loop import _device, train

    distributed.init_from_env(_device(cfg), timeout_minutes=cfg.dist_timeout_minutes)
    path = run_dir(cfg, base_model, data)
    with _rank0_lock(path) as decision:
        if decision == "hit":
            logger.info("run cache hit: %s", path)
            return path
        if distributed.is_main():
            write_json(path / "run.json", {"base_model": str(base_model), "identity": model_identity(base_model),
                                          "config": config_dict(cfg), "data": data_revisions(mirror_root())})
        model, tokenizer = load_model(str(base_model))
        train(cfg, model, tokenizer, path, data=data)
    return path


@contextlib.contextmanager
def _rank0_lock(path: Path, poll_s: float = 2.0):
    """Yields "hit" (finished) or "train" on every rank. Rank 0 takes the run's advisory lock (released when
    the process dies, so a killed run never blocks the next one, which then resumes from its checkpoint);
    while another launch holds it, rank 0 polls and tells the other ranks to keep waiting, so no collective
    call waits longer than `poll_s` (a long wait cannot trip the process group's timeout)."""
    main, handle, decision, told = distributed.is_main(), None, None, False
    try:
        while decision is None:
            verdict = None
            if main:
                if is_finished(path):
                    verdict = "hit"
                else:
                    path.mkdir(parents=True, exist_ok=True)
                    handle = handle or open(path / ".lock", "w")
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        # trained meanwhile by another process while we waited?
                        verdict = "hit" if is_finished(path) else "train"
                    except BlockingIOError:
                        if not distributed.multi():
                            fcntl.flock(handle, fcntl.LOCK_EX)  # one process: just block
                            verdict = "hit" if is_finished(path) else "train"
                        else:
                            if not told:
                                logger.info("another process is training %s; waiting for it", path)
                                told = True
                            time.sleep(poll_s)
            decision = distributed.broadcast(verdict)
        yield decision
    finally:
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
