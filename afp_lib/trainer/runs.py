"""The run cache: a run is named by the hash of its resolved config plus the base model's identity (and
the data, when a caller passes its own), so asking twice for the same run trains once. Notebooks and
DVC stages share runs this way: `get_or_train(cfg, base_model)` returns `runs_dir()/align/<name>-<hash>`."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

from ..data.store import data_revisions
from ..paths import mirror_root, runs_dir
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
    payload = {"config": config_dict(cfg), "base_model": model_identity(base_model)}
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
    killed run), loaded from the cache otherwise. The aligned model is in `<run>/final`."""
    from ..models import load_model
    from .loop import train

    path = run_dir(cfg, base_model, data)
    if is_finished(path):
        logger.info("run cache hit: %s", path)
        return path
    path.mkdir(parents=True, exist_ok=True)
    with _exclusive(path / ".lock"):  # two notebooks asking for the same run: one trains, the other waits
        if is_finished(path):
            logger.info("run cache hit (trained meanwhile by another process): %s", path)
            return path
        write_json(path / "run.json", {"base_model": str(base_model), "identity": model_identity(base_model),
                                      "config": config_dict(cfg), "data": data_revisions(mirror_root())})
        model, tokenizer = load_model(str(base_model))
        train(cfg, model, tokenizer, path, data=data)
    return path


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    """An advisory lock held for the duration of a run (released when the process dies, so a killed run
    never blocks the next one, which then resumes from the checkpoint)."""
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
