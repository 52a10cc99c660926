"""Benchmark (not a test): our ICL scorer vs lm-evaluation-harness `HFLM.loglikelihood`, same model, same
requests, side by side in one run.

Model: the `mini` shape (XGLM, d_model 256, 4 layers, 4 heads, ffn 1024), random init; byte-level BPE 8k
trained in seconds on mirror text. Requests: 5-shot (and 0-shot) prompts of XNLI, PAWS-X, XCOPA,
XStoryCloze, XWinograd in en and zh, demonstrations joined by `</s>` (Appendix C), given to both tools as
(context, continuation) strings; ours turns them into tokens exactly as lm-eval does (encode the whole,
split at the context's length) and scores them with the shared-demonstration cache.

    AFP_DATA_MIRROR=../shared/afp-data .venv/bin/python bench/eval_icl.py [--items 24] [--threads 1]

Last line: `RATIO ours_vs_lm_eval=<items/s ours / items/s lm-eval at 5-shot> max_abs_loglik_diff=<...>`."""
from __future__ import annotations

import argparse
import logging
import os
import time

import torch

from afp_lib.eval.demos import sample_demos
from afp_lib.eval.prompts import join_demonstrations
from afp_lib.eval.requests import Request, build_prefix
from afp_lib.eval.scorer import loglikelihood
from afp_lib.eval.tasks import TASKS, load_task_data
from afp_lib.models import ModelShape, build_model
from afp_lib.paths import mirror_root
from afp_lib.tokenizer import train_bpe

GRID = [("xnli", "en"), ("xnli", "zh"), ("pawsx", "en"), ("pawsx", "zh"), ("xcopa", "en"), ("xcopa", "zh"),
        ("xstorycloze", "en"), ("xstorycloze", "zh"), ("xwinograd", "en")]


def tokenizer_from_mirror():
    root = mirror_root()
    lines = []
    for lang in ("en", "zh", "th", "tr", "sw"):
        lines += (root / "mono" / "leipzig" / f"{lang}.txt").read_text(encoding="utf-8").splitlines()
    for lang in ("en", "zh"):
        path = root / "mono" / "libreoffice_help_mono" / f"{lang}.txt"
        lines += path.read_text(encoding="utf-8").splitlines()[:3000]
    return train_bpe(lines, vocab_size=8000, min_frequency=2)


def string_requests(tokenizer, k: int, n_items: int, seed: int = 0):
    """[(context, continuation)] and, per item, the index range of its candidates and its gold index."""
    reqs, items = [], []
    for name, code in GRID:
        task = TASKS[name]
        data = load_task_data(task, code, n_items)
        dcode = task.lang(code).demos_from or code
        demos = []
        for d in sample_demos(data.pool, k, seed) if k else []:
            ex = task.example(d, dcode)
            demos.append(ex.candidates[ex.gold])
        head = join_demonstrations(demos, "", tokenizer.eos_token)
        for doc in data.test:
            ex = task.example(doc, code)
            shared = os.path.commonprefix(list(ex.candidates))
            cut = shared.rfind(" ")                       # split at a word boundary, as lm-eval tasks do
            cut = cut if cut > 0 else len(shared)
            items.append((len(reqs), len(ex.candidates), ex.gold))
            reqs += [(head + c[:cut], c[cut:]) for c in ex.candidates]
    return reqs, items


def ours(model, tokenizer, reqs, batch_size):
    """Tokenize like lm-eval (_encode_pair), then score with the shared-prefix cache."""
    t0 = time.perf_counter()
    ctx = tokenizer([c for c, _ in reqs])["input_ids"]
    whole = tokenizer([c + x for c, x in reqs])["input_ids"]
    out, prefix_len = [], {}
    eos = tokenizer.eos_token
    for (c, _), ce, we in zip(reqs, ctx, whole):
        head = c.rsplit(eos, 1)[0] + eos if eos in c else ""     # the demonstrations, shared by a whole seed
        if head not in prefix_len:
            prefix_len[head] = len(build_prefix(tokenizer, [])) + len(tokenizer(head, add_special_tokens=False)["input_ids"])
        P = prefix_len[head]
        out.append(Request(tuple(we[:P]), tuple(we[P:]), len(ce) - P, 0, 0))
    lls = loglikelihood(model, out, batch_size=batch_size)
    return lls, time.perf_counter() - t0


def lm_eval_scores(model, tokenizer, reqs, batch_size):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device="cpu", dtype="float32")
    inst = [Instance(request_type="loglikelihood", doc={}, arguments=r, idx=i) for i, r in enumerate(reqs)]
    t0 = time.perf_counter()
    res = lm.loglikelihood(inst, disable_tqdm=True)
    return [ll for ll, _ in res], time.perf_counter() - t0


def accuracy(lls, items):
    return 100 * sum(max(range(n), key=lambda j: lls[s + j]) == g for s, n, g in items) / len(items)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=24, help="items per (task, language)")
    ap.add_argument("--batch-size", type=int, default=32)
    # 1 thread by default: on a shared 2-core machine, multi-threaded small matmuls measure OpenMP contention
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    tokenizer = tokenizer_from_mirror()
    shape = ModelShape(d_model=256, n_layers=4, n_heads=4, ffn_dim=1024, max_positions=2048)
    model = build_model("xglm", shape, tokenizer, seed=0).eval()
    print(f"setup: tokenizer {len(tokenizer)} + XGLM mini shape in {time.perf_counter() - t0:.1f}s; "
          f"{args.items} items x {len(GRID)} (task, lang); batch {args.batch_size}; {args.threads} threads")
    ratio5 = diff5 = None
    for k in (0, 5):
        reqs, items = string_requests(tokenizer, k, args.items)
        ll_ours, t_ours = ours(model, tokenizer, reqs, args.batch_size)
        ll_ref, t_ref = lm_eval_scores(model, tokenizer, reqs, args.batch_size)
        diff = max(abs(a - b) for a, b in zip(ll_ours, ll_ref))
        n = len(items)
        ratio = (n / t_ours) / (n / t_ref)
        mean_tokens = sum(len(tokenizer(c + x)["input_ids"]) for c, x in reqs) / len(reqs)
        print(f"{k}-shot: {n} items, {len(reqs)} requests, {mean_tokens:.0f} tokens/request | ours {n / t_ours:.1f} items/s "
              f"({t_ours:.1f}s) | lm-eval {n / t_ref:.1f} items/s ({t_ref:.1f}s) | ratio {ratio:.2f} | "
              f"max |dLL| {diff:.2e} | acc ours {accuracy(ll_ours, items):.1f} lm-eval {accuracy(ll_ref, items):.1f}")
        if k == 5:
            ratio5, diff5 = ratio, diff
    print(f"RATIO ours_vs_lm_eval={ratio5:.2f} max_abs_loglik_diff={diff5:.2e}")


if __name__ == "__main__":
    main()
