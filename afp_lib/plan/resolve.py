"""Every run of every notebook section, resolved from params.yaml the way the notebooks read their blocks.

`afp_lib.sections.section_variants(name, profile)` gives a section's models (its params block's `runs:`,
the list its notebook trains); `resolve_plan(profile)` turns those into training runs through the same
`load_train_config` and run-cache key the notebooks use, so a run shared by two sections (the XGLM AFP run of Table 1 and of Table 8) is one
row here, as it is one folder under runs/align."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from ..experiment import train_config
from ..sections import SECTIONS, section_variants  # noqa: F401  (the plan's runs are the notebooks')
from ..paths import mirror_root
from ..trainer.config import EVAL_SOURCES, TrainConfig
from ..trainer.runs import run_dir, run_key
from .facts import (BACTRIAN_X_LANGS, BACTRIAN_X_ROWS, HUB_HEADS_VOCAB, HUB_MODELS, OPUS100_LANGS, PAPER_GPUS,
                    EvalThroughput, HubModel, Throughput)
from ..trainer.memory import MemoryModel, Shape, wants_checkpointing
from ..trainer.memory import estimate as estimate_memory

if TYPE_CHECKING:
    from .grid import Grid


@dataclass
class PlanRun:
    """One training run of the plan (after deduplication through the run-cache key)."""
    key: str
    run_dir: str
    arch: str
    hub_id: str
    family: str
    seed: int
    objective: str
    layer: int
    pooling: str
    p_src: float
    alpha: float
    policy: str
    langs: list[str]
    steps: int
    batch_per_gpu: int
    grad_accum: int
    gpus: int
    global_batch: int
    seq_len: int
    sources: dict            # source -> expected rows per language (hub sizes as configured / known)
    mcl_pairs: int           # expected training pairs (all languages, before the dev hold-out)
    cit_samples: int
    epochs: float            # passes over the pairs that `steps x global_batch` amounts to
    tokens: int              # estimated tokens processed (Throughput assumption)
    tokens_per_step: int     # of one optimizer step, all GPUs (packed CIT rows: seq_len each)
    gpu_hours: float         # x Throughput.recompute where checkpointing is on
    wall_hours: float        # on `gpus` GPUs
    state_gb_per_gpu: float  # ZeRO-2 bf16 model states per GPU (weights 2P + grads/master/Adam 14P/gpus + buckets)
    checkpointing: bool | None  # train.gradient_checkpointing as the trainer resolves it on the plan's GPU
    mem_gb_per_gpu: float    # afp_lib.trainer.memory estimate with that decision
    memory: dict             # its parts (GB): states, activations, logits, overhead, total
    used_by: list[str] = field(default_factory=list)   # "section:label" of every notebook model that is this run
    uncovered: list[str] = field(default_factory=list)  # languages without pairs in train.data.sources (a PROBLEM)
    overrides: list[str] = field(default_factory=list)
    cfg: TrainConfig | None = field(default=None, repr=False)

    def row(self) -> dict:
        d = asdict(self)
        d.pop("cfg")
        return d


@dataclass
class Plan:
    profile: str
    gpus: int
    throughput: Throughput
    runs: list[PlanRun]
    vanilla: dict[str, list[str]]        # hub id / folder -> sections that evaluate the unaligned model
    sections: dict[str, dict]            # name -> {"variants": n, "runs": n, "new_runs": n}
    problems: list[str]
    grid: "Grid | None" = None           # the evaluation grid (afp_lib.plan.grid), when resolved
    memory: MemoryModel = field(default_factory=MemoryModel)   # the assumptions behind mem_gb / checkpointing

    @property
    def totals(self) -> dict:
        return {"runs": len(self.runs), "vanilla_models": len(self.vanilla),
                "optimizer_steps": sum(r.steps for r in self.runs), "tokens": sum(r.tokens for r in self.runs),
                "gpu_hours": round(sum(r.gpu_hours for r in self.runs), 1),
                "wall_hours": round(sum(r.wall_hours for r in self.runs), 1)}

    def to_json(self) -> str:
        return json.dumps({"profile": self.profile, "gpus": self.gpus, "throughput": asdict(self.throughput),
                           "assumption": self.throughput.describe(), "memory": asdict(self.memory),
                           "memory_assumption": self.memory.describe(), "totals": self.totals,
                           "sections": self.sections, "problems": self.problems,
                           "vanilla": self.vanilla, "runs": [r.row() for r in self.runs],
                           **({"eval": self.grid.to_json()} if self.grid is not None else {})},
                          indent=1, ensure_ascii=False)


def _base_model(profile: str, arch: str) -> str:
    from ..world import base_model, world_dir
    try:
        return base_model(profile, arch)
    except FileNotFoundError:  # smoke/mini world not built yet: name the folder it will be
        return str(world_dir(profile) / arch)


def expected_sources(cfg: TrainConfig) -> tuple[dict, list[str]]:
    """source -> {lang: expected rows} for the run's data recipe, and the languages no pair source covers."""
    d, out = cfg.data, {}
    root = mirror_root()
    manifest = json.loads((root / "manifest.json").read_text()) if root and (root / "manifest.json").is_file() else {}
    for s in d.sources:
        rows = {}
        for lang in d.langs:
            if s == "opus100":
                n = d.max_pairs_per_lang if lang in OPUS100_LANGS else 0   # the cap as configured (hub has >= 100k for most)
            else:
                n = manifest.get(f"parallel/{s}/{d.pivot}-{lang}.jsonl", {}).get("rows", 0)
            rows[lang] = min(n, d.max_pairs_per_lang) if d.max_pairs_per_lang else n
        out[s] = rows
    if d.bactrian_pairs or ((cfg.uses_cit or cfg.objective == "clm") and "bactrian" in cfg.cit.sources):  # BPre: CIT text
        out["bactrian"] = {lang: BACTRIAN_X_ROWS if lang in BACTRIAN_X_LANGS else 0 for lang in d.langs}
    pair_sources = [*d.sources, *(["bactrian"] if d.bactrian_pairs else [])]  # Bactrian-X covers sw/tl (no OPUS-100)
    uncovered = [lang for lang in d.langs if not any(out[s][lang] for s in pair_sources)]
    return out, uncovered


def estimate(cfg: TrainConfig, model: HubModel | None, gpus: int, tp: Throughput, hub: str = "",
             mm: MemoryModel | None = None) -> dict:
    """Tokens, GPU-hours, memory per GPU and the checkpointing decision of one run under the stated
    throughput and memory assumptions (`Throughput`, `memory.MemoryModel`)."""
    from ..losses import HEAD_CHUNK
    gb = cfg.batch_size * cfg.grad_accum * gpus
    lm_batch = (cfg.cit_batch_size if cfg.uses_cit else cfg.batch_size) * cfg.grad_accum * gpus
    mcl_tokens = 2 * tp.tokens_per_sentence * gb if cfg.uses_mcl else 0
    packed = cfg.objective == "clm" or (cfg.uses_cit and cfg.cit.pack)
    per_row = cfg.seq_len if packed else 2 * tp.tokens_per_sentence + tp.prompt_tokens
    lm_tokens = min(per_row, cfg.seq_len) * lm_batch if (cfg.uses_cit or cfg.objective == "clm") else 0
    fixed = cfg.gradient_checkpointing if cfg.gradient_checkpointing != "auto" else None
    out = {"tokens": cfg.steps * (mcl_tokens + lm_tokens), "tokens_per_step": mcl_tokens + lm_tokens,
           "gpu_hours": float("nan"), "wall_hours": float("nan"), "state_gb_per_gpu": float("nan"),
           "checkpointing": fixed, "mem_gb_per_gpu": float("nan"), "memory": {}}
    if model is not None and hub in HUB_HEADS_VOCAB:
        shape = Shape(model.family, model.params, model.n_layers, model.d_model, *HUB_HEADS_VOCAB[hub])
        ckpt = wants_checkpointing(shape, cfg, gpus, mm)
        memory = estimate_memory(shape, cfg, gpus, ckpt, mm)
        depth = min(1.0, cfg.mcl.layer / model.n_layers)    # MCL's early exit runs only the first `layer` blocks
        flops = 6 * model.params * cfg.steps * (mcl_tokens * depth + lm_tokens) * (tp.recompute if ckpt else 1)
        if lm_batch // (gpus * cfg.grad_accum) * per_row > HEAD_CHUNK:   # the chunked head's forward runs twice
            flops += 2 * shape.vocab * shape.d_model * cfg.steps * lm_tokens
        gpu_h = flops / (tp.peak_tflops * 1e12 * tp.mfu) / 3600
        out.update(gpu_hours=round(gpu_h, 2), wall_hours=round(gpu_h / gpus, 2), state_gb_per_gpu=memory["states"],
                   checkpointing=ckpt, mem_gb_per_gpu=memory["total"], memory=memory)
    return out


def resolve_plan(profile: str = "paper", gpus: int = PAPER_GPUS, throughput: Throughput | None = None,
                 sections: tuple[str, ...] = SECTIONS, grid: bool = False,
                 eval_throughput: EvalThroughput | None = None, memory: MemoryModel | None = None) -> Plan:
    """The training runs; with `grid`, also the evaluation grid (item counts read from the data)."""
    plan = _resolve(profile, gpus, throughput or Throughput(), sections, memory or MemoryModel())
    if grid:
        from .grid import resolve_grid
        plan.grid = resolve_grid(profile, sections, eval_throughput)
    return plan


def _resolve(profile: str, gpus: int, tp: Throughput, sections: tuple[str, ...], mm: MemoryModel) -> Plan:
    runs: dict[str, PlanRun] = {}
    vanilla: dict[str, list[str]] = {}
    summary, problems = {}, []
    for name in sections:
        vs = section_variants(name, profile)
        before, keys = len(runs), set()
        for v in vs:
            hub = _base_model(profile, v.arch)
            if v.vanilla:
                vanilla.setdefault(hub, []).append(name)
                continue
            cfg = train_config(v, profile)
            key = run_key(cfg, hub)
            keys.add(key)
            if key in runs:
                runs[key].used_by.append(f"{name}:{v.label}")
                continue
            model = HUB_MODELS.get(hub)
            sources, uncovered = expected_sources(cfg)
            where = f"{name}:{v.label} ({v.arch})"
            if profile == "paper" and model is None:
                problems.append(f"{where}: {hub!r} is not in afp_lib.plan.facts.HUB_MODELS (size unknown)")
            if model and cfg.uses_mcl and cfg.mcl.layer > model.n_layers:
                problems.append(f"{where}: mcl.layer={cfg.mcl.layer} but {hub} has {model.n_layers} blocks")
            if uncovered:
                problems.append(f"{where}: no {cfg.data.pivot}-xx pairs in train.data.sources={cfg.data.sources} "
                                f"for {', '.join(uncovered)} (the trainer needs them for every language)")
            if set(cfg.data.sources) & set(EVAL_SOURCES):
                problems.append(f"{where}: trains on evaluation data {sorted(set(cfg.data.sources) & set(EVAL_SOURCES))}")
            pairs = sum(sum(rows.values()) for s, rows in sources.items() if s != "bactrian" or cfg.data.bactrian_pairs)
            cit = 0
            if cfg.uses_cit:
                cit = pairs if "translation" in cfg.cit.sources else 0
                cit += BACTRIAN_X_ROWS if "bactrian" in cfg.cit.sources else 0   # one sample per Bactrian-X id
            gb = cfg.batch_size * cfg.grad_accum * gpus
            runs[key] = PlanRun(
                key=key, run_dir=str(run_dir(cfg, hub)), arch=v.arch, hub_id=hub,
                family=model.family if model else v.arch.split("-")[0], seed=cfg.seed, objective=cfg.objective,
                layer=cfg.mcl.layer, pooling=cfg.mcl.pooling, p_src=cfg.p_src, alpha=cfg.alpha, policy=cfg.data.policy,
                langs=list(cfg.data.langs), steps=cfg.steps, batch_per_gpu=cfg.batch_size, grad_accum=cfg.grad_accum,
                gpus=gpus, global_batch=gb, seq_len=cfg.seq_len, sources=sources, mcl_pairs=pairs, cit_samples=cit,
                epochs=round(cfg.steps * gb / pairs, 2) if pairs else float("nan"),
                used_by=[f"{name}:{v.label}"], uncovered=uncovered, overrides=list(v.train or ()), cfg=cfg,
                **estimate(cfg, model, gpus, tp, hub, mm))
        summary[name] = {"variants": len(vs), "runs": len(keys), "new_runs": len(runs) - before}
    return Plan(profile, gpus, tp, list(runs.values()), vanilla, summary, problems, memory=mm)
