"""The `analysis:` section of params.yaml as a frozen dataclass (load with `analysis_config(profile)`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..trainer.config import Pooling
from ..config import Overrides, apply_overrides, from_dict, load_section


@dataclass(frozen=True)
class TSNEConfig:
    n_sentences: int = 1000    # §3.2.1: 1k EN-ZH translation pairs are visualised
    perplexity: float = 30.0   # openTSNE's default; clipped to (N - 1) / 3 for tiny inputs
    seed: int = 0              # fixed: the same vectors always give the same picture


@dataclass(frozen=True)
class AnalysisConfig:
    layer: int = 1                                   # §3.2.2: MCL aligns the first block; probe the same layer
    pooling: Pooling = "mean"  # §3.2.1 visualises mean-pooled representations
    batch_size: int = 32
    max_length: int = 128
    source: str = "tatoeba"        # held-out parallel sentences for the probes (never trained on)
    pivot: str = "en"
    languages: list[str] = field(default_factory=lambda: ["zh"])  # paired with `pivot`
    n_pairs: int = 1000            # sentences per pair for alignment/uniformity/retrieval
    metric: Literal["acc", "acc_norm", "acc_tok"] = "acc"  # the accuracy the ICL tables report
    tsne: TSNEConfig = field(default_factory=TSNEConfig)


def analysis_config(profile: str | None = None, overrides: Overrides = None) -> AnalysisConfig:
    """The `analysis` section (base + profile) with `key.sub=value` overrides (`afp_lib.config.apply_overrides`)."""
    cfg = apply_overrides(load_section("analysis", profile), overrides)
    return from_dict(AnalysisConfig, cfg, f"analysis.{profile or 'default'}")
