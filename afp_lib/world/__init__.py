"""The built world: a leak-checked corpus of the mirror's monolingual text and, for `smoke` (CI), toy vanilla
multilingual causal LMs (an XGLM and a BLOOM of a few million parameters), biased like the real ones: much
English, some Chinese and Turkish, little Thai and Swahili. Steps: corpus -> tokenizer -> pretrain per arch ->
diagnose. `mini` builds the corpus alone (its held-out text is the perplexity probes'; its sections align the
pretrained models of params.yaml `models`); the `paper` profile names hub checkpoints and builds nothing.

    from afp_lib.world import base_model, ensure_world
    ensure_world("smoke")                    # builds whatever is missing (seconds for smoke)
    model, tok = load_model(base_model("smoke", "xglm"))
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from typing import TYPE_CHECKING

from .layout import BUILT_PROFILES, base_model, fingerprints, load_world_config, world_dir  # noqa: F401

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


def _stamp(path: Path) -> str | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("fingerprint")
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def ensure_world(profile: str, archs: list[str] | None = None) -> Path:
    """Build the missing or out-of-date parts of the smoke/mini world (idempotent); return world_dir. A world
    without archs (mini: its sections align pretrained models) is its corpus alone, the probes' held-out text."""
    from . import steps  # torch (world.config imports afp_lib.models)
    if profile not in BUILT_PROFILES:
        raise ValueError(f"profile {profile!r} has no built world (it uses hub models); "
                         f"ensure_world works for {', '.join(BUILT_PROFILES)}")
    cfg = load_world_config(profile)
    fp, root = fingerprints(cfg), world_dir(profile)
    stale = _stamp(root / "corpus" / "stats.json") != fp["corpus"]
    if stale:
        steps.corpus(profile, cfg)
    if not (archs or cfg.archs):
        return root
    if stale or _stamp(root / "tokenizer" / "token_stats.json") != fp["tokenizer"]:
        steps.tokenizer(profile, cfg)
    # a model is current when it was pretrained under this config (its stamp) on these exact tokens: a fresh
    # clone rebuilds the corpus and tokenizer (not committed; the same bytes) and must not pretrain again
    tokens = (root / "tokenizer" / "tokenizer.json").read_bytes()
    for arch in archs or cfg.archs:
        if (_stamp(root / arch / "pretrain.json") != fp["model"]
                or not (root / arch / "tokenizer.json").is_file()
                or (root / arch / "tokenizer.json").read_bytes() != tokens):
            steps.pretrain(profile, cfg, arch)
    return root
