"""`python -m afp_lib rehearse --arch xglm-564M [key=value ...]`: a few AFP steps at a paper model's real shape.

The exact architecture (the published config of a checkpoint registered in afp_lib/families.py, built by
transformers with random weights), the paper profile's training config, the real backend and, under
`torchrun`/`deepspeed`, the real process group. The data are random token ids shaped like translation pairs
and CIT rows, on the profile's own path: packed CIT rows (`cit.pack`, the paper profile) beside the MCL
pairs batch, or, unpacked, the shared AFP step (one side of each pair read from its CIT forward). Nothing is
downloaded and nothing is saved (except, with --json, the numbers).

    one shape       tokens/s, peak memory (allocated and reserved), MFU over non-embedding FLOPs
    --depths 2,4    the same model cut to each depth, with gradient checkpointing off and on (--ckpt): the
                    memory and step time per block by difference, extrapolated to the checkpoint's full
                    depth, and that estimate with the ZeRO-2 states sharded over --shard GPUs (default 8)

`scripts/gpu_rehearsal.sh` runs the prepared GPU rehearsals and collects their --json files."""
from __future__ import annotations

import contextlib
import gc
import json
import random
import resource
import time

from typing import TYPE_CHECKING

from .. import atomic
from .memory import resolve_checkpointing

if TYPE_CHECKING:   # torch is imported inside the functions: `rehearse --help` parses without it
    import torch

PEAK_BF16 = {"A100": 312e12, "H100": 989e12, "H200": 989e12, "L40S": 362e12, "A10": 125e12}  # dense TFLOP/s
def _registered() -> dict:
    from ..families import FAMILIES
    return {c.name: c for f in FAMILIES.values() for c in f.hub if c.config}


ARCHS = _registered()  # repository name -> HubCheckpoint: the checkpoints whose published config is registered
# ZeRO-2 bytes per parameter, mixed precision with Adam: bf16 weights (2, replicated on every rank) and, split
# over the ranks, bf16 gradients (2) and fp32 master weights + Adam moments (12). One rank alone holds all 16.
SHARDED_BYTES = 14


def build(arch: str, layers: int = 0, vocab: int = 0, device: torch.device | None = None, width: int = 0):
    """The published architecture of the registered checkpoint `arch` (afp_lib.families) with random weights;
    `layers` / `vocab` / `width` cut it (0 = the real size; width only for CPU checks of the command itself);
    on `device` the weights are created there (a 7B model's random init on the CPU takes minutes)."""
    from transformers import AutoModelForCausalLM
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from ..families import hub_checkpoint
    fam, ckpt = hub_checkpoint(arch)
    if not ckpt.config:
        raise ValueError(f"{ckpt.hub_id}: no published config in afp_lib/families.py (HubCheckpoint.config)")
    cls = CONFIG_MAPPING[fam.name]
    key = lambda std: cls.attribute_map.get(std, std)  # noqa: E731  (num_hidden_layers -> n_layer, ...)
    kw = dict(ckpt.config)
    if layers:
        kw[key("num_hidden_layers")] = layers
    if vocab:
        kw["vocab_size"] = vocab
    if width:
        kw.update({key("hidden_size"): width, key("num_attention_heads"): 4})
        kw.update({k: 4 * width for k in ("ffn_dim", "intermediate_size") if k in kw})
        kw.update({k: 4 for k in ("num_key_value_heads",) if k in kw})
    config = cls(bos_token_id=0, pad_token_id=1, eos_token_id=2, **kw)
    with device if device is not None else contextlib.nullcontext():
        try:  # SDPA where transformers has it for the family, else its eager attention
            return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
        except (ValueError, ImportError):
            return AutoModelForCausalLM.from_config(config, attn_implementation="eager")


def embedding_params(model) -> int:
    """Parameters of the input embeddings and of an untied LM head (not counted in non-embedding FLOPs)."""
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    untied = head is not None and head.weight is not emb  # tied: one Parameter object (also on meta)
    return emb.numel() + (head.weight.numel() if untied else 0)


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
    """Peak allocated GiB on a GPU, the process's peak RSS on the CPU (bench/train_step.py)."""
    return peak_memory(device)[0]


def peak_memory(device: torch.device, base: tuple[int, int] = (0, 0)) -> tuple[float, float]:
    """(allocated, reserved) peak since the last reset, less `base` (what was held before the run); on the
    CPU the process's peak RSS twice (no allocator split)."""
    import torch
    if device.type == "cuda":
        return (round((torch.cuda.max_memory_allocated(device) - base[0]) / 2**30, 3),
                round((torch.cuda.max_memory_reserved(device) - base[1]) / 2**30, 3))
    rss = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)  # KiB -> GiB
    return rss, rss


def run_shape(args, cfg, device, layers: int, ckpt: bool | None) -> dict:
    """Build the model at `layers` blocks (0 = full), train `args.steps` steps on synthetic rows, measure
    (`ckpt` None: gradient checkpointing as the trainer's "auto" decides)."""
    import torch
    from . import collate, distributed
    from ..devices import autocast, resolve_precision
    from ..families import text_config
    from ..models import set_gradient_checkpointing
    from .loop import _make_backend, micro_index, step_losses
    from .shared import shared_batches

    rank, world = distributed.rank_world()
    base = (0, 0)
    if device.type == "cuda":  # what an earlier shape of the same process still holds is not this one's
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        base = (torch.cuda.memory_allocated(device), torch.cuda.memory_reserved(device))
    torch.manual_seed(cfg.seed)
    model = build(args.arch, layers, args.vocab, device if device.type == "cuda" else None, args.width)
    if cfg.backend == "deepspeed" and device.type == "cuda":
        model = model.to(torch.bfloat16)
    if device.type == "cuda":  # the peak counts training (weights included), not the fp32 build and its cast
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    n_params = sum(p.numel() for p in model.parameters())
    n_embed = embedding_params(model)
    if ckpt is None:  # train.gradient_checkpointing "auto": the trainer's own decision for this model and device
        ckpt = resolve_checkpointing(cfg, model, device, world)
    set_gradient_checkpointing(model, ckpt)  # as the trainer does, before the backend wraps the model
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
    vocab, n_layers = text_config(model.config).vocab_size, text_config(model.config).num_hidden_layers
    packed = cfg.cit.pack
    rows = cfg.batch_size * cfg.grad_accum * world * args.steps
    lm_rows = cfg.cit_batch_size * cfg.grad_accum * world * args.steps
    pairs, cit = synthetic_rows(max(rows, 3 * lm_rows if packed else 0), vocab, cfg.seq_len, cfg.seed)
    if packed:  # the paper profile: whole CIT samples packed into seq_len rows, read beside the pairs batch
        cit = collate.pack(cit, cfg.seq_len)[:lm_rows]
    step_s, tokens, flops = [], [], []
    for step in range(args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0, n_tok, n_flop = time.perf_counter(), 0, 0.0
        for micro in range(cfg.grad_accum):
            m = micro_index(step, micro, cfg.grad_accum, rank, world)
            idx = list(range(m * cfg.batch_size, (m + 1) * cfg.batch_size))
            if packed:
                li = list(range(m * cfg.cit_batch_size, (m + 1) * cfg.cit_batch_size))
                pb, lm = collate.pair_batch(pairs, idx, 1), collate.lm_batch(cit, li, 1)
            else:  # every source side is a token prefix of its CIT row
                pb, lm = shared_batches(pairs, cit, [0] * len(pairs), idx, cfg.cit_batch_size, 1)
            pb, lm = {k: v.to(device) for k, v in pb.items()}, {k: v.to(device) for k, v in lm.items()}
            with autocast(precision, device):
                parts = step_losses(model, cfg, pb, lm, shared=not packed)
            backend.backward(parts["loss"])
            mcl_tok, cit_tok = int(pb["attention_mask"].sum()), int(lm["attention_mask"].sum())
            n_tok += mcl_tok + cit_tok
            # 6 N FLOPs per token (forward + backward) over the non-embedding parameters: the CIT rows run
            # every block, the MCL rows only the first cfg.mcl.layer (the early exit); attention not counted
            n_flop += 6 * (n_params - n_embed) * (cit_tok + mcl_tok * min(cfg.mcl.layer, n_layers) / n_layers)
        backend.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        step_s.append(round(dt, 4))
        tokens.append(n_tok)
        flops.append(n_flop)
        loss = distributed.mean_over_ranks({"loss": parts["loss"].item()})["loss"]
        if rank == 0:
            print(f"  step {step + 1}: {dt:.3f} s, loss {loss:.3f}", flush=True)
    timed = slice(1, None) if args.steps > 1 else slice(None)  # the first step is warm-up
    secs = sum(step_s[timed])
    tok_s = distributed.sum_over_ranks(sum(tokens[timed]) / max(secs, 1e-9))
    flop_s = distributed.sum_over_ranks(sum(flops[timed]) / max(secs, 1e-9))
    alloc, reserved = peak_memory(device, base)
    out = {"layers": n_layers, "gradient_checkpointing": ckpt, "params": n_params, "embedding_params": n_embed,
           "optimizer": getattr(backend, "optimizer_name", None), "precision": precision, "packed": packed,
           "step_seconds": step_s, "step_s_mean": round(secs / max(1, len(step_s[timed])), 4),
           "tokens_per_step": tokens[-1], "tokens_per_s": round(tok_s, 1), "nonembedding_flop_per_s": flop_s,
           "peak_allocated_gib": max(distributed.gather_objects(alloc)),
           "peak_reserved_gib": max(distributed.gather_objects(reserved))}
    engine = getattr(backend, "engine", None)
    if hasattr(engine, "destroy"):  # DeepSpeed: release its hooks and optimizer before the next shape
        engine.destroy()
    del model, backend, engine, parts, pb, lm
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def per_layer(runs: list[dict], full_layers: int, shard: int, world: int = 1, zero2: bool = True) -> dict:
    """Per-block cost by difference of two depths (same checkpointing) and its extrapolation to the full
    depth; with ZeRO-2 also the per-rank estimate when the states are sharded over `shard` ranks instead of
    the `world` ranks measured (a rank holds 2 + 14/ranks bytes per parameter)."""
    a, b = sorted(runs, key=lambda r: r["layers"])[:2]
    d = b["layers"] - a["layers"]
    out = {"depths": [a["layers"], b["layers"]], "full_layers": full_layers}
    for k in ("peak_allocated_gib", "peak_reserved_gib", "step_s_mean", "params"):
        slope = (b[k] - a[k]) / d
        out[f"{k}_per_layer"] = slope
        out[f"{k}_full"] = a[k] + slope * (full_layers - a["layers"])
    out["tokens_per_s_full"] = round(b["tokens_per_step"] / out["step_s_mean_full"], 1) \
        if out["step_s_mean_full"] > 0 else None
    if zero2:
        saved = out["params_full"] * SHARDED_BYTES * (1 / world - 1 / shard) / 2**30
        out["shard"] = shard
        out["states_saved_gib"] = saved
        out["peak_allocated_gib_full_sharded"] = out["peak_allocated_gib_full"] - saved
        out["peak_reserved_gib_full_sharded"] = out["peak_reserved_gib_full"] - saved
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    from ..config import Parser, user_input
    from ..families import hub_checkpoint

    ap = Parser(prog="python -m afp_lib rehearse", description=__doc__.split("\n\n")[0])
    ap.add_argument("overrides", nargs="*", help="train config overrides, e.g. batch_size=2 seq_len=128 zero_stage=2")
    ap.add_argument("--arch", default="xglm-564M", help="a checkpoint of afp_lib/families.py (repository name)")
    ap.add_argument("--steps", type=int, default=4, help="optimizer steps; the first is warm-up and not timed")
    ap.add_argument("--layers", type=int, default=0, help="cut the depth to this many blocks (0 = the real depth)")
    ap.add_argument("--depths", default="", help="per-block sweep: two or more depths, e.g. 2,4")
    ap.add_argument("--ckpt", choices=["off", "on", "both"], default=None,
                    help="gradient checkpointing (default: train.gradient_checkpointing; --depths: both)")
    ap.add_argument("--shard", type=int, default=8, help="ranks the ZeRO-2 states are sharded over (estimate)")
    ap.add_argument("--profile", default="paper", help="params.yaml train profile")
    ap.add_argument("--vocab", type=int, default=0,
                    help="cut the vocabulary to this many ids (0 = the real size; for a quick check of the command)")
    ap.add_argument("--width", type=int, default=0, help="cut the hidden size (0 = real; CPU checks only)")
    ap.add_argument("--bucket", type=float, default=0, help="DeepSpeed ZeRO bucket size in elements (0 = DeepSpeed's)")
    ap.add_argument("--json", help="also write the numbers to this JSON file (rank 0)")
    args = ap.parse_intermixed_args(argv)  # overrides may come before and after the options
    import torch

    from . import distributed
    from .config import load_train_config
    from ..devices import resolve_device
    with user_input():
        _, ckpt_entry = hub_checkpoint(args.arch)
        cfg = load_train_config(args.profile, ["eval_every=0", "save_every=0", *args.overrides])
    device = resolve_device(cfg.device)
    distributed.init_from_env(device, required=cfg.backend == "deepspeed")
    rank, world = distributed.rank_world()
    default_ckpt = {True: "on", False: "off"}.get(cfg.gradient_checkpointing, "auto")  # auto: per model, as the trainer
    depths = [int(x) for x in args.depths.split(",") if x.strip()]
    if depths and len(depths) < 2:
        ap.error("--depths needs two depths or more, e.g. 2,4")
    mode = args.ckpt or ("both" if depths else default_ckpt)
    ckpts = {"off": [False], "on": [True], "both": [False, True], "auto": [None]}[mode]
    shapes = [(d, c) for c in ckpts for d in (depths or [args.layers])]
    head = {"arch": args.arch, "hub_id": ckpt_entry.hub_id, "vocab_cut_to": args.vocab or None,
            "width_cut_to": args.width or None, "ranks": world, "backend": cfg.backend,
            "zero_stage": cfg.zero_stage if cfg.backend == "deepspeed" else None,
            "batch_size_per_rank": cfg.batch_size, "cit_batch_size": cfg.cit_batch_size, "seq_len": cfg.seq_len,
            "grad_accum": cfg.grad_accum, "mcl_layer": cfg.mcl.layer, "device": str(device),
            "torch": torch.__version__, "steps": args.steps,
            "memory_kind": "CUDA allocator (allocated, reserved)" if device.type == "cuda" else "process peak RSS"}
    if device.type == "cuda":
        head["device"] = torch.cuda.get_device_name(device)
    peak = next((v for k, v in PEAK_BF16.items() if k in head["device"]), None) if device.type == "cuda" else None
    runs = []
    for layers, ckpt in shapes:
        if rank == 0:
            print(f"rehearse {args.arch} at {layers or ckpt_entry.n_layers} blocks"
                  f"{f', vocab {args.vocab}' if args.vocab else ''}{f', width {args.width}' if args.width else ''}: "
                  f"{world} rank(s), {cfg.backend}{f' ZeRO-{cfg.zero_stage}' if cfg.backend == 'deepspeed' else ''}, "
                  f"{cfg.batch_size} pairs + {cfg.cit_batch_size} {'packed ' if cfg.cit.pack else ''}CIT rows x "
                  f"seq {cfg.seq_len} per rank, gradient checkpointing {({True: 'on', False: 'off'}).get(ckpt, 'auto')}, {device}", flush=True)
        r = run_shape(args, cfg, device, layers, ckpt)
        r["mfu_nonembedding"] = round(r["nonembedding_flop_per_s"] / world / peak, 4) if peak else None
        runs.append(r)
        if rank == 0:
            print(f"  {r['params'] / 1e6:.0f}M params ({r['embedding_params'] / 1e6:.0f}M embedding), "
                  f"peak {r['peak_allocated_gib']:.2f} GiB allocated / {r['peak_reserved_gib']:.2f} GiB reserved "
                  f"per rank, {r['tokens_per_s']:.0f} tokens/s, step {r['step_s_mean']:.3f} s, MFU (non-embedding) "
                  + (f"{r['mfu_nonembedding']:.1%}" if r["mfu_nonembedding"] is not None else "n/a (no GPU peak known)"),
                  flush=True)
    summary = {**head, "runs": runs}
    if depths:
        summary["per_layer"] = {("ckpt" if c else "no_ckpt"): per_layer([r for r in runs if r["gradient_checkpointing"] == c],
                                                                         ckpt_entry.n_layers, args.shard, world,
                                                                         cfg.backend == "deepspeed"
                                                                         and cfg.zero_stage == 2) for c in ckpts}
        if rank == 0:
            for name, p in summary["per_layer"].items():
                print(f"per block ({name}): {p['peak_allocated_gib_per_layer']:.3f} GiB allocated, "
                      f"{p['peak_reserved_gib_per_layer']:.3f} GiB reserved, {p['step_s_mean_per_layer']:.4f} s; at "
                      f"{p['full_layers']} blocks: {p['peak_allocated_gib_full']:.1f} / {p['peak_reserved_gib_full']:.1f} "
                      f"GiB on one rank" + (f", {p['peak_allocated_gib_full_sharded']:.1f} / "
                                            f"{p['peak_reserved_gib_full_sharded']:.1f} GiB with ZeRO-2 over {p['shard']}"
                                            if "shard" in p else ""), flush=True)
    if rank == 0 and args.json:
        atomic.write_text(args.json, json.dumps(summary, indent=1))
    distributed.barrier()
    return 0


def summarise(work, out, dry: bool = False) -> str:
    """Collect the attempts' JSON files of `work` (scripts/gpu_rehearsal.sh) into `out`/summary.json and
    `out`/summary.md: one table of the single-shape runs, one of the per-block sweeps. Returns the Markdown."""
    from pathlib import Path
    work, out = Path(work), Path(out)
    rows = [json.loads(p.read_text()) for p in sorted(work.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
            if not p.name.endswith(".ok.json")]
    (out / "summary.json").write_text(json.dumps({"dry_run": dry, "attempts": rows}, indent=1))
    f = lambda x, spec=".2f": "-" if x is None else format(x, spec)  # noqa: E731
    one = ["| attempt | status | params (non-emb.) | backend | pairs + CIT rows x seq | ckpt | peak alloc / reserved "
           "GiB | tokens/s | MFU non-emb. | step s |", "|---|---|---|---|---|---|---|---|---|---|"]
    blk = ["| model | ckpt | per block: alloc / reserved GiB, s | full depth, 1 GPU: alloc / reserved GiB | "
           "full depth, ZeRO-2 over 8: alloc / reserved GiB | tokens/s per GPU at full depth |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "ok":
            (blk if "per-block" in r["attempt"] else one).append(f"| {r['attempt']} | {r['status']} "
                                                                 f"({r.get('why', 'exit ' + str(r.get('exit')))}) |")
            continue
        be = r["backend"] + (f" ZeRO-{r['zero_stage']}" if r.get("zero_stage") is not None else "")
        if "per_layer" not in r:
            for x in r["runs"]:
                one.append(f"| {r['attempt']} | ok | {x['params'] / 1e6:.0f}M "
                           f"({(x['params'] - x['embedding_params']) / 1e6:.0f}M) | {be}, {x['precision']} | "
                           f"{r['batch_size_per_rank']} + {r['cit_batch_size']}{' packed' if x['packed'] else ''} x "
                           f"{r['seq_len']} | {'on' if x['gradient_checkpointing'] else 'off'} | "
                           f"{f(x['peak_allocated_gib'])} / {f(x['peak_reserved_gib'])} | {x['tokens_per_s']:.0f} | "
                           f"{f(x['mfu_nonembedding'], '.1%')} | {', '.join(f'{s:.2f}' for s in x['step_seconds'])} |")
            continue
        for name, p in r["per_layer"].items():
            blk.append(f"| {r['arch']} ({p['full_layers']} blocks; measured at {p['depths'][0]} and {p['depths'][1]}) | "
                       f"{'on' if name == 'ckpt' else 'off'} | {f(p['peak_allocated_gib_per_layer'], '.3f')} / "
                       f"{f(p['peak_reserved_gib_per_layer'], '.3f')}, {f(p['step_s_mean_per_layer'], '.4f')} | "
                       f"{f(p['peak_allocated_gib_full'], '.1f')} / {f(p['peak_reserved_gib_full'], '.1f')} | "
                       f"{f(p.get('peak_allocated_gib_full_sharded'), '.1f')} / "
                       f"{f(p.get('peak_reserved_gib_full_sharded'), '.1f')} | {f(p['tokens_per_s_full'], '.0f')} |")
    device = next((r["device"] for r in rows if r.get("device")), "?")
    md = (f"GPU rehearsal on {device}" + (" (dry run: cut-down models on the CPU, numbers meaningless)" if dry else "")
          + "\n\n" + "\n".join(one) + "\n\n" + "\n".join(blk) + "\n")
    (out / "summary.md").write_text(md)
    print(md)
    return md
