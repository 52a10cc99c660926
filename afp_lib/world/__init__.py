"""The `mini` world: no pretrained model can be downloaded here, so afp makes its own vanilla multilingual
causal LMs (an XGLM and a BLOOM), biased like the real ones: much English, some Chinese and Turkish, little
Thai and Swahili. Steps: corpus (mirror mono text, leak-checked) -> tokenizer -> pretrain per arch ->
diagnose. The `paper` profile names hub checkpoints instead and builds nothing.

    from afp_lib.world import base_model, ensure_world
    ensure_world("smoke")                    # builds whatever is missing (seconds for smoke)
    model, tok = load_model(base_model("smoke", "xglm"))
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

from typing import TYPE_CHECKING

from ..paths import runs_dir

if TYPE_CHECKING:
    from .config import WorldConfig

logger = logging.getLogger(__name__)


def __getattr__(name: str):
    """WorldConfig on first use: world.config imports afp_lib.models (torch), which `python -m afp_lib world
    --help` does not need (PEP 562)."""
    if name == "WorldConfig":
        from . import config
        return getattr(config, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_world_config(profile: str | None = None, overrides=None) -> WorldConfig:
    """world.config.load_world_config, imported when called (see __getattr__)."""
    from .config import load_world_config as load
    return load(profile, overrides)

BUILT_PROFILES = ("smoke", "mini")


def world_dir(profile: str) -> Path:
    """runs/world/<profile>: corpus/, tokenizer/, one save_pretrained folder per arch, ckpt/."""
    return runs_dir() / "world" / profile


def base_model(profile: str, arch: str) -> str:
    """The vanilla model to align: a local `save_pretrained` folder (smoke/mini) or a hub id (paper)."""
    cfg = load_world_config(profile)
    if cfg.models:
        if arch not in cfg.models:
            raise KeyError(f"no {arch!r} model in world.{profile}.models; known: {', '.join(cfg.models)}")
        return cfg.models[arch]
    if arch not in cfg.archs:
        raise KeyError(f"arch {arch!r} is not built in the {profile} world; use one of {', '.join(cfg.archs)}")
    folder = world_dir(profile) / arch
    if not (folder / "pretrain.json").is_file():
        raise FileNotFoundError(
            f"the {profile} world has no pretrained {arch} model yet ({folder} is missing). Build it with "
            f"`dvc repro` (profile: {profile} in params.yaml), `python -m afp_lib world all --profile {profile}` "
            f"or afp_lib.world.ensure_world({profile!r})")
    return str(folder)


# --- what each step depends on: a changed fingerprint makes ensure_world rebuild that step and the later ones

def fingerprints(cfg: WorldConfig) -> dict[str, str]:
    c = asdict(cfg)
    corpus = {k: c[k] for k in ("seed", "languages", "sources", "heldout_lines", "chunk_chars", "min_match_chars")}
    corpus["max_bytes"] = {t: v.max_bytes for t, v in cfg.tier_configs().items()}
    tokenizer = {"corpus": corpus, "tokenizer": c["tokenizer"],
                 "tokenizer_bytes": {t: v.tokenizer_bytes for t, v in cfg.tier_configs().items()}}
    from .pretrain import semantic
    model = {"tokenizer": tokenizer, "shape": c["shape"], "pretrain": semantic(cfg.pretrain),
             "weights": {t: v.weight for t, v in cfg.tier_configs().items()}}
    digest = lambda d: hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]  # noqa: E731
    return {"corpus": digest(corpus), "tokenizer": digest(tokenizer), "model": digest(model)}


def _stamp(path: Path) -> str | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("fingerprint")
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def ensure_world(profile: str, archs: list[str] | None = None) -> Path:
    """Build the missing or out-of-date parts of the smoke/mini world (idempotent); return world_dir."""
    from . import steps
    if profile not in BUILT_PROFILES:
        raise ValueError(f"profile {profile!r} has no built world (it uses hub models); "
                         f"ensure_world works for {', '.join(BUILT_PROFILES)}")
    cfg = load_world_config(profile)
    fp, root = fingerprints(cfg), world_dir(profile)
    stale = _stamp(root / "corpus" / "stats.json") != fp["corpus"]
    if stale:
        steps.corpus(profile, cfg)
    stale = stale or _stamp(root / "tokenizer" / "token_stats.json") != fp["tokenizer"]
    if stale:
        steps.tokenizer(profile, cfg)
    for arch in archs or cfg.archs:
        if stale or _stamp(root / arch / "pretrain.json") != fp["model"]:
            steps.pretrain(profile, cfg, arch)
    return root
