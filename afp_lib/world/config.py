"""The `world` section of params.yaml as frozen dataclasses: which languages the vanilla model sees and how
much of each (resource tiers), the tokenizer, the model shape and the pretraining budget."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..config import from_dict, load_section
from ..models import ModelShape

TIERS = ("high", "medium", "low")


@dataclass(frozen=True)
class TierConfig:
    weight: float = 1.0           # sampling weight of each language of the tier (tokens ∝ weight)
    max_bytes: int = 300_000      # training text kept per language: "low" languages get little even if the mirror has more
    tokenizer_bytes: int = 250_000  # text per language the BPE is trained on (flatter than `weight`: scripts need merges)


@dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: int = 8192
    min_frequency: int = 2


@dataclass(frozen=True)
class PretrainConfig:
    block_size: int = 128         # tokens per packed training row
    batch_size: int = 16
    steps: int = 900              # the fixed token budget is steps * batch_size * block_size
    lr: float = 2.0e-3
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1     # cosine decays to lr * min_lr_ratio
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    precision: str = "auto"       # auto | bf16 | fp32, as train.precision (devices.resolve_precision): auto = bf16
                                  # only where it is fast (AVX512-BF16/AMX CPUs); on a plain AVX2 CPU bf16 autocast is ~9x slower than fp32 (measured)
    checkpoint_every: int = 100   # steps between resumable checkpoints
    log_every: int = 25
    threads: int = 0              # torch.set_num_threads; 0 leaves torch's default


@dataclass(frozen=True)
class DiagnoseConfig:
    langs: list[str] = field(default_factory=lambda: ["zh", "tr", "th", "sw"])  # Tatoeba en-xx probe languages
    pairs: int = 300              # first N Tatoeba pairs per language
    layer: int = 1                # paper §3.2.2: block 1 is where MCL aligns
    pooling: str = "mean"
    batch_size: int = 64
    max_tokens: int = 128         # held-out lines are cut to this many tokens (BOS included)


@dataclass(frozen=True)
class WorldConfig:
    seed: int = 0
    languages: dict = field(default_factory=dict)  # lang -> tier ("high" | "medium" | "low")
    tiers: dict = field(default_factory=dict)      # tier -> TierConfig fields
    sources: list[str] = field(default_factory=lambda: ["libreoffice_help_mono", "leipzig", "thaigov", "masakhanews"])
    heldout_lines: int = 200      # segments per language kept out of training for the perplexity diagnostic
    chunk_chars: int = 400        # long paragraphs (news articles) are cut into segments of about this many characters
    min_match_chars: int = 15     # sentence-level overlap check ignores shorter sentences ("Yes.", "Note")
    archs: list[str] = field(default_factory=lambda: ["xglm", "bloom"])
    tokenizer: TokenizerConfig = TokenizerConfig()
    shape: ModelShape = ModelShape()
    pretrain: PretrainConfig = PretrainConfig()
    diagnose: DiagnoseConfig = DiagnoseConfig()
    models: dict = field(default_factory=dict)     # paper profile: arch -> hub id (no pretraining there)

    def tier(self, lang: str) -> TierConfig:
        return self.tier_configs()[self.languages[lang]]

    def tier_configs(self) -> dict[str, TierConfig]:
        return {name: from_dict(TierConfig, self.tiers.get(name, {}), f"world.tiers.{name}") for name in TIERS}


def load_world_config(profile: str | None = None, overrides=None) -> WorldConfig:
    """`world.base` deep-merged with `world.<profile>`, then `key.sub=value` overrides
    (`afp_lib.config.apply_overrides`), checked; unknown keys fail with a suggestion."""
    from ..config import apply_overrides
    data = apply_overrides(load_section("world", profile), overrides)
    cfg = from_dict(WorldConfig, data, f"world.{profile}")
    for lang, tier in cfg.languages.items():
        if tier not in TIERS:
            raise ValueError(f"world.{profile}.languages.{lang}={tier!r} is not a tier; use one of {', '.join(TIERS)}")
    unknown = set(cfg.tiers) - set(TIERS)
    if unknown:
        raise KeyError(f"world.{profile}.tiers has unknown tier(s) {sorted(unknown)}; use {', '.join(TIERS)}")
    cfg.tier_configs()  # type-check every tier now, not halfway through a build
    return cfg
