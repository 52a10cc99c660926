"""Few-shot translation on FLORES-101 (Appendix C, Table 20): "{Src}: {src} = {Tgt}:" after k demonstrations
from dev in the same format joined by EOS; greedy decoding that stops at EOS, a newline or max_new_tokens;
corpus BLEU and chrF with sacrebleu on devtest.

Generation reuses the demonstrations' key/value cache like the scorer. Queries differ in length, so each
batch is left-padded *after* the cached prefix: the pads are masked out and the position ids skip them.
`greedy_reference` (no cache, no padding, one item at a time) is what the tests compare against."""
from __future__ import annotations

import functools
import inspect
import logging
import random
import time

import sacrebleu
import torch
from tqdm import tqdm

from ..config import bar_disable
from ..families import sliding_window
from .prompts import flores
from .requests import build_prefix, encode
from .runner import open_results
from .scorer import autocast, batches, cache_kwarg, expand_cache, full_cache, kv_tensors, returned_cache
from .tasks import SUBSET_SEED, TASKS, _rows

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=8)
def _newline_ids(tokenizer) -> frozenset[int]:
    pieces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    return frozenset(i for i, p in enumerate(pieces) if "\n" in p)


def stop_ids(tokenizer) -> frozenset[int]:
    """EOS and every token whose text holds a newline."""
    return _newline_ids(tokenizer) | {tokenizer.eos_token_id}


@torch.no_grad()
def greedy_generate(model, prefix: tuple[int, ...], prompts: list[list[int]], stop: frozenset[int],
                    max_new_tokens: int = 64, batch_size: int = 16, bf16: bool = False, max_tokens: int | None = None,
                    drop_finished: bool = True) -> list[list[int]]:
    """Greedy continuations (stop token excluded) of prefix + each prompt; the prefix is encoded once.

    Prompts go longest first into batches of at most `batch_size` rows and, with `max_tokens`, at most that
    many cached positions (rows x (prefix + longest prompt + max_new_tokens), `scorer.batches`): short
    0-shot prompts fill far more rows than the old fixed 16. A row that has stopped leaves its batch
    (`drop_finished`), so the batch shrinks instead of running to the longest answer. Rows never interact,
    so greedy outputs are those of one prompt at a time (tested); False only times the old path (bench)."""
    device = next(model.parameters()).device
    kw = cache_kwarg(model)
    takes_positions = "position_ids" in inspect.signature(model.forward).parameters
    with autocast(model, bf16):
        kv = kv_tensors(returned_cache(model(input_ids=torch.tensor([prefix], device=device), use_cache=True,
                                             logits_to_keep=1, **{kw: full_cache()})))
    P = len(prefix)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    stop_t = torch.tensor(sorted(stop), device=device, dtype=torch.long)
    result: list[list[int]] = [[] for _ in prompts]
    same_length = sliding_window(model.config) is not None
    chunks = [c for b_rows in batches([len(prompts[i]) for i in order], P + max_new_tokens, batch_size, max_tokens)
              for c in _same_length_runs([order[j] for j in b_rows], prompts, same_length)]
    for chunk in chunks:
        B, T = len(chunk), max(len(prompts[i]) for i in chunk)
        ids = torch.zeros((B, T), dtype=torch.long)
        mask = torch.zeros((B, P + T), dtype=torch.long)
        mask[:, :P] = 1
        pos = torch.full((B, T), P, dtype=torch.long)
        for b, i in enumerate(chunk):  # left-pad each query after the prefix
            n = len(prompts[i])
            ids[b, T - n:] = torch.tensor(prompts[i])
            mask[b, P + T - n:] = 1
            pos[b, T - n:] = torch.arange(P, P + n)
        ids, mask, pos = ids.to(device), mask.to(device), pos.to(device)
        cache = expand_cache(kv, B)
        rows = list(chunk)                                                  # prompt index of each live row
        done = torch.zeros(B, dtype=torch.bool, device=device)
        gen = {i: [] for i in chunk}
        for _ in range(max_new_tokens):
            extra = {"position_ids": pos} if takes_positions else {}
            with autocast(model, bf16):
                out = model(input_ids=ids, attention_mask=mask, use_cache=True, logits_to_keep=1, **{kw: cache}, **extra)
            cache = returned_cache(out)
            nxt = out.logits[:, -1].float().argmax(-1)                     # (B,)
            done |= torch.isin(nxt, stop_t)
            for i, t, d in zip(rows, nxt.tolist(), done.tolist()):
                if not d:
                    gen[i].append(t)
            if bool(done.all()):
                break
            ids, mask, pos = nxt[:, None], torch.cat([mask, mask.new_ones((len(rows), 1))], 1), pos[:, -1:] + 1
            if drop_finished and bool(done.any()):
                live = (~done).nonzero().squeeze(1)
                cache.batch_select_indices(live)
                ids, mask, pos, done = ids[live], mask[live], pos[live], done[live]
                rows = [rows[j] for j in live.tolist()]
        for i in chunk:
            result[i] = gen[i]
    return result


def _same_length_runs(chunk: list[int], prompts: list[list[int]], same_length: bool) -> list[list[int]]:
    """`chunk` (sorted longest first) as it is, or, for models with sliding-window attention (Gemma 3), cut
    into runs of one prompt length: their window counts positions of the cache, the left pads among them, so a
    padded row would see fewer real tokens than it does alone."""
    if not same_length:
        return [chunk]
    runs: list[list[int]] = []
    for i in chunk:
        if runs and len(prompts[runs[-1][0]]) == len(prompts[i]):
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


@torch.no_grad()
def greedy_reference(model, ids: list[int], stop: frozenset[int], max_new_tokens: int = 64) -> list[int]:
    """Brute force: a full forward over the whole sequence for every new token."""
    device = next(model.parameters()).device
    seq, out = list(ids), []
    for _ in range(max_new_tokens):
        nxt = int(model(input_ids=torch.tensor([seq], device=device), use_cache=False).logits[0, -1].argmax())
        if nxt in stop:
            break
        out.append(nxt)
        seq.append(nxt)
    return out


def _sentences(code: str, split: str) -> list[str]:
    task = TASKS["flores"]
    rows = sorted(_rows(task.dataset, task.lang(code).config, split), key=lambda r: r["id"])
    return [r["sentence"] for r in rows]


def bleu_tokenizer(tgt: str) -> str:
    table = TASKS["flores"].bleu_tokenize
    return table.get(tgt, table.get("default", "13a"))


def sentence_bleu_stats(hyps: list[str], refs: list[str], tokenize: str) -> list[list[int]]:
    """Per sentence [hypothesis length, reference length, 1-4-gram matches, 1-4-gram totals]: their sum
    gives the corpus BLEU, so a bootstrap over sentences (afp_lib.analysis.intervals) can recompute it."""
    bleu = sacrebleu.BLEU(tokenize=tokenize, effective_order=True)  # effective_order: the score only, not counts
    out = []
    for h, r in zip(hyps, refs):
        st = bleu.sentence_score(h, [r])
        out.append([st.sys_len, st.ref_len, *st.counts, *st.totals])
    return out


def translate_eval(model, tokenizer, pairs, shots=(0,), seeds=(0,), max_items: int | None = None,
                   model_name: str = "model", out_file=None, max_new_tokens: int = 128, batch_size: int = 16,
                   bf16: bool = False, progress: bool = True, batch_tokens: int | None = None) -> list[dict]:
    """BLEU and chrF records (task "flores", language "en-zh") for each direction, shot count and seed.

    A 0-shot prompt has no demonstrations, so its output does not depend on the seed: it is generated once
    (or read from a seed already on file) and recorded for every seed. `batch_size` rows and `batch_tokens`
    cached positions at most per generation batch (`greedy_generate`)."""
    task = TASKS["flores"]
    pairs = [tuple(p.split("-")) if isinstance(p, str) else tuple(p) for p in pairs]
    for src, tgt in pairs:
        task.lang(src), task.lang(tgt)
        if src == tgt:
            raise ValueError(f"translation pair {src}-{tgt} has the same source and target")
    results, out = open_results(out_file), []
    stop = stop_ids(tokenizer)
    units = [(p, k) for p in pairs for k in shots]
    for (src, tgt), k in tqdm(units, desc="FLORES translate", disable=bar_disable(not progress)):
        unit = lambda seed: dict(model=model_name, task="flores", language=f"{src}-{tgt}", shots=k,  # noqa: E731
                                 seed=seed, demo_lang=src, demos="random", connectors="english",
                                 max_items=max_items, version=task.version)
        todo, seed_free = [], None
        for seed in seeds:
            done = results.done(unit(seed))
            if done:
                out += done
                seed_free = done if k == 0 else None   # a 0-shot cell on file serves the other seeds too
            else:
                todo.append(seed)
        for seed in todo:
            t0 = time.perf_counter()
            if seed_free is not None:
                recs = [{**r, "seed": seed, "seconds": round(time.perf_counter() - t0, 3)} for r in seed_free]
            else:
                recs = _translate_unit(model, tokenizer, unit(seed), t0, stop, max_new_tokens, batch_size, bf16,
                                       batch_tokens)
                seed_free = recs if k == 0 else None
            results.add(recs)
            out += recs
    return out


def _translate_unit(model, tokenizer, unit: dict, t0: float, stop, max_new_tokens, batch_size, bf16,
                    batch_tokens) -> list[dict]:
    """The BLEU and chrF records of one direction, shot count and seed (`unit`)."""
    task = TASKS["flores"]
    (src, tgt), k, seed, max_items = unit["language"].split("-"), unit["shots"], unit["seed"], unit["max_items"]
    s_name, t_name = task.lang(src).name, task.lang(tgt).name
    src_test, ref = _sentences(src, task.splits.test), _sentences(tgt, task.splits.test)
    if max_items is not None and len(src_test) > max_items:
        keep = sorted(random.Random(SUBSET_SEED).sample(range(len(src_test)), max_items))
        src_test, ref = [src_test[i] for i in keep], [ref[i] for i in keep]
    src_dev, tgt_dev = _sentences(src, task.splits.demos), _sentences(tgt, task.splits.demos)
    picks = random.Random(seed).sample(range(len(src_dev)), k)
    prefix = build_prefix(tokenizer, [flores(src_dev[i], s_name, t_name, tgt_dev[i]) for i in picks])
    prompts = encode(tokenizer, [flores(s, s_name, t_name) for s in src_test])
    gen = greedy_generate(model, prefix, prompts, stop, max_new_tokens, batch_size, bf16, batch_tokens)
    hyps = [tokenizer.decode(g).split("\n")[0].strip() for g in gen]
    logger.info("flores %s-%s %d-shot: %r -> %r (ref %r)", src, tgt, k, src_test[0][:80], hyps[0][:80], ref[0][:80])
    tok = bleu_tokenizer(tgt)
    scores = {"bleu": sacrebleu.corpus_bleu(hyps, [ref], tokenize=tok).score,
              "chrf": sacrebleu.corpus_chrf(hyps, [ref]).score}
    recs = [{**unit, "metric": m, "value": v, "n_items": len(hyps), "split": task.splits.test,
             "demo_pool": task.splits.demos if k else None, "bleu_tokenize": tok,
             "seconds": round(time.perf_counter() - t0, 3)} for m, v in scores.items()]
    recs[0]["bleu_stats"] = sentence_bleu_stats(hyps, ref, tok)   # the BLEU record: for its interval
    return recs
