"""Benchmark (not a test): evaluation speed and memory at paper scale, on whatever device this runs on.

Shapes (random weights, the published configs registered in afp_lib/families.py, nothing downloaded):
  - XGLM-564M: d_model 1024, 24 layers, 16 heads, ffn 4096, vocabulary 256,008; fp32 (bf16 with --bf16).
  - Llama-7B: hidden 4096, 32 heads, ffn 11008, vocabulary 32,000, in bf16, built with 1 and 2 layers only
    (a 7B model does not fit beside five other engineers' jobs); time and memory are extrapolated to 32
    layers per layer: value(32) = value(1) + 31 x (value(2) - value(1)).
Requests: XNLI-shaped, synthetic token ids: each item has 3 candidates of 56 tokens scored from token 28;
a 5-shot prefix is the start token + 5 demonstrations of 57 tokens (286 tokens), a 0-shot one 1 token.
Scoring: `afp_lib.eval.scorer.loglikelihood`, 32 rows per batch at most, token-bounded (--max-tokens).
Translation (XGLM-564M): `greedy_generate`, 8 sentences of 40 tokens per batch, 5-shot prefix of 5 x 80
tokens, generation never stopped early; timed at 8 and 16 new tokens, extrapolated to 128.
Peak memory: the largest resident set above the one before scoring (model and requests built), sampled
every 5 ms, with glibc returning freed blocks at once (MALLOC_MMAP_THRESHOLD_=65536, set by re-executing
itself; otherwise a run would reuse memory an earlier run left behind); `old cache` is the same 5-shot run with the rows' keys kept in the cache for every layer
(`expand_cache`, what the scorer did before `prefix_cache`).

    .venv/bin/python bench/eval_scale.py [--items 24] [--threads 2] [--skip-7b]

Last line: `RATIO prefix_cache_vs_old_peak_memory=<old / new peak at 5-shot, XGLM-564M> ...`.

FLORES speed-up (`--flores`, docs/gpu-efficiency.md): the paper's FLORES grid of one direction (shots
0/1/5/10 x 3 seeds, --sentences sentences of 20-70 tokens, demonstrations of 80 tokens) generated the old
way and the new way, side by side in one run, on the same random-weight model and prompts:
  old: fp32 weights (bf16 autocast on CUDA, as eval.precision bf16 did), batches of 16 sentences,
       every row running to the batch's end, 0-shot generated once per seed;
  new: bf16 weights on CUDA (`runner.eval_dtype`; fp32 on the CPU, as before), batches cut by cached
       positions (the paper profile's 256 rows / 32768 positions), finished rows dropped, 0-shot once.
No row stops early (random weights, no stop token): both paths generate --new-tokens for every sentence,
so dropping finished rows gains nothing here, and its real gain comes on top. Times are wall-clock on CUDA,
this process's CPU time on the CPU (the cores are shared, so wall-clock there measures the neighbours). Each shot count is timed once
per path; a grid's time counts each seed's generation (their prefixes have the same length). On the CPU
the default shape is a smaller XGLM (--shape small: d_model 512, 6 layers, 8 heads, ffn 2048, the real
256,008 vocabulary) at fp32; `--shape 564m` is XGLM-564M.

    .venv/bin/python bench/eval_scale.py --flores [--shape small|564m] [--sentences 64] [--new-tokens 16]

Last line: `RATIO flores_grid_speedup=<old / new seconds of the grid> per_generation_<k>shot=<old / new> ...`."""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import torch

from afp_lib.eval import scorer
from afp_lib.eval.requests import Request
from afp_lib.eval.translation import greedy_generate

ITEM, START, DEMO = 56, 28, 57


def rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))


class Peak:
    """Largest RSS above the level at entry, sampled every 5 ms."""

    def __enter__(self):
        self.base = self.peak = rss()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self):
        while not self.stop:
            self.peak = max(self.peak, rss())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()
        self.peak = max(self.peak, rss())
        self.gib = (self.peak - self.base) / 2**30


def requests(vocab: int, items: int, shots: int, seed: int = 0) -> list[Request]:
    g = torch.Generator().manual_seed(seed)
    ids = lambda n: tuple(torch.randint(4, vocab, (n,), generator=g).tolist())   # noqa: E731
    prefix = (2,) + sum((ids(DEMO - 1) + (2,) for _ in range(shots)), ())
    out = []
    for i in range(items):
        stem = ids(START)
        out += [Request(prefix, stem + ids(ITEM - START), START, i, j) for j in range(3)]
    return out


def published(name: str, **cut):
    """The published architecture of the registered checkpoint `name` (HubCheckpoint.config in
    afp_lib/families.py) with random weights, in eval mode; `cut` replaces config fields (depth, width)."""
    from transformers import AutoModelForCausalLM
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from afp_lib.families import hub_checkpoint
    fam, ckpt = hub_checkpoint(name)
    return AutoModelForCausalLM.from_config(CONFIG_MAPPING[fam.name](**dict(ckpt.config) | cut)).eval()


def xglm_564m():
    return published("xglm-564M")


def llama_7b(layers: int):
    torch.set_default_dtype(torch.bfloat16)
    try:
        return published("llama-7b", num_hidden_layers=layers)
    finally:
        torch.set_default_dtype(torch.float32)


def score(model, reqs, bf16: bool, max_tokens: int, old_cache: bool = False) -> dict:
    saved = scorer.prefix_cache
    if old_cache:
        scorer.prefix_cache = scorer.expand_cache
    try:
        scorer.loglikelihood(model, reqs[:3], batch_size=32, bf16=bf16, max_tokens=max_tokens)   # warm-up
        with Peak() as peak:
            t0 = time.perf_counter()
            scorer.loglikelihood(model, reqs, batch_size=32, bf16=bf16, max_tokens=max_tokens)
            secs = time.perf_counter() - t0
    finally:
        scorer.prefix_cache = saved
    return {"rows_per_s": len(reqs) / secs, "items_per_s": len(reqs) / 3 / secs, "peak_gib": peak.gib, "s": secs}


def translate(model, vocab: int, shots: int, new_tokens: int, bf16: bool) -> float:
    g = torch.Generator().manual_seed(1)
    prefix = (2,) + tuple(torch.randint(4, vocab, (shots * 80,), generator=g).tolist())
    prompts = [torch.randint(4, vocab, (40,), generator=g).tolist() for _ in range(8)]
    t0 = time.perf_counter()
    greedy_generate(model, prefix, prompts, frozenset(), max_new_tokens=new_tokens, batch_size=8, bf16=bf16)
    return time.perf_counter() - t0


def xglm_small():
    return published("xglm-564M", d_model=512, num_layers=6, attention_heads=8, ffn_dim=2048)


def flores(args) -> None:
    """Old vs new FLORES generation, side by side (see the module doc)."""
    import copy

    from afp_lib.devices import resolve_device
    from afp_lib.eval.runner import eval_dtype
    device = resolve_device("auto")
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    old_model = (xglm_564m() if args.shape == "564m" else xglm_small()).to(device)   # fp32 weights
    new_model = copy.deepcopy(old_model).to(eval_dtype(cuda, device))               # bf16 on CUDA only
    g = torch.Generator().manual_seed(1)
    vocab = old_model.config.vocab_size
    ids = lambda n: torch.randint(4, vocab, (n,), generator=g).tolist()   # noqa: E731
    prompts = [ids(int(n)) for n in torch.randint(20, 71, (args.sentences,), generator=g)]
    shots, seeds = (0, 1, 5, 10), 3
    print(f"FLORES grid of one direction on {device}: {args.sentences} sentences of 20-70 tokens, {args.new_tokens} new "
          f"tokens each, shots {shots} x {seeds} seeds; XGLM shape {args.shape} "
          f"({sum(p.numel() for p in old_model.parameters()) / 1e6:.0f}M parameters); "
          f"{'wall-clock' if cuda else 'CPU-time (process_time)'} seconds")

    clock = time.perf_counter if cuda else time.process_time   # CPU: this process's CPU seconds (shared cores)

    def run(model, prefix, rows=prompts, new_tokens=args.new_tokens, **kw):
        if cuda:
            torch.cuda.synchronize()
        t0 = clock()
        out = greedy_generate(model, prefix, rows, frozenset(), new_tokens, bf16=cuda, **kw)
        if cuda:
            torch.cuda.synchronize()
        return clock() - t0, out

    run(old_model, (2,) + tuple(ids(10)), prompts[:4], 2, batch_size=16)   # warm-up of both paths
    run(new_model, (2,) + tuple(ids(10)), prompts[:4], 2, batch_size=16)
    old_total = new_total = 0.0
    per = {}
    for k in shots:
        prefix = (2,) + tuple(ids(80 * k))
        t_old, out_old = run(old_model, prefix, batch_size=16, drop_finished=False)
        t_new, out_new = run(new_model, prefix, batch_size=args.batch_size, max_tokens=args.batch_tokens)
        same = sum(a == b for a, b in zip(out_old, out_new)) / len(prompts)
        old_total += seeds * t_old
        new_total += (1 if k == 0 else seeds) * t_new
        per[k] = t_old / t_new
        print(f"  {k:2d}-shot: old {t_old:6.1f}s, new {t_new:6.1f}s per generation ({per[k]:.2f}x); "
              f"{100 * same:.0f}% of the sentences identical")
    print(f"grid (0-shot once instead of {seeds} times): old {old_total:.0f}s, new {new_total:.0f}s")
    print(f"RATIO flores_grid_speedup={old_total / new_total:.2f} "
          + " ".join(f"per_generation_{k}shot={r:.2f}" for k, r in per.items()))


def main() -> None:
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") != "65536":
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"})
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=24, help="items per run (3 candidate rows each)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=8192, help="attended positions per batch")
    ap.add_argument("--bf16", action="store_true", help="XGLM-564M in bf16 autocast too")
    ap.add_argument("--skip-7b", action="store_true")
    ap.add_argument("--only-memory", action="store_true", help="only the 5-shot XGLM-564M cache comparison")
    ap.add_argument("--only-7b", action="store_true", help="only the Llama-7B shape")
    ap.add_argument("--flores", action="store_true", help="only the FLORES speed-up, old vs new generation")
    ap.add_argument("--shape", choices=["small", "564m"], help="--flores: XGLM shape (default: 564m on CUDA, "
                    "small on the CPU)")
    ap.add_argument("--sentences", type=int, default=0, help="--flores: sentences (default 1012 on CUDA, 64 on CPU)")
    ap.add_argument("--new-tokens", type=int, default=0, help="--flores: tokens per sentence (default 128 / 16)")
    ap.add_argument("--batch-size", type=int, default=256, help="--flores: rows per batch at most (new path)")
    ap.add_argument("--batch-tokens", type=int, default=32768, help="--flores: cached positions per batch (new path)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.flores:
        cuda = torch.cuda.is_available()
        args.shape = args.shape or ("564m" if cuda else "small")
        args.sentences = args.sentences or (1012 if cuda else 64)
        args.new_tokens = args.new_tokens or (128 if cuda else 16)
        return flores(args)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.items} items x 3 rows, max_tokens {args.max_tokens}")

    if args.only_7b:
        return llama(args)
    model = xglm_564m()
    old = score(model, requests(256008, args.items, 5), args.bf16, args.max_tokens, old_cache=True)
    print(f"XGLM-564M 5-shot, old cache (rows' keys kept for every layer): {old['rows_per_s']:.1f} rows/s, "
          f"peak +{old['peak_gib']:.2f} GiB")
    out = {}
    for shots in ((5,) if args.only_memory else (0, 5)):
        r = score(model, requests(256008, args.items, shots), args.bf16, args.max_tokens)
        out[shots] = r
        print(f"XGLM-564M {shots}-shot: {r['rows_per_s']:.1f} rows/s = {r['items_per_s']:.2f} items/s, "
              f"peak +{r['peak_gib']:.2f} GiB ({r['s']:.1f}s)")
    if args.only_memory:
        print(f"RATIO prefix_cache_vs_old_peak_memory={old['peak_gib'] / max(out[5]['peak_gib'], 1e-9):.2f}")
        return
    for shots in (0, 5):
        t8, t16 = (translate(model, 256008, shots, n, args.bf16) for n in (8, 16))
        t128 = t8 + (128 - 8) * (t16 - t8) / 8
        print(f"XGLM-564M translation {shots}-shot: 8 sentences x 8/16 new tokens in {t8:.1f}/{t16:.1f}s -> "
              f"x 128 tokens ~{t128:.0f}s = {8 / t128:.3f} sentences/s")
    del model
    if not args.skip_7b:
        llama(args)
    print(f"RATIO prefix_cache_vs_old_peak_memory={old['peak_gib'] / max(out[5]['peak_gib'], 1e-9):.2f} "
          f"xglm564m_rows_per_s_0shot={out[0]['rows_per_s']:.1f} xglm564m_rows_per_s_5shot={out[5]['rows_per_s']:.1f}")


def llama(args) -> None:
    """The Llama-7B shape at 1 and 2 layers, extrapolated to 32 per layer."""
    per = {}
    for layers in (1, 2):
        m = llama_7b(layers)
        per[layers] = {shots: score(m, requests(32000, max(args.items // 4, 3), shots), True, args.max_tokens)
                       for shots in (0, 5)}
        del m
    for shots in (0, 5):
        s1, s2 = per[1][shots], per[2][shots]
        secs_per_row = lambda r: 1 / r["rows_per_s"]   # noqa: E731
        t32 = secs_per_row(s1) + 31 * (secs_per_row(s2) - secs_per_row(s1))
        mem32 = s1["peak_gib"] + 31 * max(s2["peak_gib"] - s1["peak_gib"], 0.0)
        print(f"Llama-7B shape bf16 {shots}-shot: 1 layer {s1['rows_per_s']:.3g} rows/s (+{s1['peak_gib']:.2f} GiB), "
              f"2 layers {s2['rows_per_s']:.3g} rows/s (+{s2['peak_gib']:.2f} GiB) -> 32 layers ~{1 / t32:.3g} rows/s "
              f"= {1 / t32 / 3:.3g} items/s, peak above weights ~{mem32:.2f} GiB")


if __name__ == "__main__":
    main()
