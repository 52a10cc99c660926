"""Typed, frozen configuration of an alignment run, read from the `train` section of params.yaml.

One `TrainConfig` describes AFP and every baseline of the paper: `objective` switches the loss
(Eq. 4 and Table 8), nothing else changes. Values are checked when the config is built, so a typo or
an out-of-range value fails at load time with the allowed values, not after an hour of training."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal, get_args

from ..config import apply_overrides, from_dict, load_section, to_dict
from ..data.corpora import EVAL_SOURCES as CORPORA_EVAL_SOURCES

# What each objective trains on (Eq. 4 and the baselines of Table 8 / Fig. 3c): the loss parts a step computes.
# AFP's loss is mcl + alpha * cit; every other objective's loss is its one part. "cit" is Eq. 3 on
# instruction rows (response tokens only), "clm" the same loss on plain text rows (BPre), "mcl" is Eq. 2.
OBJECTIVE_LOSSES = {
    "afp": ("mcl", "cit"),   # Eq. 4
    "mcl": ("mcl",),         # MCL only (Table 8)
    "cit": ("cit",),         # CIT only (Table 8)
    "clm": ("clm",),         # BPre: causal LM on the pairs' sentences and the CIT samples' text (or given texts)
    "bit": ("cit",),         # BIT: CIT with the answer always in the source language (p_src = 1)
}
OBJECTIVES = tuple(OBJECTIVE_LOSSES)
# Parallel sources that are evaluation data: training on them is contamination (one list, in the data layer).
EVAL_SOURCES = tuple(CORPORA_EVAL_SOURCES)
# How a sentence vector is pooled from a layer's states (hidden.pool, which needs torch; this copy is torch-free).
Pooling = Literal["mean", "max", "last", "mean_skip_bos"]
POOLINGS = get_args(Pooling)


@dataclass(frozen=True)
class MCLConfig:
    layer: int = 1              # §3.2.2: the first block after the embeddings aligns best (0 = embeddings)
    pooling: Pooling = "mean"  # App. B.1: mean, last do best (hidden.py)
    temperature: float = 0.05   # tau of Eq. 2 (App. A)
    symmetric: bool = True      # both directions; the authors' code uses src -> tgt only
    gather: Literal["grad", "local_grad", "off"] = "grad"  # negatives from every rank in multi-process runs:
    # grad = exact (= one step on the joined batch); local_grad = the authors' (others' rows are constants); off = local only
    length_groups: int = 2      # early-exit calls per batch, rows grouped by length (speed only: less padding)


@dataclass(frozen=True)
class CITConfig:
    p_src: float = 0.5          # §3.2.3: probability that a sample's answer language equals its context's,
    # for every multilingual sample (Bactrian-X; translation: b = a repeats the source): docs/cit-data.md
    sources: list[str] = field(default_factory=lambda: ["translation"])  # translation | alpaca | bactrian
    prompt: Literal["answer", "translate"] = "answer"  # translation mode: "Answer in X:" or "Translate into X:"
    alpaca: int = 0             # English Alpaca samples to add when "alpaca" is a source (0 = all)
    batch_size: int = 0         # CIT samples per micro-step (0 = same as batch_size)
    pack: bool = False          # pack whole samples into seq_len rows (no sample is split or dropped; the
    # authors pack too, cutting the concatenation into blocks). No attention mask between packed samples.


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1.0e-5          # App. A
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # App. A
    eps: float = 1.0e-8
    weight_decay: float = 0.0
    schedule: Literal["cosine", "linear", "constant"] = "cosine"  # the authors' scripts: cosine
    warmup_ratio: float = 0.03  # the authors' scripts
    min_lr_ratio: float = 0.0   # floor of the decay, as a fraction of lr
    grad_clip: float = 1.0      # max global grad norm (0 = off)


@dataclass(frozen=True)
class DataConfig:
    langs: list[str] = field(default_factory=lambda: ["zh"])  # aligned with the pivot (bilingual = one language)
    pivot: str = "en"
    sources: list[str] = field(default_factory=lambda: ["opus100"])  # parallel sources (mirror folder names)
    policy: Literal["bridge", "pairwise"] = "bridge"  # §3.3.1: EN-XX only, or every XX-YY pair via the pivot
    max_pairs_per_lang: int = 0  # 0 = all pairs of every source
    bactrian_pairs: bool = False  # also use Bactrian-X instructions (en-xx matched by id) as MCL pairs
    dev_pairs: int = 200        # held-out pairs (never trained on) for alignment/uniformity/retrieval logs
    min_chars: int = 2          # drop pairs whose shorter side is shorter than this (UI fragments)
    max_chars: int = 0          # drop pairs whose longer side is longer than this (0 = keep all); counted in the log


@dataclass(frozen=True)
class TrainConfig:
    name: str = "afp"
    objective: str = "afp"      # a key of OBJECTIVE_LOSSES: Eq. 4 / Table 8 / Fig. 3c
    alpha: float = 1.5          # weight of CIT in Eq. 4 (App. B.2)
    seed: int = 0
    steps: int = 10000          # optimizer steps (App. A)
    batch_size: int = 16        # pairs per micro-step per process
    grad_accum: int = 1
    seq_len: int = 512
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # bf16 = torch autocast (weights stay fp32); auto =
    # bf16 on CUDA and on CPUs with bf16 instructions, fp32 elsewhere (emulated bf16 is ~6x slower on CPU)
    threads: int = 0            # torch.set_num_threads at the start of training (0 = torch's default); pinned
    # in CPU profiles because the thread count changes float summation order, hence the final weights
    backend: Literal["torch", "deepspeed"] = "torch"
    zero_stage: int = 2         # DeepSpeed ZeRO stage (1, 2 or 3)
    device: str = "auto"        # auto = cuda:LOCAL_RANK when present, else cpu ($AFP_DEVICE overrides auto)
    gradient_checkpointing: bool | Literal["auto"] = False  # recompute each block in backward: activations of
    # one block, not all (~4/3 the compute); auto = on where afp_lib.trainer.memory estimates the run would not fit
    # the GPU without it (off on CPU). Does not change the result (fp32: the same weights, tested)
    tokenized: Literal["memory", "arrow"] = "memory"  # token ids as lists in every process, or memory-mapped
    # Arrow files built once by rank 0 (trainer.tokenized; the same rows and batches): paper-scale data
    log_every: int = 10
    eval_every: int = 50        # alignment/uniformity/retrieval on the dev pairs (0 = only at the end)
    save_every: int = 100       # resumable checkpoint interval (0 = only the final model)
    keep_checkpoints: int = 2
    dist_timeout_minutes: float = 60.0  # process-group timeout of every collective (NCCL's default is 10 min;
    # a 7B run's collectives wait longer: a straggler's data loading, a resume reading ~100 GB from NFS)
    save_wait_minutes: float = 240.0  # how long the other ranks wait, polling a flag file and holding no
    # collective, while rank 0 writes a checkpoint (~15 GB + optimizer state) and deletes old ones (~120 GB)
    mcl: MCLConfig = field(default_factory=MCLConfig)
    cit: CITConfig = field(default_factory=CITConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self):
        validate(self)

    @property
    def uses_mcl(self) -> bool:
        return "mcl" in OBJECTIVE_LOSSES[self.objective]

    @property
    def uses_cit(self) -> bool:
        return "cit" in OBJECTIVE_LOSSES[self.objective]

    @property
    def p_src(self) -> float:
        """BIT is instruction tuning in each language: the answer language always equals the source."""
        return 1.0 if self.objective == "bit" else self.cit.p_src

    @property
    def cit_batch_size(self) -> int:
        return self.cit.batch_size or self.batch_size


# Settings that change how a run is carried out, not what it computes: left out of the run cache's key
# (trainer.runs.run_key, through afp_lib.config.semantic as world pretraining's OPERATIONAL), so changing one
# keeps every finished run a cache hit. Each says why; every other field (nested ones included) is in the key,
# and tests/test_run_cache.py fails on a field that is in neither this map nor its list of result fields.
# Not here, since they change the numbers: precision, threads (float summation order), backend and zero_stage
# (another optimizer / reduction), device, mcl.length_groups (grouping rows changes the weights by ~1e-6,
# measured), eval_every (the logged eval points are Fig. 3c's trajectory).
OPERATIONAL = {
    "name": "a label: it names the run folder (runs.run_dir), nothing reads it while training",
    "tokenized": "memory lists or memory-mapped Arrow files: the same rows in the same order (test_tokenized)",
    "gradient_checkpointing": "recomputes each block in backward (the RNG replayed): identical weights, measured",
    "log_every": "how often the losses are written: a log record is a read-out, the update does not see it",
    "save_every": "checkpoint interval: a resume gives the uninterrupted weights bit for bit (test_trainer)",
    "keep_checkpoints": "how many resumable checkpoints stay on disk",
    "dist_timeout_minutes": "how long a collective may wait before the process group gives up; no number sees it",
    "save_wait_minutes": "how long the other ranks wait for rank 0's save; they compute nothing meanwhile",
}


def validate(cfg: TrainConfig) -> None:
    """Range checks that types alone cannot express; every message names the value and what is allowed."""
    def bad(key, value, allowed):
        raise ValueError(f"train.{key}={value!r} is invalid; {allowed}")

    if cfg.objective not in OBJECTIVE_LOSSES:
        bad("objective", cfg.objective, f"use one of {', '.join(OBJECTIVES)} (OBJECTIVE_LOSSES in trainer/config.py)")
    if cfg.alpha < 0:
        bad("alpha", cfg.alpha, "alpha weights CIT in Eq. 4 and must be >= 0")
    if not 0.0 <= cfg.cit.p_src <= 1.0:
        bad("cit.p_src", cfg.cit.p_src, "a probability must lie in [0, 1]")
    if cfg.mcl.pooling not in POOLINGS:
        bad("mcl.pooling", cfg.mcl.pooling, "use one of " + ", ".join(map(repr, POOLINGS)))
    if not isinstance(cfg.mcl.layer, int) or cfg.mcl.layer < 0:
        bad("mcl.layer", cfg.mcl.layer, "use 0 (embeddings) .. the number of blocks of the model")
    if cfg.mcl.length_groups < 1:
        bad("mcl.length_groups", cfg.mcl.length_groups, "use 1 (one early-exit call per batch) or more")
    if cfg.mcl.temperature <= 0:
        bad("mcl.temperature", cfg.mcl.temperature, "tau must be > 0")
    for key in ("steps", "batch_size", "grad_accum", "seq_len", "log_every"):
        if getattr(cfg, key) < 1:
            bad(key, getattr(cfg, key), "must be >= 1")
    if cfg.dist_timeout_minutes <= 0 or cfg.save_wait_minutes <= 0:
        bad("dist_timeout_minutes/save_wait_minutes", (cfg.dist_timeout_minutes, cfg.save_wait_minutes), "minutes > 0")
    if cfg.threads < 0:
        bad("threads", cfg.threads, "use 0 (torch's default) or a positive thread count")
    if cfg.tokenized not in ("memory", "arrow"):
        bad("tokenized", cfg.tokenized, "use 'memory' (lists in every process) or 'arrow' (files built once)")
    if cfg.zero_stage not in (1, 2, 3):
        bad("zero_stage", cfg.zero_stage, "use ZeRO stage 1, 2 or 3")
    if cfg.optim.lr <= 0 or not 0 <= cfg.optim.warmup_ratio < 1:
        bad("optim", to_dict(cfg.optim), "lr must be > 0 and warmup_ratio in [0, 1)")
    if any(not 0 <= b < 1 for b in cfg.optim.betas) or len(cfg.optim.betas) != 2:
        bad("optim.betas", cfg.optim.betas, "two numbers in [0, 1)")
    unknown = sorted(set(cfg.cit.sources) - {"translation", "alpaca", "bactrian"})
    if unknown:
        bad("cit.sources", cfg.cit.sources, "use 'translation', 'alpaca' and/or 'bactrian'")
    leaked = sorted(set(cfg.data.sources) & set(EVAL_SOURCES))
    if leaked:
        raise ValueError(f"train.data.sources={cfg.data.sources!r} contains evaluation data {leaked} "
                         f"(contamination: {', '.join(EVAL_SOURCES)} are test sets); train on other sources")
    if cfg.data.pivot in cfg.data.langs:
        bad("data.langs", cfg.data.langs, f"list the languages aligned with the pivot {cfg.data.pivot!r}, not the pivot")
    if cfg.uses_mcl and cfg.batch_size < 2:
        bad("batch_size", cfg.batch_size, "MCL needs >= 2 pairs per batch (in-batch negatives)")


def load_train_config(profile: str | None = None, overrides: list[str] | dict | None = None,
                      path=None) -> TrainConfig:
    """The `train` section of params.yaml (base + profile) with `key.sub=value` overrides applied
    (`afp_lib.config.apply_overrides`)."""
    from ..config import default_profile
    profile = profile or default_profile(path)
    raw = apply_overrides(load_section("train", profile, path), overrides)
    return from_dict(TrainConfig, raw, where=f"train.{profile}")


def replace(cfg: TrainConfig, **changes) -> TrainConfig:
    """A new config with top-level fields changed (nested: pass a whole sub-config)."""
    return dataclasses.replace(cfg, **changes)


def config_dict(cfg: TrainConfig) -> dict:
    return to_dict(cfg)
