"""`python -m afp_lib rehearse --arch xglm-564M [key=value ...]`: a few AFP steps at a paper model's real shape.

The exact architecture (transformers config classes with the published hyperparameters and vocabulary
sizes) with random weights, the paper profile's training config, the real backend and, under
`torchrun`/`deepspeed`, the real process group; the data are random token ids shaped like translation
pairs and their CIT rows (the shared AFP step: one side of each pair read from its CIT forward). Prints
peak memory per rank, tokens/s and, on a GPU, model FLOPs utilisation: what a GPU-hour estimate needs,
measured instead of assumed. Nothing is downloaded and nothing is saved (except, with --json, the numbers).
`scripts/gpu_rehearsal.sh` runs the prepared GPU rehearsals and collects their --json files."""
from __future__ import annotations

import json
import os
import random
import resource
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # torch is imported inside the functions: `rehearse --help` parses without it
    import torch

ARCHS = {  # the published configs (config.json of each hub repo), written out
    "xglm-564M": ("xglm", dict(vocab_size=256008, d_model=1024, ffn_dim=4096, num_layers=24, attention_heads=16,
                               max_position_embeddings=2048, dropout=0.1, attention_dropout=0.1,
                               activation_dropout=0.0, scale_embedding=True)),
    "bloom-560m": ("bloom", dict(vocab_size=250880, hidden_size=1024, n_layer=24, n_head=16,
                                 hidden_dropout=0.0, attention_dropout=0.0)),
    "llama-7B": ("llama", dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                               num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=2048,
                               rms_norm_eps=1e-6)),
}
PEAK_BF16 = {"A100": 312e12, "H100": 989e12, "H200": 989e12, "L40S": 362e12, "A10": 125e12}  # dense TFLOP/s


def build(arch: str, layers: int = 0, vocab: int = 0, device: torch.device | None = None):
    """The published architecture with random weights; `layers`/`vocab` cut it down (0 = the real size);
    on `device` the weights are created there (a 7B model's random init on the CPU takes minutes)."""
    from transformers import AutoModelForCausalLM, BloomConfig, LlamaConfig, XGLMConfig
    kind, kw = ARCHS[arch]
    kw = dict(kw)
    if layers:  # a cut-down depth when the whole model does not fit (said in the output)
        kw[{"xglm": "num_layers", "bloom": "n_layer", "llama": "num_hidden_layers"}[kind]] = layers
    if vocab:  # a cut-down vocabulary: only for a quick run of the command itself (said in the output)
        kw["vocab_size"] = vocab
    config = {"xglm": XGLMConfig, "bloom": BloomConfig, "llama": LlamaConfig}[kind](bos_token_id=0, pad_token_id=1,
                                                                                  eos_token_id=2, **kw)
    attn = "sdpa" if kind == "llama" else "eager"  # XGLM and BLOOM have no SDPA path in transformers
    if device is None:  # the caller's default device (e.g. a `with torch.device("meta")` around the call)
        return AutoModelForCausalLM.from_config(config, attn_implementation=attn)
    with device:
        return AutoModelForCausalLM.from_config(config, attn_implementation=attn)


def synthetic_rows(n: int, vocab: int, seq_len: int, seed: int = 0):
    """n (src, tgt) id lists of a quarter to a half of seq_len each, and CIT rows `src + prompt + tgt` whose
    labels cover the answer: the layout of translation-mode CIT, where the source side is a prefix."""
    rng = random.Random(seed)
    pairs, cit = [], []
    for _ in range(n):
        src = [0] + [rng.randrange(3, vocab) for _ in range(rng.randint(seq_len // 4, seq_len // 2) - 1)]
        tgt = [0] + [rng.randrange(3, vocab) for _ in range(rng.randint(seq_len // 4, seq_len // 2) - 1)]
        ids = (src + [rng.randrange(3, vocab) for _ in range(4)] + tgt[1:] + [2])[:seq_len]
        labels = [-100] * (len(src) + 4) + ids[len(src) + 4:]
        pairs.append((src, tgt))
        cit.append((ids, labels[:len(ids)]))
    return pairs, cit


def peak_memory_gib(device: torch.device) -> float:
    import torch
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB (the process's peak RSS)


def main(argv: list[str] | None = None) -> int:
    from ..cli import Parser
    from ..config import user_input

    ap = Parser(prog="python -m afp_lib rehearse", description=__doc__)
    ap.add_argument("overrides", nargs="*", help="train config overrides, e.g. batch_size=2 seq_len=128 zero_stage=2")
    ap.add_argument("--arch", choices=sorted(ARCHS), default="xglm-564M", help="the published architecture to build")
    ap.add_argument("--steps", type=int, default=4, help="optimizer steps; the first is warm-up and not timed")
    ap.add_argument("--layers", type=int, default=0, help="cut the depth to this many blocks (0 = the real depth)")
    ap.add_argument("--profile", default="paper", help="params.yaml train profile")
    ap.add_argument("--vocab", type=int, default=0,
                    help="cut the vocabulary to this many ids (0 = the real size; for a quick check of the command)")
    ap.add_argument("--bucket", type=float, default=0, help="DeepSpeed ZeRO bucket size in elements (0 = DeepSpeed's)")
    ap.add_argument("--json", help="also write the numbers to this JSON file (rank 0)")
    args = ap.parse_intermixed_args(argv)  # overrides may come before and after the options
    import torch

    from . import distributed
    from .config import load_train_config
    from ..devices import autocast, resolve_precision
    from ..models import set_gradient_checkpointing
    from .loop import _device, _make_backend, micro_index, step_losses
    from .shared import shared_batches

    with user_input():
        cfg = load_train_config(args.profile, ["eval_every=0", "save_every=0", *args.overrides])
    device = _device(cfg)
    distributed.init_from_env(device, required=cfg.backend == "deepspeed")
    rank, world = distributed.rank_world()
    torch.manual_seed(cfg.seed)
    model = build(args.arch, args.layers, args.vocab, device if device.type == "cuda" else None)
    if cfg.backend == "deepspeed" and device.type == "cuda":
        model = model.to(torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())
    set_gradient_checkpointing(model, cfg.gradient_checkpointing)  # as the trainer does, before the backend
    if device.type == "cuda":  # the peak counts training only, not the fp32 build and its bf16 cast
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    if cfg.backend == "deepspeed":  # DeepSpeed's default ZeRO buckets (5e8 elements each) suit 80 GB GPUs only
        from .ds_backend import DeepSpeedBackend
        bucket = int(args.bucket)
        backend = DeepSpeedBackend(cfg, model, device, extra={"zero_optimization": {
            "reduce_bucket_size": bucket, "allgather_bucket_size": bucket}} if bucket else None)
    else:
        backend = _make_backend(cfg, model, device)
    model = backend.model
    model.train()
    precision = resolve_precision(cfg.precision, device, "train.precision")
    rows = cfg.batch_size * cfg.grad_accum * world * args.steps
    pairs, cit = synthetic_rows(rows, model.config.vocab_size, cfg.seq_len, cfg.seed)
    plan = [0] * rows  # every source side is a token prefix of its CIT row
    if rank == 0:
        cut = ", ".join(x for x in (f"{args.layers} layers" if args.layers else "",
                                      f"vocab {args.vocab}" if args.vocab else "") if x)
        print(f"rehearse {args.arch}{f' (cut to {cut})' if cut else ''}: {n_params / 1e6:.0f}M "
              f"params, {world} rank(s), {cfg.backend}{f' ZeRO-{cfg.zero_stage}' if cfg.backend == 'deepspeed' else ''}, "
              f"{precision}, {cfg.batch_size} pairs x seq {cfg.seq_len} per rank, "
              f"gradient checkpointing {'on' if cfg.gradient_checkpointing else 'off'}, {device}", flush=True)
    timed_tokens, timed_s, timed_cit, step_s = 0, 0.0, 0, []
    for step in range(args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0, tokens, cit_tokens = time.perf_counter(), 0, 0
        for micro in range(cfg.grad_accum):
            m = micro_index(step, micro, cfg.grad_accum, rank, world)
            idx = list(range(m * cfg.batch_size, (m + 1) * cfg.batch_size))
            pb, lm = shared_batches(pairs, cit, plan, idx, cfg.cit_batch_size, 1)
            pb, lm = {k: v.to(device) for k, v in pb.items()}, {k: v.to(device) for k, v in lm.items()}
            with autocast(precision, device):
                parts = step_losses(model, cfg, pb, lm, shared=True)
            backend.backward(parts["loss"])
            tokens += int(pb["attention_mask"].sum()) + int(lm["attention_mask"].sum())
            cit_tokens += int(lm["attention_mask"].sum())
        backend.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        step_s.append(round(dt, 3))
        loss = distributed.mean_over_ranks({"loss": parts["loss"].item()})["loss"]
        if rank == 0:
            print(f"step {step + 1}: {dt:.2f} s, loss {loss:.3f}", flush=True)
        if step > 0 or args.steps == 1:
            timed_tokens, timed_s, timed_cit = timed_tokens + tokens, timed_s + dt, timed_cit + cit_tokens
    tok_s = distributed.sum_over_ranks(timed_tokens / max(timed_s, 1e-9))
    cit_s = distributed.sum_over_ranks(timed_cit / max(timed_s, 1e-9))
    peaks = distributed.gather_objects(round(peak_memory_gib(device), 2))
    mfu, name = None, str(device)
    if rank == 0:
        unit = "GPU memory allocated" if device.type == "cuda" else "RSS"
        print(f"peak {unit} per rank (GiB): {peaks}")
        print(f"tokens/s (all ranks, steps 2..{args.steps}): {tok_s:.1f}")
        if device.type == "cuda":
            name = torch.cuda.get_device_name(device)
            peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
            # 6 N FLOPs per CIT token (forward + backward of the whole model); the early-exit MCL rows and
            # attention are not counted, so this is the CIT-equivalent utilisation
            mfu = 6 * n_params * cit_s / world / peak if peak else None
            print(f"MFU: {mfu:.1%} of {name}'s bf16 peak (6 N x CIT tokens/s)" if mfu else f"MFU: no peak known for {name}")
        if args.json:
            summary = {"arch": args.arch, "layers_cut_to": args.layers or None, "vocab_cut_to": args.vocab or None,
                       "params": n_params, "ranks": world, "backend": cfg.backend,
                       "zero_stage": cfg.zero_stage if cfg.backend == "deepspeed" else None,
                       "optimizer": getattr(backend, "optimizer_name", None), "precision": precision,
                       "batch_size_per_rank": cfg.batch_size, "seq_len": cfg.seq_len, "grad_accum": cfg.grad_accum,
                       "gradient_checkpointing": cfg.gradient_checkpointing, "device": name,
                       "torch": torch.__version__, "steps": args.steps, "step_seconds": step_s,
                       "peak_memory_gib_per_rank": peaks, "peak_memory_kind": unit, "tokens_per_s": round(tok_s, 1),
                       "cit_tokens_per_s": round(cit_s, 1), "mfu": None if mfu is None else round(mfu, 4)}
            tmp = f"{args.json}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(summary, f, indent=1)
            os.replace(tmp, args.json)
    distributed.barrier()
    return 0
