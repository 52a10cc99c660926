"""Facts the paper plan needs that cannot be read offline: the hub models' sizes, the data sets' languages
and sizes, and the throughput assumption behind the GPU-hour estimate. Sources are named per constant."""
from __future__ import annotations

from dataclasses import dataclass

from ..data.fetch import BACTRIAN_X_LANGS  # noqa: F401  (the planner reads it here)
from ..families import FAMILIES


@dataclass(frozen=True)
class HubModel:
    family: str       # afp_lib.families entry (the tiny dry-run model is built with it)
    params: float     # parameters
    n_layers: int     # transformer blocks: MCL layers 0..n_layers are valid
    d_model: int


# From each checkpoint's config.json on the hub, as the family entries of afp_lib.families record them.
HUB_MODELS = {c.hub_id: HubModel(f.name, c.params, c.n_layers, c.d_model) for f in FAMILIES.values() for c in f.hub}

# Attention heads and vocabulary (config.json: num_attention_heads / n_head, vocab_size), for the memory estimate.
HUB_HEADS_VOCAB = {"facebook/xglm-564M": (16, 256008), "facebook/xglm-1.7B": (16, 256008),
                   "facebook/xglm-7.5B": (32, 256008), "bigscience/bloom-560m": (16, 250880),
                   "bigscience/bloom-1b7": (16, 250880), "bigscience/bloom-7b1": (32, 250880),
                   "huggyllama/llama-7b": (32, 32000)}

BACTRIAN_X = "MBZUAI/Bactrian-X"
OPUS100 = "Helsinki-NLP/opus-100"

BACTRIAN_X_ROWS = 67_000

# OPUS-100's 99 English-centric pairs (the dataset card's `en-xx` configs). Note: no Swahili, no Tagalog.
OPUS100_LANGS = frozenset("af am an ar as az be bg bn br bs ca cs cy da de dz el eo es et eu fa fi fr fy ga gd gl gu ha "
                          "he hi hr hu hy id ig is it ja ka kk km kn ko ku ky li lt lv mg mk ml mn mr ms mt my nb ne nl "
                          "nn no oc or pa pl ps pt ro ru rw se sh si sk sl sq sr sv ta te tg th tk tr tt ug uk ur uz vi "
                          "wa xh yi yo zh zu".split())

# App. A: "a GPU server with 8*A100 80GB"; batch 128 = 16 per GPU x 8.
PAPER_GPUS = 8


@dataclass(frozen=True)
class Throughput:
    """The stated assumption behind every time estimate (change it with --peak-tflops / --mfu)."""
    gpu: str = "A100 80GB"
    peak_tflops: float = 312.0       # dense bf16 peak of an A100
    mfu: float = 0.35                # model-FLOPs utilisation assumed for ZeRO-2 data parallel, seq <= 512
    # ~20M tokens for the 167k EN-ZH pairs (paper §3.1) -> ~60 tokens per sentence, ~125 per unpacked CIT sample
    tokens_per_sentence: int = 60
    prompt_tokens: int = 5           # "Answer in Chinese:"
    # A packed CIT row (cit.pack) is computed at its full seq_len: collate.pack_plan fills 512-token rows to
    # 99.9% (167k samples of 20-500 tokens), and a batch is padded to its longest row.
    recompute: float = 4 / 3         # activation checkpointing runs each block's forward twice: 8 PT, not 6 PT

    def describe(self) -> str:
        return (f"{self.gpu}: {self.peak_tflops:g} TFLOP/s bf16 peak x {self.mfu:.0%} MFU = "
                f"{self.peak_tflops * self.mfu:g} TFLOP/s per GPU; training FLOPs = 6 x params x tokens "
                f"(MCL counts only the blocks below its layer), x {self.recompute:.3g} with activation checkpointing, "
                f"+ 2 x vocab x hidden per LM-head token where the head is chunked (its forward is recomputed); "
                f"packed CIT rows hold seq_len tokens, unpacked ones {2 * self.tokens_per_sentence + self.prompt_tokens}; "
                f"{self.tokens_per_sentence} tokens per sentence (paper §3.1: ~20M tokens / 167k EN-ZH pairs); "
                f"evaluation not included")


@dataclass(frozen=True)
class EvalThroughput:
    """Evaluation speed behind the grid's GPU-hours. Measured (bench/eval_scale.py, XGLM-564M shape, random
    weights, fp32, 2 CPU cores): candidate rows/s of the cached-prefix scorer at 0 and 5 shots (XNLI-shaped
    rows of 56 tokens) and FLORES sentences/s (128 new tokens). Assumed: the CPU->GPU factor, the A100's
    bf16 FLOP/s at `mfu` over the CPU's measured 0-shot FLOP/s (2 x parameters x tokens of a row); so the
    GPU scores 0-shot rows at the assumed FLOP rate and keeps the measured 5-shot and translation ratios.
    Larger models take time in proportion to their parameters. Greedy decoding uses a GPU far below its FLOP
    rate (small batches, one token per step), so the translation hours are a lower bound."""
    ref_params: float = 564e6
    row_tokens: int = 56
    # bench/eval_scale.py --items 12 on this machine under load (six engineers' jobs, load average ~10):
    # 36 rows in 170.8 s at 0-shot, in 152.0 s at 5-shot (the prefix runs once; rows attend 342 positions)
    cpu_rows_per_s: tuple = ((0, 0.211), (5, 0.237))        # (shots, rows/s)
    # 8 sentences x 8 / 16 new tokens in 143.5 / 269.4 s, 0-shot, extrapolated to 128 tokens (2032 s); the
    # 5-shot run was not measured (the prefix runs once): its rate is taken as the 0-shot one
    cpu_translate_per_s: tuple = ((0, 0.0039), (5, 0.0039))  # (shots, sentences/s of 128 new tokens)
    gpu: str = "A100 80GB"
    peak_tflops: float = 312.0
    mfu: float = 0.35

    @staticmethod
    def _at(points: tuple, shots: int) -> float:
        (k0, v0), (k1, v1) = points[0], points[-1]
        if shots >= k1:
            return v1
        return v0 + (v1 - v0) * (shots - k0) / (k1 - k0)

    @property
    def cpu_gflops(self) -> float:
        return 2 * self.ref_params * self.row_tokens * self._at(self.cpu_rows_per_s, 0) / 1e9

    @property
    def cpu_to_gpu(self) -> float:
        return self.peak_tflops * 1e3 * self.mfu / self.cpu_gflops

    def icl_rows_per_s(self, shots: int) -> float:
        return self._at(self.cpu_rows_per_s, shots) * self.cpu_to_gpu

    def translate_items_per_s(self, shots: int) -> float:
        return self._at(self.cpu_translate_per_s, shots) * self.cpu_to_gpu

    def describe(self) -> str:
        rows = ", ".join(f"{v:g} rows/s at {k}-shot" for k, v in self.cpu_rows_per_s)
        mt = ", ".join(f"{v:g} sentences/s at {k}-shot" for k, v in self.cpu_translate_per_s)
        return (f"evaluation: XGLM-564M shape measured on 2 CPU cores (bench/eval_scale.py: {rows}; FLORES {mt}; "
                f"~{self.cpu_gflops:.0f} GFLOP/s); one {self.gpu} assumed {self.peak_tflops:g} TFLOP/s x {self.mfu:.0%} "
                f"= {self.cpu_to_gpu:,.0f}x the CPU; time scales with parameters; translation hours are a lower bound "
                f"(decoding runs below the FLOP rate)")
