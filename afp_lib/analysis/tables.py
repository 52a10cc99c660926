"""Our evaluation records in the paper's table layouts, with the paper's numbers and the difference.

Every builder returns one numeric DataFrame: rows indexed by (block, model[, shots]) where block is
"ours" (mean over seeds), "paper" (as printed; missing derived columns such as Var computed from its
cells) and "diff" (ours - paper, for runs matched to a paper row); columns are a MultiIndex in the
paper's order. `df.attrs` holds `pm` (the ± cells, as a dict: `render.pm_frame(df)` gives the frame; std over seeds, or the spread across languages where
the paper prints that), `ci` (for our rows: `lo`, `hi`, the 95% bootstrap interval over training seeds and
test items, `chance`, the cell's score at uniform chance, and `majority`, its majority-class rate;
afp_lib.analysis.intervals), `caption`, `digits` and
`merge_shots`. Render with to_markdown / to_latex, write
csv + tex + md with save (afp_lib.analysis.render)."""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import pandas as pd

from . import intervals as I
from . import paper as P
from .records import ICL_TASKS, load_records
from .render import save, to_latex, to_long, to_markdown  # noqa: F401  (re-exported for notebooks)

logger = logging.getLogger(__name__)
BLOCKS = ("ours", "paper", "diff")


# --- per-seed long frames: one row per (row key, column key, seed) -------------------------------------
def _long(df: pd.DataFrame, row: Sequence[str], col: Callable[[pd.DataFrame], list[tuple]], pm=None) -> pd.DataFrame:
    if df.empty:
        return pd.DataFrame({"row": [], "col": [], "seed": [], "value": [], "pm": []})
    out = pd.DataFrame({"row": list(zip(*[df[r] for r in row])), "col": col(df), "seed": df["seed"].values,
                        "value": df["value"].values})
    out["pm"] = float("nan") if pm is None else pm.values
    return out


def _reduce(df: pd.DataFrame, row: Sequence[str], over: Sequence[str], col: tuple | Callable, expected: int,
            spread: bool = False) -> pd.DataFrame:
    """Per (row..., seed, over...): mean of the cells (NaN unless all `expected` are present); with
    spread=True also the population std across them, the paper's 'variance across languages'."""
    keys = list(row) + ["seed"] + list(over)
    if df.empty:
        return _long(df, row, None)
    g = df.groupby(keys, sort=False)["value"]
    red = g.agg(value="mean", n="count").reset_index()
    red["sd"] = g.std(ddof=0).to_numpy()   # same group order as agg (sort=False)
    red.loc[red.n < expected, ["value", "sd"]] = float("nan")
    cols = col(red) if callable(col) else [col] * len(red)
    return _long(red, row, lambda _: cols, pm=red["sd"] if spread else None)


def _wide(long: pd.DataFrame, row_names, col_names, col_order) -> tuple[pd.DataFrame, pd.DataFrame]:
    if long.empty:
        empty = pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=row_names),
                             columns=pd.MultiIndex.from_tuples(col_order, names=col_names), dtype=float)
        return empty, empty.copy()
    g = long.groupby(["row", "col"], sort=False)
    mean = g["value"].mean()
    pm = g["pm"].mean().where(g["pm"].count() > 0, g["value"].std(ddof=1))  # explicit spread, else seed std
    frames = []
    for s in (mean, pm):
        w = s.unstack("col")
        w.index = pd.MultiIndex.from_tuples(w.index, names=row_names)
        w.columns = pd.MultiIndex.from_tuples(w.columns, names=col_names)
        frames.append(w.reindex(columns=pd.MultiIndex.from_tuples(col_order, names=col_names)))
    return frames[0], frames[1]


def _ours_intervals(rec, build, row_names, col_names, col_order, index):
    """(low, high, chance) frames for our rows: the 95% percentile interval of each cell over bootstrap
    replicates of the records (afp_lib.analysis.intervals: training seeds, then test items), and the cell's
    value were every item answered at chance (NaN where chance is undefined, e.g. BLEU or Var)."""
    reps = I.resample_records(rec, I.N_BOOT, seed=0)
    wide, _ = _wide(build(reps), row_names, col_names, col_order)
    if wide.empty:
        nan = pd.DataFrame(float("nan"), index=index, columns=wide.columns)
        return nan, nan, nan, nan
    level = list(wide.index.names).index("model")
    split = [k[level].rsplit(I.REPLICATE_SEP, 1)[0] for k in wide.index]
    keys = pd.MultiIndex.from_tuples([k[:level] + (m,) + k[level + 1:] for k, m in zip(wide.index, split)],
                                     names=wide.index.names)
    g = wide.set_axis(keys).groupby(level=list(range(keys.nlevels)), sort=False)
    q = (100 - I.LEVEL) / 200
    as_multi = lambda f: f.set_axis(pd.MultiIndex.from_tuples([k if isinstance(k, tuple) else (k,) for k in f.index],
                                                               names=wide.index.names))
    lo, hi = as_multi(g.quantile(q)), as_multi(g.quantile(1 - q))
    refs = []
    for values in (rec.task.map(I.CHANCE), I.majority_rates(rec)):   # uniform chance, the majority-class rate
        ref, _ = _wide(build(rec.assign(value=values)), row_names, col_names, col_order)
        ref.loc[:, [c for c in ref.columns if c[0] == "Var"]] = float("nan")
        refs.append(ref)
    return tuple(f.reindex(index=index, columns=wide.columns) for f in (lo, hi, *refs))


def _table(n, records, metric, build, row_names, col_names, col_order, paper, match, paper_models,
           paper_col, paper_row=("label",), digits=1, merge_shots=False) -> pd.DataFrame:
    rec = load_records(records)
    rec = rec[rec.metric == metric]
    mean, pm = _wide(build(rec), row_names, col_names, col_order)
    lo, hi, chance, majority = _ours_intervals(rec, build, row_names, col_names, col_order, mean.index)
    blocks, pms = {"ours": mean}, {"ours": pm}
    if paper:
        # derived columns (e.g. Var) from the paper's own cells, overlaid by what the paper prints
        p = P.paper_table(n)
        if paper_models is not None:
            p = p[p.label.isin(paper_models) | p.model.isin(paper_models)]
        cells = p[p.task.isin(P.TASKS + ("flores",)) & ~p.language.isin(["avg"]) & p.shots.notna()]
        derived = build(cells.assign(model=cells.label, seed=0, value=cells.value))
        keys = paper_col(p)
        keep = [k is not None for k in keys]
        pk = p[keep].assign(model=p.label[keep], seed=0)
        printed = _long(pk, row_names, lambda _: [k for k in keys if k is not None], pm=pk["pm"])
        pmean, ppm = _wide(pd.concat([derived.assign(pm=float("nan")), printed]).drop_duplicates(
            ["row", "col"], keep="last"), row_names, col_names, col_order)
        blocks["paper"], pms["paper"] = pmean, ppm
        diff = _diff(mean, pmean, match)
        if len(diff):
            blocks["diff"], pms["diff"] = diff, diff * float("nan")
    out = pd.concat(blocks, names=["block"])
    pm_all = pd.concat(pms, names=["block"]).reindex(index=out.index, columns=out.columns)
    keep = out.notna().any(axis=0)
    out, pm_all = out.loc[:, keep], pm_all.loc[:, keep]
    # attrs hold plain data only (pandas compares attrs when combining frames): pm as a nested dict
    ci = {name: pd.concat({"ours": f}, names=["block"]).reindex(index=out.index, columns=out.columns).to_dict()
          for name, f in (("lo", lo), ("hi", hi), ("chance", chance), ("majority", majority))}
    out.attrs.update(pm=pm_all.to_dict(), ci=ci, caption=P.CAPTIONS[n], digits=digits, merge_shots=merge_shots, table=n)
    return out


def _diff(ours: pd.DataFrame, paper: pd.DataFrame, match: Mapping[str, str] | None) -> pd.DataFrame:
    """ours - paper for our runs that name a paper row (explicitly via `match`, or by normalised name)."""
    rows, names = {}, list(ours.index.names)
    level = names.index("model")
    labels = list(dict.fromkeys(k[level] for k in paper.index))
    for key in ours.index:
        model = key[level]
        target = (match or {}).get(model) or (None if match else P.match_label(model, labels))
        if target is None:
            continue
        pkey = key[:level] + (target,) + key[level + 1:]
        if pkey in paper.index:
            rows[key[:level] + (f"{model} - {target}",) + key[level + 1:]] = ours.loc[key] - paper.loc[pkey]
    if not rows:
        return pd.DataFrame(columns=ours.columns, dtype=float)
    out = pd.DataFrame(rows).T
    out.index = pd.MultiIndex.from_tuples(out.index, names=names)
    return out


def _select(rec, tasks=None, languages=None, shots=None):
    q = pd.Series(True, index=rec.index)
    if tasks is not None:
        q &= rec.task.isin(tasks)
    if languages is not None:
        q &= rec.language.isin(languages)
    if shots is not None:
        q &= rec.shots.isin(shots)
    return rec[q]


def _cols(d: pd.DataFrame, *fields) -> list[tuple]:
    return list(zip(*[d[f].astype(str) for f in fields]))


# --- the paper's tables ----------------------------------------------------------------------------------
def table1(records, *, metric="acc", paper=True, match=None, paper_models=None,
           tasks=ICL_TASKS, languages=("en", "zh"), shots=(0, 5)) -> pd.DataFrame:
    """EN/ZH x 0/5-shot per task, Avg over all cells."""
    order = [(t, l, str(s)) for t in tasks for l in languages for s in shots] + [("Avg", "", "")]
    n_cells = len(order) - 1

    def build(rec):
        rec = _select(rec, tasks, languages, shots)
        return pd.concat([_long(rec, ["model"], lambda d: _cols(d, "task", "language", "shots")),
                          _reduce(rec, ["model"], [], ("Avg", "", ""), n_cells)])

    pcol = lambda p: [("Avg", "", "") if t == "avg" else (t, l, str(s)) for t, l, s in zip(p.task, p.language, p.shots)]
    return _table(1, records, metric, build, ["model"], ["task", "language", "shots"], order, paper, match,
                  paper_models, pcol, merge_shots=True)


def table2(records, *, metric="bleu", paper=True, match=None, paper_models=None,
           directions=("en-zh", "zh-en"), shots=(0, 1, 5, 10)) -> pd.DataFrame:
    """FLORES BLEU per direction and shots, Avg over the directions."""
    order = [(d, str(s)) for d in list(directions) + ["Avg"] for s in shots]

    def build(rec):
        rec = _select(rec, ["flores"], directions, shots)
        return pd.concat([_long(rec, ["model"], lambda d: _cols(d, "language", "shots")),
                          _reduce(rec, ["model"], ["shots"], lambda r: [("Avg", str(s)) for s in r.shots],
                                  len(directions))])

    pcol = lambda p: [("Avg" if l == "avg" else l, str(s)) for l, s in zip(p.language, p.shots)]
    return _table(2, records, metric, build, ["model"], ["direction", "shots"], order, paper, match,
                  paper_models, pcol)


def table3(records, *, metric="acc", paper=True, match=None, paper_models=None, tasks=("xnli", "xcopa"),
           languages=P.FIVE_LANGUAGES, shots=(0, 5)) -> pd.DataFrame:
    """Per language with High/Medium/Low groups; Avg over all cells and Var = population std across
    languages of each language's mean (the paper's 'variance across languages', §3.3)."""
    tier = lambda t, l: P.TIERS.get(t, {}).get(l, "other")
    order = [(t, tier(t, l), l, str(s)) for t in tasks for l in languages for s in shots]
    order += [("Avg", "", "", ""), ("Var", "", "", "")]
    n_cells = len(order) - 2

    def build(rec):
        rec = _select(rec, tasks, languages, shots)
        cells = _long(rec, ["model"], lambda d: [(t, tier(t, l), l, str(s)) for t, l, s in
                                                 zip(d.task, d.language, d.shots)])
        avg = _reduce(rec, ["model"], [], ("Avg", "", "", ""), n_cells)
        per_lang = _reduce(rec, ["model"], ["language"], ("x",), len(tasks) * len(shots))
        per_lang = pd.DataFrame({"model": [r[0] for r in per_lang.row], "seed": per_lang.seed,
                                 "value": per_lang.value})
        var = _reduce(per_lang, ["model"], [], ("Var", "", "", ""), len(languages), spread=True)
        var["value"] = var.pop("pm")
        return pd.concat([cells, avg, var.assign(pm=float("nan"))])

    pcol = lambda p: [("Avg", "", "", "") if t == "avg" else (t, tier(t, l), l, str(s))
                      for t, l, s in zip(p.task, p.language, p.shots)]
    return _table(3, records, metric, build, ["model"], ["task", "tier", "language", "shots"], order, paper,
                  match, paper_models, pcol, merge_shots=True)


def table4(records, *, metric="bleu", shots: int | None = None, paper=True, match=None, paper_models=None,
           languages=P.FIVE_LANGUAGES) -> pd.DataFrame:
    """BLEU averaged over the directions out of ('from') and into ('to') each language, ± the population
    std across the other languages; Avg pools every direction."""
    rec_all = load_records(records)
    flores = rec_all[(rec_all.task == "flores") & (rec_all.metric == metric)]
    if shots is None:
        present = sorted(flores.shots.unique())
        if len(present) > 1:
            raise ValueError(f"FLORES records have shots {present}; pass shots= to choose one for Table 4")
        shots = present[0] if present else 0
    order = [(l,) for l in languages] + [("Avg",)]

    def build(rec):
        rec = rec[(rec.task == "flores") & (rec.shots == shots) & rec.language.str.contains("-")].copy()
        if rec.empty:
            return _long(rec, ["direction", "model"], None)
        pair = rec.language.str.split("-", expand=True)
        rec = rec[pair[0].isin(languages) & pair[1].isin(languages)]
        pair = pair.loc[rec.index]
        parts = []
        for direction, side in (("from", 0), ("to", 1)):
            d = rec.assign(direction=direction, lang=pair[side])
            parts.append(_reduce(d, ["direction", "model"], ["lang"], lambda r: [(l,) for l in r.lang],
                                 len(languages) - 1, spread=True))
            parts.append(_reduce(d, ["direction", "model"], [], ("Avg",), len(languages) * (len(languages) - 1),
                                 spread=True))
        return pd.concat(parts)

    pcol = lambda p: [("Avg",) if l == "avg" else (l,) for l in p.language]
    return _table(4, rec_all, metric, build, ["direction", "model"], ["language"], order, paper, match,
                  paper_models, pcol)


def table5(records, *, metric="acc", paper=True, match=None, paper_models=None, n: int = 5,
           tasks=("xnli", "xcopa"), languages=P.FIVE_LANGUAGES, shots=(0, 5)) -> pd.DataFrame:
    """Per language, the mean over XNLI/XCOPA x 0/5-shot, and Avg (Tables 5 and 6 share this layout)."""
    tier = lambda l: P.TIERS["xnli"].get(l, "other")
    order = [(tier(l), l) for l in languages] + [("Avg", "")]

    def build(rec):
        rec = _select(rec, tasks, languages, shots)
        per = _reduce(rec, ["model"], ["language"], lambda r: [(tier(l), l) for l in r.language],
                      len(tasks) * len(shots))
        return pd.concat([per, _reduce(rec, ["model"], [], ("Avg", ""), len(order[:-1]) * len(tasks) * len(shots))])

    pcol = lambda p: [("Avg", "") if l == "avg" else (tier(l), l) for l in p.language]
    return _table(n, records, metric, build, ["model"], ["tier", "language"], order, paper, match,
                  paper_models, pcol)


def table6(records, **kw) -> pd.DataFrame:
    """Semantically aligned demonstrations: Table 5's layout against Table 6's numbers."""
    return table5(records, n=6, **kw)


def table7(records, *, metric="acc", paper=True, match=None, paper_models=None, tasks=ICL_TASKS,
           shots=(0, 5)) -> pd.DataFrame:
    """Per task and shots: mean over the task's languages ± population std across them; Avg pools all."""
    order = [(t, str(s)) for t in tasks for s in shots] + [("Avg", "")]

    def build(rec):
        rec = _select(rec, tasks, None, shots)
        per = _reduce(rec, ["model"], ["task", "shots"], lambda r: _cols(r, "task", "shots"), 1, spread=True)
        return pd.concat([per, _reduce(rec, ["model"], [], ("Avg", ""), 1, spread=True)])

    pcol = lambda p: [("Avg", "") if t == "avg" else (t, str(s)) for t, s in zip(p.task, p.shots)]
    return _table(7, records, metric, build, ["model"], ["task", "shots"], order, paper, match,
                  paper_models, pcol)


def table8(records, *, metric="acc", paper=True, match=None, paper_models=None, tasks=ICL_TASKS,
           languages=("en", "zh"), shots=(0, 3, 5)) -> pd.DataFrame:
    """Ablation: per shots, the mean over 5 tasks x EN/ZH, ± std over seeds."""
    order = [(str(s),) for s in shots]

    def build(rec):
        rec = _select(rec, tasks, languages, shots)
        return _reduce(rec, ["model"], ["shots"], lambda r: [(str(s),) for s in r.shots], len(tasks) * len(languages))

    pcol = lambda p: [(str(s),) for s in p.shots]
    return _table(8, records, metric, build, ["model"], ["shots"], order, paper, match, paper_models, pcol,
                  digits=2)


def per_language(records, task: str, *, metric="acc", paper=True, match=None, paper_models=None,
                 languages: Sequence[str] | None = None, shots=(0, 5)) -> pd.DataFrame:
    """Tables 9-13: one task, rows (model, shots), columns grouped by resource tier, and Avg."""
    if task not in P.PER_LANGUAGE_TABLE:
        raise ValueError(f"task={task!r} has no per-language table; use one of {', '.join(P.PER_LANGUAGE_TABLE)}")
    tiers = P.TIERS[task]
    languages = list(languages or tiers)
    rank = {t: i for i, t in enumerate(P.TIER_ORDER + ("other",))}
    order = sorted([(tiers.get(l, "other"), l) for l in languages], key=lambda c: rank[c[0]]) + [("Avg", "")]

    def build(rec):
        rec = _select(rec, [task], languages, shots)
        cells = _long(rec, ["model", "shots"], lambda d: [(tiers.get(l, "other"), l) for l in d.language])
        return pd.concat([cells, _reduce(rec, ["model", "shots"], [], ("Avg", ""), len(languages))])

    # the printed Avg covers all of the paper's languages: for a subset, the paper's Avg is recomputed
    subset = set(languages) < set(tiers)
    pcol = lambda p: [(None if subset else ("Avg", "")) if l == "avg" else (tiers.get(l, "other"), l)
                      for l in p.language]
    return _table(P.PER_LANGUAGE_TABLE[task], records, metric, build, ["model", "shots"], ["tier", "language"],
                  order, paper, match, paper_models, pcol)


def table9(records, **kw):
    return per_language(records, "xnli", **kw)


def table10(records, **kw):
    return per_language(records, "pawsx", **kw)


def table11(records, **kw):
    return per_language(records, "xcopa", **kw)


def table12(records, **kw):
    return per_language(records, "xstorycloze", **kw)


def table13(records, **kw):
    return per_language(records, "xwinograd", **kw)


BUILDERS = {1: table1, 2: table2, 3: table3, 4: table4, 5: table5, 6: table6, 7: table7, 8: table8,
            9: table9, 10: table10, 11: table11, 12: table12, 13: table13}


def paired_table(records, reference: str = "vanilla", *, metric="acc", tasks=ICL_TASKS, languages=("en", "zh"),
                 shots=(0,)) -> pd.DataFrame:
    """Each aligned model's difference from the `reference` label of its arch, per task/language/shots cell and
    on their average, with the paired 95% bootstrap interval over the same items
    (intervals.paired_difference): "+2.5 [-1.0, 6.1]". Rows: model; a 0-shot cell counts once (its score
    does not depend on the eval seed). Cells without per-item outcomes (records from before they were kept)
    are left out; `n cells` says how many entered the average."""
    rec = _select(records[records["metric"] == metric], tasks, languages, shots)
    if "correct" not in rec:
        return pd.DataFrame()
    rec = rec[rec["correct"].apply(lambda x: isinstance(x, str) and len(x) > 0)]
    rec = rec.assign(seed=rec["seed"].where(rec["shots"] > 0, 0)).drop_duplicates(
        ["model", "train_seed", "task", "language", "shots", "seed"])
    key = ["task", "language", "shots", "seed"]
    order = [(t, l, s) for t in tasks for l in languages for s in shots]
    rows = []
    for arch, d in rec.groupby("arch", sort=False):
        ref = d[d["label"] == reference].set_index(key)["correct"]
        for model, m in d[d["label"] != reference].groupby("model", sort=False):
            pairs = {}
            for r in m.itertuples():
                k = (r.task, r.language, r.shots, r.seed)
                if k in ref.index:
                    pairs.setdefault(k[:3], []).append((r.correct, ref[k]))
            row = {"model": model}
            for cell in order:
                if cell in pairs:
                    row[f"{cell[0]} {cell[1]} {cell[2]}-shot"] = _signed(I.paired_difference(pairs[cell]))
            every = [p for cell in order for p in pairs.get(cell, [])]
            if every:
                row["Avg"] = _signed(I.paired_difference(every))
                row["n cells"] = len(every)
            rows.append(row)
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def _signed(iv: tuple[float, float, float]) -> str:
    est, lo, hi = iv
    return f"{est:+.1f} [{lo:+.1f}, {hi:+.1f}]"
