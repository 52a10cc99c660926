"""In-context learning evaluation: tasks x languages x shots x seeds -> accuracy records.

    recs = evaluate(model, tokenizer, tasks=["xnli", "xcopa"], langs=["en", "zh"], shots=[0, 5], seeds=[0, 1, 2],
                    max_items=100, model_name="xglm-mini+afp", out_file=path)

Per (task, language) the items are tokenized once; per (shots, seed) the k demonstrations are sampled from
the non-test pool, their key/value cache is computed once, and every candidate of every item is scored from
the first token where the item's candidates differ. A 0-shot prompt (and a semantically aligned one) does
not depend on the seed: it is scored once and recorded for every seed, so tables average uniformly."""
from __future__ import annotations

import logging
import time

from tqdm import tqdm

from ..config import bar_disable
from .demos import sample_demos, semantic_demos
from .prompts import join_demonstrations
from .requests import build_prefix, build_requests, encode_examples
from .runner import open_results
from .scorer import loglikelihood
from .tasks import TASKS, check_langs, load_task_data

logger = logging.getLogger(__name__)

METRICS = ("acc", "acc_norm", "acc_tok")   # argmax of summed log-prob; per character (lm-eval's acc_norm); per token
DEMOS = ("random", "semantic")


def _gold_text(task, doc, code, connectors) -> str:
    ex = task.example(doc, code, connectors)
    return ex.candidates[ex.gold]


def _accuracies(lls: list[float], items, norms) -> dict[str, tuple[float, str]]:
    """Percent correct under each normalisation and the per-item outcomes as a "0"/"1" string in item order
    (paired comparisons of two models on the same items, analysis.intervals.paired_difference);
    `norms[i][j]` = (characters, tokens) scored."""
    correct = {m: [] for m in METRICS}
    i = 0
    for n, it in enumerate(items):
        c = len(it.candidates)
        ll = lls[i:i + c]
        i += c
        for metric, score in (("acc", ll), ("acc_norm", [v / max(ch, 1) for v, (ch, _) in zip(ll, norms[n])]),
                              ("acc_tok", [v / nt for v, (_, nt) in zip(ll, norms[n])])):
            hit = max(range(c), key=lambda j: (score[j], -j)) == it.gold  # first of ties, like argmax
            correct[metric].append("1" if hit else "0")
    return {m: (100.0 * v.count("1") / len(items), "".join(v)) for m, v in correct.items()}


def _check(tasks, shots, demos, demo_lang):
    for name in tasks:
        task = TASKS[name]
        if task.kind != "multiple_choice":
            raise ValueError(f"{name!r} is a {task.kind} task: use translate_eval for it")
        if demo_lang is not None:
            task.lang(demo_lang)
    if demos not in DEMOS:
        raise ValueError(f"demos={demos!r}; use one of {', '.join(DEMOS)}")
    if any((not isinstance(k, int)) or k < 0 for k in shots):
        raise ValueError(f"shots={list(shots)!r} must be non-negative integers")


def evaluate(model, tokenizer, tasks, langs=None, shots=(0,), seeds=(0,), max_items: int | None = None,
             model_name: str = "model", out_file=None, demo_lang: str | None = None, demos: str = "random",
             connectors: str = "english", batch_size: int = 32, bf16: bool = False, semantic_layer: int = 1,
             semantic_pooling: str = "mean", progress: bool = True, batch_tokens: int | None = None) -> list[dict]:
    """Accuracy records for every (task, language, shots, seed); resumes from (and appends to) `out_file`.

    langs: None = every language of each task. demo_lang: None = demonstrations in the test language,
    "en" = English demonstrations (cross-lingual ICL). demos: "random" (the paper) or "semantic" (Table 6).
    connectors: "english" (the paper, for every language) or "native". batch_tokens: at most this many attended
    positions (rows x (prefix + row)) per scoring batch, besides `batch_size` rows."""
    tasks, shots, seeds = list(tasks), list(shots), list(seeds)
    _check(tasks, shots, demos, demo_lang)
    plan = check_langs(tasks, langs)
    results = open_results(out_file)
    units = [(t, c, k) for t in tasks for c in plan[t] for k in shots]
    out: list[dict] = []
    bar = tqdm(units, desc="ICL eval", disable=bar_disable(not progress))
    cache: dict = {}
    for name, code, k in bar:
        task = TASKS[name]
        dcode = demo_lang or task.lang(code).demos_from or code
        base = dict(model=model_name, task=name, language=code, shots=k, demo_lang=dcode, demos=demos,
                    connectors=connectors, max_items=max_items, version=task.version)
        todo, seed_free = [], k == 0 or demos == "semantic"
        scored: dict | None = None
        for seed in seeds:
            done = results.done({**base, "seed": seed})
            if done:
                out += done
                if seed_free:  # a seed-free score already on file serves the other seeds too
                    scored = {r["metric"]: (r["value"], r.get("correct")) for r in done}
            else:
                todo.append(seed)
        if not todo:
            continue
        bar.set_description(f"{name}/{code} {k}-shot")
        if (name, code) not in cache:
            data = load_task_data(task, code, max_items, demo_lang)
            items = encode_examples(tokenizer, [task.example(d, code, connectors) for d in data.test])
            norms = [[(len(tokenizer.decode(c[it.start:])), len(c) - it.start) for c in it.candidates] for it in items]
            cache = {(name, code): (data, items, norms)}   # keep one language in memory at a time
        data, items, norms = cache[(name, code)]
        for seed in todo:
            t0 = time.perf_counter()
            if scored is None or not seed_free:
                if k == 0:
                    prefixes, shown = build_prefix(tokenizer, []), []
                elif demos == "random":
                    shown = [_gold_text(task, d, dcode, connectors) for d in sample_demos(data.pool, k, seed)]
                    prefixes = build_prefix(tokenizer, shown)
                else:
                    per_item = semantic_demos(model, tokenizer, task, data.test, data.pool, k, semantic_layer,
                                              semantic_pooling)
                    texts = [[_gold_text(task, d, dcode, connectors) for d in row] for row in per_item]
                    prefixes, shown = [build_prefix(tokenizer, t) for t in texts], texts[0]
                if seed == todo[0]:
                    logger.info("%s/%s %d-shot prompt (gold filled): %.400r", name, code, k,
                                join_demonstrations(shown, items and tokenizer.decode(items[0].candidates[items[0].gold]),
                                                    tokenizer.eos_token))
                lls = loglikelihood(model, build_requests(items, prefixes), batch_size=batch_size, bf16=bf16,
                                    max_tokens=batch_tokens)
                scored = _accuracies(lls, items, norms)
            recs = [{**base, "seed": seed, "metric": m, "value": v, "n_items": len(items), "split": data.split,
                     "demo_pool": data.pool_split if k else None, "seconds": round(time.perf_counter() - t0, 3),
                     "correct": bits} for m, (v, bits) in scored.items()]
            results.add(recs)
            out += recs
    return out
