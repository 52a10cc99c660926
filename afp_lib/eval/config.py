"""`EvalConfig`: the `eval:` section of params.yaml (base + profile) as a frozen, type-checked dataclass."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..trainer.config import Pooling
from ..config import Overrides, apply_overrides, from_dict, load_section
from .tasks import ICL_TASKS  # every multiple-choice task of tasks/*.yaml, in their order


@dataclass(frozen=True)
class TranslationConfig:
    langs: list[str] = field(default_factory=lambda: ["en", "zh"])  # every direction among these (Table 2/4)
    shots: list[int] = field(default_factory=lambda: [0, 1, 5])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    max_items: int | None = None     # None = the whole devtest (1012)
    max_new_tokens: int = 128        # FLORES sentences are < 100 tokens for XGLM-sized vocabularies
    batch_size: int = 16             # sentences per generation batch at most
    batch_tokens: int | None = None  # and at most this many cached positions (rows x (prefix + prompt + new))

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [(a, b) for a in self.langs for b in self.langs if a != b]


@dataclass(frozen=True)
class EvalConfig:
    tasks: list[str] = field(default_factory=lambda: list(ICL_TASKS))
    langs: list[str] | None = field(default_factory=lambda: ["en", "zh"])  # None = all languages of each task
    shots: list[int] = field(default_factory=lambda: [0, 5])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])   # the paper averages 3 seeds
    max_items: int | None = None     # per language; a fixed subset (same for every model, shot count, seed)
    demo_lang: str | None = None     # None: demonstrations in the test language; "en": cross-lingual ICL
    demos: Literal["random", "semantic"] = "random"     # semantic = nearest demonstrations (Table 6)
    connectors: Literal["english", "native"] = "english"  # the paper uses English connectors everywhere
    batch_size: int = 32             # rows (candidate sequences) per forward
    batch_tokens: int | None = None  # and at most this many attended positions per forward (long 5-shot prompts)
    precision: Literal["auto", "bf16", "fp32"] = "fp32"  # as train.precision; bf16 autocast scores differ ~1e-2
    threads: int = 0                 # torch.set_num_threads before scoring (0 = torch's default); pinned in CPU
    # profiles so that the summation order, hence a near-tie's argmax, does not depend on the machine
    semantic_layer: int = 1
    semantic_pooling: Pooling = "mean"
    translation: TranslationConfig = field(default_factory=TranslationConfig)

    @property
    def bf16(self) -> bool:
        """Score under bf16 autocast: `precision` resolved for the evaluation device (devices.resolve_precision)."""
        from ..devices import resolve_device, resolve_precision
        return resolve_precision(self.precision, resolve_device("auto"), "eval.precision") == "bf16"

    def icl_kwargs(self) -> dict:
        """Keyword arguments of `evaluate` (everything but the translation block)."""
        return {k: getattr(self, k) for k in ("tasks", "langs", "shots", "seeds", "max_items", "demo_lang", "demos",
                                             "connectors", "batch_size", "batch_tokens", "bf16", "semantic_layer",
                                             "semantic_pooling")}


def load_eval_config(profile: str | None = None, path=None, overrides: Overrides = None) -> EvalConfig:
    """`eval` base merged with `profile` (default: params.yaml's `profile`), then `overrides`
    (`afp_lib.config.apply_overrides`: `translation.langs=[en, th]`, or the same as a tree, keeps the
    profile's translation shots, seeds and sizes)."""
    data = apply_overrides(load_section("eval", profile, path), overrides)
    return from_dict(EvalConfig, data, f"eval.{profile or 'profile'}")
