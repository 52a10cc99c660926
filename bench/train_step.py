"""Benchmark (not a test): throughput of one training step, measured side by side, at the mini shape or the
paper's XGLM-564M shape.

(a) our AFP step, as the trainer runs it: the CIT rows are the translation samples of the step's pairs,
    so the context side of each pair is read from the CIT forward (a hook on block l, trainer.shared)
    and only the other side runs the early-exit call (embeddings + blocks < l, rows in length groups) + CIT
(b) the authors' AFP step: each side of the pairs runs the whole model with output_hidden_states=True
    and only hidden_states[l] is read; same CIT
(c) a CIT-only step
The three variants take turns step by step (a b c, b c a, ...) on the same batch in every round, so a burst
of load from other processes hits all of them alike. One statistic throughout: the median step time of each
variant over the measured rounds (printed in the table, with every round's time), and every ratio is a
ratio of those medians, so it can be checked against the table by hand. In step times, with t(x) the median
step time of variant x, the last line is
`RATIO afp_vs_full_forward=t(b)/t(a) cit_vs_afp=t(a)/t(c) ceiling=t(b)/t(c) shape=<name> stat=median_step_time`:
afp_vs_full_forward is our speed-up over the authors' step, cit_vs_afp what AFP costs over a CIT-only step,
and the ceiling the speed-up over (b) that a step with a free MCL would reach, since (a) does all of (c)'s
work. (An earlier version printed medians of per-round paired ratios next to per-variant medians: with 3
rounds on a loaded machine the two disagreed, e.g. 1.22 against 1.00.)

--shape mini (default): the mini model (d 256, 4 layers, vocab 8000), 16 pairs + 16 CIT rows of up to 128
    tokens, 8 rounds, each step followed by an AdamW update. Targets: afp_vs_full_forward >= 1.5,
    cit_vs_afp <= 1.15 at layer 1.
--shape xglm-564M: the exact XGLM-564M architecture with random weights (the published config that
    `afp_lib/trainer/rehearse.py` builds: 24 layers, d_model 1024, 16 heads, ffn 4096, vocab 256008), 4 pairs + 4
    CIT rows of up to 64 tokens, 3 rounds. The tokenizer stays the small BPE trained here: its ids (< --vocab) are
    used as they are inside the 256008-row vocabulary, so embedding and LM head run at the real size. By default
    no optimizer update (forward + backward only, gradients dropped after each step; --update to step AdamW):
    the update costs the same in all three variants and AdamW state would add ~4.5 GB to the ~4.5 GB of fp32
    weights and gradients, so the peak stays well under 10 GiB. Targets at this shape: cit_vs_afp <= 1.10 (AFP
    costs at most 1.10x a CIT-only step) and afp_vs_full_forward >= 0.9 x ceiling.
    Meant to finish within 5 minutes on 2 CPU cores (estimated from a 1-thread matmul rate of ~47 GFLOP/s
    measured on the loaded machine, not yet timed end to end; `--threads 2` on a quiet machine leaves margin).
The peak RSS of the process is printed at the end.
One intra-op thread by default: on a CPU shared with other jobs, several threads spin-wait on each other
and single steps take 5-10x longer at random, while one thread gives steps within a few percent.

    python bench/train_step.py [--shape mini|xglm-564M] [--layer 1] [--precision bf16|fp32] [--rounds N]
                               [--threads 1] [--update | --no-update]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from afp_lib.config import from_dict  # noqa: E402
from afp_lib.hidden import pool  # noqa: E402
from afp_lib.losses import cit_loss, mcl_loss  # noqa: E402
from afp_lib.models import ModelShape, build_model  # noqa: E402
from afp_lib.tokenizer import train_bpe  # noqa: E402
from afp_lib.trainer import TrainConfig, TrainData  # noqa: E402
from afp_lib.trainer import collate  # noqa: E402
from afp_lib.trainer.optim import make_optimizer  # noqa: E402
from afp_lib.devices import resolve_precision  # noqa: E402
from afp_lib.trainer.loop import micro_batches, prepare, step_losses  # noqa: E402
from afp_lib.trainer.rehearse import ARCHS, peak_memory_gib  # noqa: E402
from afp_lib.trainer.rehearse import build as build_published  # noqa: E402

SHAPE = ModelShape(d_model=256, n_layers=4, n_heads=4, ffn_dim=1024, max_positions=512)
# per-shape defaults of --batch, --seq, --rounds and --update (each can be overridden on the command line)
SHAPES = {"mini": dict(batch=16, seq=128, rounds=8, update=True),
          "xglm-564M": dict(batch=4, seq=64, rounds=3, update=False)}
assert set(SHAPES) - {"mini"} <= set(ARCHS)


def bench_pairs(n: int) -> list[dict]:
    """Real en-xx pairs from the mirror when there is one, else synthetic sentences (no mini world needed)."""
    mirror = os.environ.get("AFP_DATA_MIRROR")
    if mirror and Path(mirror, "parallel").is_dir():
        from afp_lib.data import load_parallel
        pairs = []
        for lang, source in (("zh", "ntrex128"), ("sw", "ntrex128"), ("th", "ntrex128"), ("tr", "ntrex128")):
            for rec in load_parallel(lang, source)["translation"][: n // 4]:
                pairs.append({"src": rec["en"], "tgt": rec[lang], "src_lang": "en", "tgt_lang": lang})
        return pairs
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(3000)]
    sent = lambda: " ".join(rng.choice(words) for _ in range(rng.randint(8, 40))) + "."  # noqa: E731
    return [{"src": sent(), "tgt": sent(), "src_lang": "en", "tgt_lang": "sw"} for _ in range(n)]


def authors_step_losses(model, cfg, pairs, lm):
    """The authors' way: whole-model forwards with all hidden states, one per side, read layer l."""
    ids, mask = pairs["input_ids"], pairs["attention_mask"]
    b = ids.size(0) // 2
    z = []
    for side in (slice(0, b), slice(b, 2 * b)):
        out = model(input_ids=ids[side], attention_mask=mask[side], output_hidden_states=True, use_cache=False)
        z.append(pool(out.hidden_states[cfg.mcl.layer], mask[side], cfg.mcl.pooling))
    mcl = mcl_loss(z[0], z[1], cfg.mcl.temperature, cfg.mcl.symmetric)
    return {"loss": mcl + cfg.alpha * cit_loss(model, **lm)}


def summarize(times: dict[str, list[float]]) -> dict[str, float]:
    """Median step time per variant (keys a_ours, b_full_forward, c_cit_only) and the three ratios of those
    medians, as the issue defines them: b/a, a/c and b/c in step time."""
    med = {name: statistics.median(ts) for name, ts in times.items()}
    a, b, c = med["a_ours"], med["b_full_forward"], med["c_cit_only"]
    return {**med, "afp_vs_full_forward": b / a, "cit_vs_afp": a / c, "ceiling": b / c}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="mini", choices=sorted(SHAPES),
                    help="mini: the mini profile's model; xglm-564M: the published architecture, random weights")
    ap.add_argument("--layer", type=int, default=1)
    ap.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    ap.add_argument("--batch", type=int, default=None, help="pairs (and CIT rows) per step (default: per shape)")
    ap.add_argument("--seq", type=int, default=None, help="max tokens per row (default: per shape)")
    ap.add_argument("--vocab", type=int, default=8000, help="BPE vocabulary trained for the bench")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0 = torch's default)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="measured steps per variant, after one warm-up step each (default: per shape)")
    ap.add_argument("--update", action=argparse.BooleanOptionalAction, default=None,
                    help="step AdamW after each step (default: yes at mini, no at xglm-564M: forward + backward only)")
    ap.add_argument("--length-groups", type=int, default=TrainConfig().mcl.length_groups,
                    help="(a)'s early-exit calls per batch, rows grouped by length (the trainer's mcl.length_groups)")
    args = ap.parse_args()
    for key, value in SHAPES[args.shape].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)

    pairs = bench_pairs(400)
    tokenizer = train_bpe([p[k] for p in pairs for k in ("src", "tgt")] * 3, vocab_size=args.vocab, min_frequency=1)
    cfg = from_dict(TrainConfig, {"objective": "afp", "batch_size": args.batch, "seq_len": args.seq,
                                  "precision": args.precision,
                                  "mcl": {"layer": args.layer, "length_groups": args.length_groups}}, "bench")
    prep = prepare(cfg, tokenizer, TrainData(pairs=pairs))  # CIT: translation samples of the pairs (always translating)
    pad = tokenizer.pad_token_id
    if args.shape == "mini":
        model = build_model("xglm", SHAPE, tokenizer, seed=0).train()
        shape_text = f"mini shape {SHAPE}, vocab {len(tokenizer)}"
    else:  # the BPE's ids (< len(tokenizer)) index the first rows of the published vocabulary
        model = build_published(args.shape).train()
        c = model.config
        shape_text = (f"{args.shape} shape ({c.num_layers} layers, d_model {c.d_model}, {c.attention_heads} heads, "
                      f"ffn {c.ffn_dim}, vocab {c.vocab_size}; {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M "
                      f"params, random weights), BPE ids < {len(tokenizer)}")
        assert len(tokenizer) <= c.vocab_size
    opt = make_optimizer(model.parameters(), cfg.optim) if args.update else None
    cit_cfg = from_dict(TrainConfig, {**{"objective": "cit"}, "batch_size": args.batch, "seq_len": args.seq}, "bench")
    variants = {"a_ours": lambda idx: step_losses(model, cfg, *micro_batches(cfg, prep, idx, None, pad),
                                                      shared=prep.share is not None),
                "b_full_forward": lambda idx: authors_step_losses(model, cfg, collate.pair_batch(prep.pairs, idx, pad),
                                                                  collate.lm_batch(prep.cit, idx, pad)),
                "c_cit_only": lambda idx: step_losses(model, cit_cfg, None, collate.lm_batch(prep.cit, idx, pad))}
    args.precision = resolve_precision(cfg.precision, torch.device("cpu"))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")
    times = {k: [] for k in variants}
    cit_tokens = {k: [] for k in variants}
    pair_tokens = []
    shared = sum(s >= 0 for s in prep.share) if prep.share else 0
    print(f"{shape_text}, seq {args.seq}, batch {args.batch} pairs + {args.batch} CIT "
          f"samples, layer {args.layer}, {args.precision}, threads {torch.get_num_threads()}, "
          f"{'AdamW update' if args.update else 'no optimizer update (forward + backward only)'}, "
          f"(a) early exit in {args.length_groups} length group(s), "
          f"{shared}/{len(prep.pairs)} pairs read from the CIT forward")
    names = list(variants)
    for rnd in range(args.rounds + 1):  # round 0 warms up
        start = rnd * args.batch % (len(prep.pairs) - args.batch)
        idx = list(range(start, start + args.batch))  # the same pairs and CIT rows for all three variants
        for k in range(len(names)):
            name = names[(rnd + k) % len(names)]  # rotate the order within a round
            t0 = time.perf_counter()
            with autocast:
                loss = variants[name](idx)["loss"]
            loss.backward()
            if opt is not None:
                opt.step()
            model.zero_grad(set_to_none=True)
            if rnd:
                times[name].append(time.perf_counter() - t0)
                cit_tokens[name].append(collate.n_tokens(collate.lm_batch(prep.cit, idx, pad)))
        if rnd:
            pair_tokens.append(int(collate.pair_batch(prep.pairs, idx, pad)["attention_mask"].sum()))
    # one statistic for the table and the ratios: the median step time of each variant over the rounds
    r = summarize(times)
    print(f"median over {args.rounds} rounds (each round: the same batch in all three variants)")
    for name in variants:
        step = r[name]
        each = " ".join(f"{1000 * t:.0f}" for t in times[name])
        print(f"{name:15s} {1000 * step:8.1f} ms/step  {statistics.mean(cit_tokens[name]) / step:9.0f} tokens/s"
              f"  (rounds: {each} ms)")
    speedup, cost, ceiling = r["afp_vs_full_forward"], r["cit_vs_afp"], r["ceiling"]
    # (a) does all of (c)'s work plus MCL, so b/a cannot exceed b/c: the ceiling this batch allows
    if args.shape == "mini":
        print(f"targets: afp_vs_full_forward = b/a >= 1.5 -> {speedup:.2f}; cit_vs_afp = a/c <= 1.15 -> {cost:.2f}")
    else:
        print(f"targets: cit_vs_afp = a/c <= 1.10 -> {cost:.2f}; afp_vs_full_forward = b/a >= 0.9 x ceiling "
              f"= {0.9 * ceiling:.2f} -> {speedup:.2f} ({speedup / ceiling:.0%} of the ceiling)")
    print(f"ceiling = b/c = {ceiling:.2f} (the speed-up of a step with a free MCL); pair tokens / CIT tokens = "
          f"{statistics.mean(pair_tokens) / statistics.mean(cit_tokens['a_ours']):.2f}; "
          f"peak RSS {peak_memory_gib(torch.device('cpu')):.2f} GiB")
    print(f"RATIO afp_vs_full_forward={speedup:.3f} cit_vs_afp={cost:.3f} ceiling={ceiling:.3f} shape={args.shape} "
          f"stat=median_step_time")

if __name__ == "__main__":
    main()
