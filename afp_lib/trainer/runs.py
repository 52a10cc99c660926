"""The run cache: a run is named by the hash of the config fields that change its result (all but
`config.OPERATIONAL`) plus the base model's identity (and the data, when a caller passes its own), so asking
twice for the same run trains once. Notebooks and DVC stages share runs this way: `get_or_train(cfg,
base_model)` returns `runs_dir()/align/<name>-<hash>`. The world size is not in the key (a run launched on
8 GPUs is read by a one-process notebook), so a launch on another number of ranks than the cached run's is
refused. See docs/run-cache.md."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

from ..config import semantic
from ..data.store import data_revisions
from ..paths import mirror_root, runs_dir
from . import distributed
from .checkpoint import RESULT, write_json
from .config import OPERATIONAL, TrainConfig, config_dict

logger = logging.getLogger(__name__)
FULL_HASH_BYTES = 512 * 2**20  # weights up to this size are hashed in full; larger ones by header + size
_warned: set[Path] = set()  # runs of another world size already named to this process (one warning each)


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


def identity_tag(model: str | Path) -> str:
    """12 hex digits of `model_identity`: a file name part that tells two models apart (two runs' `final`)."""
    return hashlib.sha256(model_identity(model).encode()).hexdigest()[:12]


def _digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:12]


def run_key(cfg: TrainConfig, base_model: str | Path, data=None) -> str:
    """The hash of what makes the run's result: the config less its OPERATIONAL fields, the base model's
    identity, and the caller's data (None: built from the config). Not the world size: see `_world_problem`."""
    payload = {"config": semantic(cfg, OPERATIONAL), "base_model": model_identity(base_model)}
    if data is not None:
        payload["data"] = asdict(data)
    return _digest(payload)


def _label(cfg: TrainConfig) -> str:
    return cfg.objective if cfg.name in ("afp", cfg.objective) else f"{cfg.name}-{cfg.objective}"


def run_dir(cfg: TrainConfig, base_model: str | Path, data=None) -> Path:
    return runs_dir() / "align" / f"{_label(cfg)}-{run_key(cfg, base_model, data)}"


def is_finished(path: Path) -> bool:
    return (Path(path) / "final" / RESULT).is_file()


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def recorded_world(path: Path) -> int | None:
    """The number of ranks a run folder was trained by: run.json's `world_size` (written since run keys
    left the world size out), else final/result.json's `ranks` (written by replicated multi-rank runs), else
    1 for the torch backend (whose multi-rank runs always write `ranks`); None when unknown (an old DeepSpeed run)."""
    path = Path(path)
    run = _read_json(path / "run.json")
    if "world_size" in run:
        return int(run["world_size"])
    result = _read_json(path / "final" / RESULT)
    if "ranks" in result:
        return int(result["ranks"])
    backend = (run.get("config") or _read_json(path / "train_config.json")).get("backend", "torch")
    return 1 if backend == "torch" else None


def _world_problem(path: Path, cfg: TrainConfig, world: int) -> str | None:
    """Why a finished run must not be returned to this launch, or None. A launch on W > 1 ranks trains on a
    global batch of W x batch_size x grad_accum: another world size is another run, refused (not trained
    over it). One process reads a run of any world size (the paper's runs are trained on 8 GPUs and read
    by the notebooks), with a warning naming the run's global batch."""
    was = recorded_world(path)
    if was == world:
        return None
    per_rank = cfg.batch_size * cfg.grad_accum
    was_text = f"{was} rank(s), a global batch of {was * per_rank}" if was else "an unrecorded number of ranks"
    if world == 1:
        if path not in _warned:
            _warned.add(path)
            logger.warning("run %s was trained by %s (batch_size %d x grad_accum %d x ranks); returned to this "
                           "one-process caller as it is", path, was_text, cfg.batch_size, cfg.grad_accum)
        return None
    return (f"run cache: {path} holds this config trained by {was_text}; this launch has {world} ranks, a "
            f"global batch of {world * per_rank} (batch_size {cfg.batch_size} x grad_accum {cfg.grad_accum} x "
            f"ranks), which is another run. The key leaves the world size out (one-process readers find "
            f"multi-GPU runs), so: launch with {was or 'the same number of'} processes to use it, or change "
            f"batch_size/grad_accum so the config says the global batch, or move {path} away to train anew.")


def get_or_train(cfg: TrainConfig, base_model: str | Path, data=None) -> Path:
    """The run folder of (cfg, base_model): trained now if it has not finished before (resuming a
    killed run), loaded from the cache otherwise. The aligned model is in `<run>/final`.

    Under torchrun/deepspeed the process group is joined first; rank 0 alone holds the run's lock and
    decides (cache hit, or train/resume), every rank follows, so two launches of one run train it once.
    A finished run of another world size is refused on W > 1 ranks (`_world_problem`)."""
    from ..models import load_model
    from ..devices import resolve_device
    from .loop import train

    distributed.init_from_env(resolve_device(cfg.device), timeout_minutes=cfg.dist_timeout_minutes)
    path = run_dir(cfg, base_model, data)
    world = distributed.rank_world()[1]
    with _rank0_lock(path) as decision:
        if decision == "hit":
            problem = distributed.broadcast(_world_problem(path, cfg, world) if distributed.is_main() else None)
            if problem:
                raise RuntimeError(problem)
            logger.info("run cache hit: %s", path)
            return path
        if distributed.is_main():
            write_json(path / "run.json", {"base_model": str(base_model), "identity": model_identity(base_model),
                                          "key": run_key(cfg, base_model, data), "world_size": world,
                                          "global_batch": world * cfg.batch_size * cfg.grad_accum,
                                          "config": config_dict(cfg), "data": data_revisions(mirror_root())})
        model, tokenizer = load_model(str(base_model))
        train(cfg, model, tokenizer, path, data=data)
    return path


@contextlib.contextmanager
def _rank0_lock(path: Path):
    """Yields "hit" (finished) or "train" on every rank. Rank 0 takes the run's advisory lock (released when
    the process dies, so a killed run never blocks the next one, which then resumes from its checkpoint),
    blocking while another launch holds it; the other ranks wait on a flag file meanwhile
    (`distributed.on_main`), so no collective waits on another launch."""
    handle = None

    def decide() -> str:
        nonlocal handle
        if is_finished(path):
            return "hit"
        path.mkdir(parents=True, exist_ok=True)
        handle = open(path / ".lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("another process is training %s; waiting for it", path)
            fcntl.flock(handle, fcntl.LOCK_EX)
        return "hit" if is_finished(path) else "train"  # trained meanwhile by the launch we waited for?
    try:
        yield distributed.broadcast(distributed.on_main(decide, path, f"waiting for the lock of {path.name}",
                                                        float("inf"), poll_s=2.0, name=".lock-wait.json"))
    finally:
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
