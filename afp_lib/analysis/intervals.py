"""95% intervals for reported scores: item sampling and training-seed spread together.

One bootstrap replicate (`n_boot` = 1000, fixed `seed`, percentile interval) first draws as many training
seeds as there are, with replacement, then, for each drawn seed, resamples the test items of each scored
cell with replacement; the replicate's score is the mean over the drawn seeds of the mean over cells. With
one training seed (a vanilla model) only the items vary. Items are what one cell scores: the test items of
a task and language (accuracy: correct or not, known exactly from the record's accuracy and `n_items`,
since a bootstrap of a 0/1 mean depends on the count of ones only), the queries of a retrieval probe (each
direction's query is an item) and the sentences of a translation test set (BLEU recomputed from the
resampled sentences' n-gram statistics). Different cells are resampled independently, even
where they share items (0- and 5-shot of one test set), which makes averages over such cells a little
narrower than a joint resampling would.

Comparisons in the generated findings use `compare`: a word of order ("above", "below") only where the two
intervals do not overlap, else "indistinguishable from"."""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence

import numpy as np

N_BOOT = 1000
LEVEL = 95.0
CHANCE = {"xnli": 100 / 3, "pawsx": 50.0, "xcopa": 50.0, "xstorycloze": 50.0, "xwinograd": 50.0}


@functools.lru_cache(maxsize=None)
def majority_rate(task: str, language: str, max_items: int | None) -> float:
    """The score (%) of always giving the most frequent gold answer of the items a cell scores (the fixed
    subset of `max_items`, afp_lib.eval.tasks.load_task_data): on a few items the labels are rarely balanced
    (6 XNLI items with 4 contradictions: 66.7%, twice uniform chance), so a score must clear this too."""
    from collections import Counter

    from ..eval.tasks import TASKS, load_task_data
    spec = TASKS[task]
    quiet = logging.getLogger("afp_lib.eval.tasks")
    level, _ = quiet.level, quiet.setLevel(logging.ERROR)   # its notes on the split were logged by the evaluation
    try:
        test = load_task_data(spec, language, max_items).test
    finally:
        quiet.setLevel(level)
    if not test:
        raise ValueError(f"majority_rate: {task}/{language} has no test items")
    golds = Counter(spec.example(d, language, "english").gold for d in test)
    return 100.0 * max(golds.values()) / len(test)


def majority_rates(records) -> "pd.Series":
    """majority_rate of each accuracy record's cell (NaN where the records do not say which items were scored:
    no `max_items` column, e.g. hand-made records, or a task without a chance score)."""
    import pandas as pd
    if "max_items" not in records or records.empty:
        return pd.Series(float("nan"), index=records.index)
    keys = [(t, l, None if pd.isna(m) else int(m))   # max_items empty: every item was scored
            for t, l, m in zip(records["task"], records["language"], records["max_items"])]
    rates = {k: majority_rate(*k) if k[0] in CHANCE else float("nan") for k in set(keys)}
    return pd.Series([rates[k] for k in keys], index=records.index, dtype=float)


def no_skill(low: float, chance: float, majority: float = float("nan")) -> bool:
    """True when an interval's low end does not clear both uniform chance and the majority-class rate (NaN
    ones are ignored): the score is not distinguishable from guessing, a constant answer, or is below them."""
    refs = [x for x in (chance, majority) if x == x]
    return bool(refs) and low <= max(refs)


def bernoulli(percent: float, n: int) -> np.ndarray:
    """The n 0/1 item outcomes behind an accuracy of `percent` (in item order they are unknown, and a
    bootstrap of their mean does not need it)."""
    k = int(round(percent * n / 100.0))
    if not 0 <= k <= n:
        raise ValueError(f"accuracy {percent}% of {n} items is not a count of correct items")
    return np.repeat([1.0, 0.0], [k, n - k])


def _resampled_means(items: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    items = np.asarray(items, dtype=float)
    if items.size == 0:
        return np.full(n_boot, np.nan)
    if np.isin(items, (0.0, 1.0)).all():   # a 0/1 mean: the resampled count is binomial (same distribution)
        return rng.binomial(items.size, items.mean(), n_boot) / items.size
    return items[rng.integers(0, items.size, (n_boot, items.size))].mean(1)


def replicates(seeds: Sequence[Sequence[np.ndarray]], n_boot: int = N_BOOT, seed: int = 0,
               stat: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """(n_boot,) bootstrap replicates of mean over seeds of mean over cells. `seeds[s][c]` = the item
    values of cell c under training seed s. `stat` maps the (n_cells, n_boot) resampled cell means of one
    drawn seed to (n_boot,) (default: their mean)."""
    if not seeds or any(len(c) == 0 for c in seeds):
        raise ValueError("replicates needs at least one seed with at least one cell")
    rng = np.random.default_rng(seed)
    n_seeds = len(seeds)
    pick = rng.integers(0, n_seeds, (n_boot, n_seeds))         # seeds drawn with replacement
    reduce = stat or (lambda m: m.mean(0))
    slots = np.empty((n_seeds, n_boot))
    for j in range(n_seeds):                                     # each slot resamples its seed's items afresh
        per_seed = np.stack([reduce(np.stack([_resampled_means(c, n_boot, rng) for c in cells]))
                             for cells in seeds])                # (n_seeds, n_boot)
        slots[j] = per_seed[pick[:, j], np.arange(n_boot)]
    return slots.mean(0)


def interval(seeds: Sequence[Sequence[np.ndarray]], n_boot: int = N_BOOT, seed: int = 0,
             level: float = LEVEL, scale: float = 1.0) -> tuple[float, float, float]:
    """(estimate, low, high): the mean over seeds of the mean over cells, and its percentile interval."""
    est = float(np.mean([np.mean([np.mean(c) for c in cells]) for cells in seeds])) * scale
    reps = replicates(seeds, n_boot, seed) * scale
    lo, hi = np.nanpercentile(reps, [(100 - level) / 2, (100 + level) / 2])
    return est, float(lo), float(hi)


def accuracy_interval(per_seed: Sequence[Sequence[tuple[float, int]]], **kw) -> tuple[float, float, float]:
    """Interval of an accuracy (%) from records: `per_seed[s]` = [(percent, n_items) per cell]."""
    return interval([[bernoulli(v, n) for v, n in cells] for cells in per_seed], scale=100.0, **kw)


def has_seed_spread(findings, label: str) -> bool:
    """Whether a findings row (analysis.findings: one row per method, an "n seeds" column) has a standard error
    to test: a trained method needs two training seeds; the vanilla model is one model and needs none. Without an
    "n seeds" column the seeds are unknown, so there is no spread (the scorecard and the findings text share this)."""
    if label == "vanilla":
        return True
    return "n seeds" in findings.columns and int(findings.loc[label, "n seeds"]) >= 2


def excludes(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """True when the intervals (low, high) do not overlap."""
    return a[1] < b[0] or b[1] < a[0]


def contains(iv: tuple[float, float], x: float) -> bool:
    return iv[0] <= x <= iv[1]


def compare(a: tuple[float, float, float], b: tuple[float, float, float], lower_better: bool = False) -> str:
    """'above' / 'below' (or 'better than' / 'worse than' with lower_better set) when the intervals of the
    (estimate, low, high) triples exclude each other, else 'indistinguishable from'."""
    if not excludes(a[1:], b[1:]):
        return "indistinguishable from"
    higher = a[0] > b[0]
    if lower_better:
        return "worse than" if higher else "better than"
    return "above" if higher else "below"


def fmt(iv: tuple[float, float, float], digits: int = 1) -> str:
    """'5.3 [4.1, 6.6]'."""
    est, lo, hi = iv
    return f"{est:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def corpus_bleu(stats: np.ndarray) -> float:
    """Corpus BLEU (sacrebleu's defaults: exponential smoothing) from summed per-sentence statistics
    [hyp length, ref length, matches 1-4, totals 1-4] (afp_lib.eval.translation.sentence_bleu_stats)."""
    from sacrebleu.metrics import BLEU
    s = np.asarray(stats).sum(0) if np.ndim(stats) == 2 else np.asarray(stats)
    return BLEU.compute_bleu([int(v) for v in s[2:6]], [int(v) for v in s[6:10]], int(s[0]), int(s[1]),
                             smooth_method="exp").score


def bleu_replicates(stats: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot,) corpus BLEU of sentence sets drawn with replacement (per-sentence statistics (N, 10))."""
    n = len(stats)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)   # how often each sentence is drawn
    return np.array([corpus_bleu(w) for w in weights @ stats])


REPLICATE_SEP = "\x1f"   # model name + REPLICATE_SEP + replicate number, in the records `resample_records` makes


def resample_records(rec, n_boot: int = N_BOOT, seed: int = 0):
    """Bootstrap replicates of accuracy records, as records again, so that any table builder gives one
    table per replicate. Replicate b of model m is the model `m<SEP>b`: its training seeds are drawn with
    replacement (slot j of a replicate becomes eval seed `seed + 1_000_000 * j`), and each of its records
    is redrawn as binomial(n_items, accuracy) / n_items, the item bootstrap of that cell. Records that score
    the same prompts (a 0-shot cell, recorded once per eval seed) share one draw. A BLEU record with
    per-sentence statistics (`bleu_stats`) is redrawn as the corpus BLEU of resampled sentences; other
    records (chrF, or BLEU without statistics) get NaN: no interval."""
    import zlib

    import pandas as pd

    if rec.empty:
        return rec.copy()
    train_seed = rec["train_seed"] if "train_seed" in rec else pd.Series(0, index=rec.index)
    parts = []
    for model, d in rec.groupby("model", sort=False):
        rng = np.random.default_rng([seed, zlib.crc32(str(model).encode())])   # a model's draws ignore the others
        seeds = sorted(train_seed[d.index].unique())
        pick = rng.integers(0, len(seeds), (n_boot, len(seeds)))
        for j in range(len(seeds)):
            for i, s in enumerate(seeds):
                reps = np.nonzero(pick[:, j] == i)[0]
                ds = d[train_seed[d.index] == s]
                if not len(reps) or ds.empty:
                    continue
                same_prompts = ds["seed"].where(ds["shots"] > 0, -1)
                group = pd.DataFrame({"t": ds["task"], "l": ds["language"], "k": ds["shots"], "m": ds["metric"],
                                      "s": same_prompts}).groupby(["t", "l", "k", "m", "s"], sort=False).ngroup().to_numpy()
                first = pd.Series(np.arange(len(ds))).groupby(group).first().to_numpy()
                n = ds["n_items"].to_numpy()[first]
                p = ds["value"].to_numpy()[first] / 100.0
                acc = ds["metric"].isin(("acc", "acc_norm", "acc_tok")).to_numpy()[first]
                draws = rng.binomial(n[None, :], np.clip(p, 0, 1)[None, :], (len(reps), len(first))) / n * 100.0
                draws[:, ~acc] = np.nan
                for c in np.nonzero(~acc)[0]:          # BLEU with its per-sentence statistics: resample sentences
                    row = ds.iloc[first[c]]
                    stats = row.get("bleu_stats") if row["metric"] == "bleu" else None
                    if isinstance(stats, (list, np.ndarray)) and len(stats):
                        draws[:, c] = bleu_replicates(np.asarray(stats, dtype=np.int64), len(reps), rng)
                block = ds.iloc[np.tile(np.arange(len(ds)), len(reps))].copy()
                block["value"] = draws[:, group].ravel()
                block["model"] = [f"{model}{REPLICATE_SEP}{b}" for b in np.repeat(reps, len(ds))]
                block["seed"] = block["seed"].to_numpy() + 1_000_000 * j
                parts.append(block)
    return pd.concat(parts, ignore_index=True)


def score_intervals(records, by: Sequence[str], metric: str = "acc", **kw):
    """Per `by` group of accuracy records: the mean over training seeds of the mean over its (task,
    language, shots) cells (eval seeds averaged first), its 95% interval, and the same mean at chance.
    Columns: by..., value, low, high, chance, at_chance (the interval contains chance)."""
    import pandas as pd

    df = records[records["metric"] == metric]
    train_seed = df["train_seed"] if "train_seed" in df else pd.Series(0, index=df.index)
    rows = []
    for key, d in df.assign(_ts=train_seed).groupby(list(by), sort=True, dropna=False):
        cells = d.groupby(["_ts", "task", "language", "shots"])[["value", "n_items"]].mean().reset_index()
        per_seed = [list(zip(c["value"], c["n_items"].astype(int))) for _, c in cells.groupby("_ts")]
        est, lo, hi = accuracy_interval(per_seed, **kw)
        chance = float(cells["task"].map(CHANCE).mean())
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))), "value": est, "low": lo,
                     "high": hi, "chance": chance, "at_chance": lo <= chance <= hi})
    return pd.DataFrame(rows)


def paired_difference(cells: Sequence[tuple[str, str]], n_boot: int = N_BOOT, seed: int = 0,
                      level: float = LEVEL) -> tuple[float, float, float]:
    """(estimate, low, high) in points of the mean over cells of accuracy(a) - accuracy(b), where each cell is
    the per-item outcomes ("0"/"1" strings, `correct` of the ICL records) of models a and b on the same items.
    Each replicate resamples a cell's items once for both models, so what the two share (easy and hard
    items) cancels and the interval is that of the change, much narrower than two separate intervals."""
    if not cells:
        raise ValueError("paired_difference needs at least one cell")
    rng = np.random.default_rng(seed)
    est, reps = 0.0, np.zeros(n_boot)
    for a, b in cells:
        if len(a) != len(b) or not a:
            raise ValueError(f"paired cells must score the same items: {len(a)} against {len(b)} outcomes")
        d = np.frombuffer(a.encode(), np.uint8).astype(float) - np.frombuffer(b.encode(), np.uint8)
        est += d.mean()
        reps += d[rng.integers(0, d.size, (n_boot, d.size))].mean(1)
    est, reps = 100 * est / len(cells), 100 * reps / len(cells)
    lo, hi = np.percentile(reps, [(100 - level) / 2, (100 + level) / 2])
    return est, float(lo), float(hi)
