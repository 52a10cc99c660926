"""Where the world lives (`world_dir`), which vanilla model a profile aligns (`base_model`), and the
fingerprints of what each build step depends on (`ensure_world` rebuilds a step whose fingerprint changed)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from typing import TYPE_CHECKING

from ..paths import runs_dir

if TYPE_CHECKING:
    from .config import WorldConfig


def load_world_config(profile: str | None = None, overrides=None) -> WorldConfig:
    """world.config.load_world_config, imported when called: it imports afp_lib.models (torch)."""
    from .config import load_world_config as load
    return load(profile, overrides)

BUILT_PROFILES = ("smoke", "mini")


def world_dir(profile: str) -> Path:
    """runs/world/<profile>: corpus/ and, where the world has archs (smoke), tokenizer/, one save_pretrained
    folder per arch and ckpt/."""
    return runs_dir() / "world" / profile


def base_model(profile: str, arch: str) -> str:
    """The vanilla model to align: a converted pretrained model (params.yaml `models`, any profile), a local
    `save_pretrained` folder of the built world (smoke/mini) or a hub id (paper)."""
    from ..config import read_params
    if arch in (read_params().get("models") or {}):
        from ..pretrained import model_dir
        folder = model_dir(arch)
        if not (folder / "source.json").is_file():
            raise FileNotFoundError(f"the pretrained model {arch!r} is not converted yet ({folder} is missing). "
                                    f"Run `make setup-models && dvc repro models_convert@{arch}` "
                                    f"(docs/pretrained-models.md)")
        return str(folder)
    cfg = load_world_config(profile)
    if cfg.models:
        if arch not in cfg.models:
            raise KeyError(f"no {arch!r} model in world.{profile}.models; known: {', '.join(cfg.models)}")
        return cfg.models[arch]
    if not cfg.archs:
        known = ", ".join(read_params().get("models") or {}) or "none listed"
        raise KeyError(f"the {profile} world builds no models (world.{profile}.archs is empty), so {arch!r} is "
                       f"none of them: name a pretrained model of params.yaml `models` ({known}), a "
                       f"save_pretrained folder, or profile smoke for the toy models")
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
    from .pretrain import semantic  # torch
    model = {"tokenizer": tokenizer, "shape": c["shape"], "pretrain": semantic(cfg.pretrain),
             "weights": {t: v.weight for t, v in cfg.tier_configs().items()}}
    digest = lambda d: hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]  # noqa: E731
    return {"corpus": digest(corpus), "tokenizer": digest(tokenizer), "model": digest(model)}
