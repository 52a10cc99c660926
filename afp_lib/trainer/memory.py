"""GPU memory of one training run, per GPU, and the activation-checkpointing decision that follows from it.

The one formula behind the plan's `mem_gb` column and behind `train.gradient_checkpointing: auto` (the trainer
asks `wants_checkpointing` with the real GPU's memory). Four parts, in bytes per GPU:

    model states   ZeRO-2 bf16: 2P weights + (2P bf16 grads + 12P fp32 master/Adam m/v) / gpus + ZeRO buckets
                   (ZeRO-1: grads not sharded; ZeRO-3: all 16P sharded; torch backend: 16P fp32 per GPU)
    activations    no checkpointing:  T x L x A          A = per_hidden x H + per_score x heads x seq_len
                   checkpointing:     T x L x 2H + T x A (each block keeps its bf16 input; one block is
                                      recomputed at a time in backward)
                   + the MCL early exit over its pair rows (their first `mcl.layer` blocks)
    LM head        min(N, HEAD_CHUNK) x V x logit_bytes  (losses.HEAD_CHUNK: the head runs chunk by chunk)
    overhead       CUDA context, NCCL buffers, allocator fragmentation (a constant)

T = rows x seq_len tokens per micro-step (packed rows are full; other rows are counted at seq_len, a bound),
N = T (every token a label: a bound), P parameters, L blocks, H hidden size, V vocabulary.
`ACT_BYTES` (per family: per_hidden, per_score) is measured on the CPU by bench/activation_memory.py; a GPU
measurement (torch.cuda.max_memory_allocated of 1 and 2 blocks, as in `afp_lib rehearse`) replaces them."""
from __future__ import annotations

from dataclasses import dataclass, field

# bench/activation_memory.py (bf16, train mode with each checkpoint's dropout, 256 and 512 tokens per row):
# bytes autograd keeps per token per block = per_hidden x H + per_score x heads x seq_len.
# XGLM-7.5B 272 KiB, BLOOM-7b1 224 KiB, Llama-7B 182 KiB per token per block at 512 tokens.
ACT_BYTES = {
    "xglm": (36.0, 8.0),     # eager attention: fp32 softmax output, bf16 probabilities, dropout mask (p=0.1)
    "bloom": (32.0, 6.0),    # eager attention (alibi), no dropout
    "llama": (45.6, 0.0),    # SDPA (flash / memory-efficient): no score matrix is kept
}
ACT_BYTES_DEFAULT = (45.6, 8.0)  # a family not measured: the larger of each term


@dataclass(frozen=True)
class Shape:
    """What the memory formula needs of a model."""
    family: str
    params: float
    n_layers: int
    d_model: int
    n_heads: int
    vocab: int


def shape_of(model) -> Shape:
    """The Shape of a loaded transformers model (its language model config's standard attribute names)."""
    from ..families import text_config
    c = text_config(model.config)
    return Shape(c.model_type, float(sum(p.numel() for p in model.parameters())), c.num_hidden_layers,
                 c.hidden_size, c.num_attention_heads, c.vocab_size)


@dataclass(frozen=True)
class MemoryModel:
    """The assumptions behind every memory number (all printed by `describe`)."""
    gpu_gb: float = 80.0          # A100 80GB (App. A); the trainer passes the real GPU's memory
    headroom: float = 0.9         # checkpointing turns on when the estimate without it exceeds this share
    logit_bytes: float = 16.0     # per chunk token and vocabulary entry at the head's backward peak: bf16 logits,
    # their fp32 copy and log-softmax output (kept), the fp32 gradient of each, its bf16 cast (~2+4+4+4+2)
    bucket_gb: float = 2.0        # DeepSpeed's default reduce + allgather buckets, 5e8 bf16 elements each
    overhead_gb: float = 3.0      # CUDA context, NCCL buffers, fragmentation: assumed, not measured
    mcl_row_tokens: int = 128     # MCL pair rows are sentences (~60 tokens; rows padded to a length group's longest)
    act_bytes: dict = field(default_factory=lambda: dict(ACT_BYTES))

    def block_bytes(self, s: Shape, seq_len: int) -> float:
        per_hidden, per_score = self.act_bytes.get(s.family, ACT_BYTES_DEFAULT)
        return per_hidden * s.d_model + per_score * s.n_heads * seq_len

    def describe(self) -> str:
        acts = ", ".join(f"{k} {h:g}H + {a:g} x heads x seq" for k, (h, a) in self.act_bytes.items())
        return (f"memory per GPU = model states (ZeRO-2 bf16: 2P + 14P/gpus + {self.bucket_gb:g} GB buckets) + "
                f"activations (bytes per token per block, CPU-measured: {acts}; with checkpointing 2H per block + "
                f"one block) + LM head (chunk x vocab x {self.logit_bytes:g} B) + {self.overhead_gb:g} GB overhead; "
                f"rows counted at seq_len; checkpointing on where the estimate without it exceeds "
                f"{self.headroom:.0%} of {self.gpu_gb:g} GB")


def estimate(s: Shape, cfg, gpus: int, checkpointing: bool, mm: MemoryModel | None = None) -> dict:
    """GB per GPU of one run (`cfg`: a TrainConfig) on `gpus` data-parallel GPUs, by part, and their total."""
    from ..losses import HEAD_CHUNK
    mm = mm or MemoryModel()
    p = s.params
    if cfg.backend != "deepspeed":
        states = 16 * p                                       # fp32 weights, grads, Adam m and v, per GPU
    else:
        states = {1: 2 * p + 2 * p + 12 * p / gpus, 2: 2 * p + 14 * p / gpus, 3: 16 * p / gpus}[cfg.zero_stage]
        states += mm.bucket_gb * 1e9
    lm_rows = (cfg.cit_batch_size if cfg.uses_cit else cfg.batch_size) if (cfg.uses_cit or cfg.objective == "clm") else 0
    tokens = lm_rows * cfg.seq_len
    block = mm.block_bytes(s, cfg.seq_len)
    if checkpointing:
        acts = tokens * (s.n_layers * 2 * s.d_model + block)
    else:
        acts = tokens * s.n_layers * block
    if cfg.uses_mcl:   # early exit over both sides of the pairs, the first `layer` blocks
        mcl_tokens = 2 * cfg.batch_size * min(cfg.seq_len, mm.mcl_row_tokens)
        depth = min(cfg.mcl.layer, s.n_layers)
        acts += mcl_tokens * (depth * 2 * s.d_model + block if checkpointing and depth else depth * block)
    logits = min(tokens, HEAD_CHUNK) * s.vocab * mm.logit_bytes
    parts = {"states": states / 1e9, "activations": acts / 1e9, "logits": logits / 1e9, "overhead": mm.overhead_gb}
    out = {k: round(v, 1) for k, v in parts.items()}
    out["total"] = round(sum(parts.values()), 1)
    return out


def wants_checkpointing(s: Shape, cfg, gpus: int, mm: MemoryModel | None = None) -> bool:
    """`train.gradient_checkpointing` resolved: true/false as set; "auto" = on where the estimate without it
    exceeds `headroom` of the GPU's memory."""
    if cfg.gradient_checkpointing != "auto":
        return bool(cfg.gradient_checkpointing)
    mm = mm or MemoryModel()
    return estimate(s, cfg, gpus, False, mm)["total"] > mm.headroom * mm.gpu_gb


def resolve_checkpointing(cfg, model, device, gpus: int) -> bool:
    """What the trainer does with `train.gradient_checkpointing`: "auto" asks `wants_checkpointing` with the
    memory of the CUDA device the run trains on (off on a CPU, where it would only slow the run down)."""
    import torch
    if cfg.gradient_checkpointing != "auto":
        return bool(cfg.gradient_checkpointing)
    device = torch.device(device)
    if device.type != "cuda":
        return False
    gb = torch.cuda.get_device_properties(device).total_memory / 1e9
    return wants_checkpointing(shape_of(model), cfg, gpus, MemoryModel(gpu_gb=gb))
