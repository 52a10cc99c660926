"""What a notebook prints and DVC tracks, computed from records and probe rows: the findings table (one row
per method, mean and standard error over training seeds, 95% intervals), the sentences that state the
paper's comparisons with our numbers, the "5 datasets" average, and the headline metrics file."""
from __future__ import annotations

ORDER = ["vanilla", "BPre", "BIT", "CIT", "MCL", "AFP"]


def _mean_se(df, by: str, col: str):
    import pandas as pd
    g = df.groupby(by)[col]
    n = g.count()
    se = g.std(ddof=1) / n.pow(0.5)
    return pd.DataFrame({col: g.mean(), f"{col} se": se.fillna(0.0)})


def findings_table(probes, ppl, answers):
    """One row per method: retrieval/alignment/uniformity, perplexity per language, answer language; mean
    and standard error over training seeds, and for retrieval the 95% interval (`… lo`, `… hi`) over
    training seeds and pairs (afp_lib.analysis.intervals)."""
    import numpy as np
    import pandas as pd

    from .intervals import interval
    parts = [_mean_se(probes, "label", c) for c in probes.columns
             if c in ("retrieval", "align", "uniform", "dev retrieval", "dev align", "dev uniform")]
    for col in ("retrieval", "dev retrieval"):
        if f"{col} items" in probes.columns:
            # a vanilla model has one Tatoeba probe but a dev probe per findings seed: rows without items skip
            seeds = {lab: [[x] for x in d[f"{col} items"] if isinstance(x, np.ndarray) and x.size]
                     for lab, d in probes.groupby("label")}
            ivs = {lab: interval(s, scale=100.0) for lab, s in seeds.items() if s}
            parts.append(pd.DataFrame({f"{col} lo": {k: v[1] for k, v in ivs.items()},
                                       f"{col} hi": {k: v[2] for k, v in ivs.items()}}))
    for lang, d in ppl.groupby("language"):
        parts.append(_mean_se(d.rename(columns={"perplexity": f"ppl {lang}"}), "label", f"ppl {lang}"))
    for direction, d in answers.groupby("direction"):
        col = f"answers in {direction.split('->')[1]} (%)"
        parts.append(_mean_se(d.rename(columns={"answered": f"answered {direction} (%)"}), "label",
                              f"answered {direction} (%)"))
        parts.append(_mean_se(d.rename(columns={"target_script_share": col}), "label", col))
    out = pd.concat(parts, axis=1)
    out["n seeds"] = probes.groupby("label")["retrieval"].count()
    return out.reindex([x for x in ORDER if x in out.index] + [x for x in out.index if x not in ORDER])


def findings_views(f) -> dict[str, "pd.DataFrame"]:
    """The findings table as two frames of strings that fit a notebook column (the CSV keeps every column):
    the representation probes (retrieval with its 95% interval, alignment, uniformity, on the dev pairs and on
    Tatoeba) and the language-model side (perplexity, answer language), each as mean ± se where no interval."""
    import math

    import pandas as pd

    def cell(label, col, digits):
        if col not in f.columns or math.isnan(f.loc[label, col]):
            return "–"
        if col + " lo" in f.columns:
            return f"{f.loc[label, col]:.{digits}f} [{f.loc[label, col + ' lo']:.{digits}f}, {f.loc[label, col + ' hi']:.{digits}f}]"
        se = f.loc[label, col + " se"] if col + " se" in f.columns else float("nan")
        return f"{f.loc[label, col]:.{digits}f}" + ("" if math.isnan(se) else f" ± {se:.{digits}f}")

    views = {
        "representations (lower align/uniform is better)": [
            ("dev retrieval", "dev retrieval (%)", 1), ("dev align", "dev align", 3), ("dev uniform", "dev uniform", 3),
            ("retrieval", "Tatoeba retrieval (%)", 1), ("align", "Tatoeba align", 3), ("uniform", "Tatoeba uniform", 3)],
        "language model and answer language": [
            ("ppl en", "ppl en", 1), ("ppl zh", "ppl zh", 1), ("answered en->zh (%)", "answered en→zh (%)", 0),
            ("answers in zh (%)", "in zh (%)", 0), ("answered zh->en (%)", "answered zh→en (%)", 0),
            ("answers in en (%)", "in en (%)", 0), ("n seeds", "seeds", 0)]}
    out = {}
    for name, cols in views.items():
        cols = [c for c in cols if c[0] in f.columns]
        if cols:
            out[name] = pd.DataFrame({head: [cell(lab, col, d) if col != "n seeds" else f"{f.loc[lab, col]:.0f}"
                                             for lab in f.index] for col, head, d in cols}, index=f.index)
    return out


def describe_findings(f) -> str:
    """Sentences that state the comparisons the paper makes, with our numbers: retrieval as mean [95%
    interval over training seeds and pairs], the rest as mean ± standard error over training seeds. A word
    of order ("above") only where the two intervals exclude each other, else "indistinguishable from"."""
    import math

    from .intervals import compare, has_seed_spread

    def has(label, col):
        return label in f.index and col in f.columns and not math.isnan(f.loc[label, col])

    def iv(label, col):
        return (f.loc[label, col], f.loc[label, col + " lo"], f.loc[label, col + " hi"])

    def val(label, col, digits=1):
        if not has(label, col):
            return "n/a"
        if col + " lo" in f.columns:
            m, lo, hi = iv(label, col)
            return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
        return f"{f.loc[label, col]:.{digits}f} ± {f.loc[label, col + ' se']:.{digits}f}"

    def above(a, b, col):
        if not (has(a, col) and has(b, col)) or col + " lo" not in f.columns:
            return "not measured"
        return f"{a} is {compare(iv(a, col), iv(b, col))} {b}"

    def spread(label):
        return has_seed_spread(f, label)   # the scorecard's rule: a trained method needs two training seeds

    def se_iv(label, col):
        """mean ± 1.96 standard errors over training seeds (align/uniform have no bootstrap interval)."""
        m, se = f.loc[label, col], f.loc[label, col + " se"] if col + " se" in f.columns else 0.0
        return (m, m - 1.96 * se, m + 1.96 * se)

    def uniformity(col, where):
        """Each aligned method's uniformity against the vanilla model's, in words computed from the numbers:
        "improves"/"worsens" only where the mean ± 1.96 se intervals exclude each other, and "as in the paper's
        Fig. 3c" only where AFP's improves on these pairs (`where`)."""
        if not has("vanilla", col):
            return ""
        moved = [(lab, f.loc[lab, col] - f.loc["vanilla", col], compare(se_iv(lab, col), se_iv("vanilla", col),
                                                                        lower_better=True))
                 for lab in ("MCL", "AFP") if has(lab, col)]
        if not moved:
            return ""
        if not all(spread(lab) for lab, _, _ in moved):  # the scorecard's rule: a standard error needs 2 seeds
            words = ", ".join(f"{lab} moves it by {d:+.2f}" for lab, d, _ in moved)
            return (f" **Uniformity** (lower is better): vanilla {f.loc['vanilla', col]:.2f}; {words}; one training "
                    f"seed, so no spread to test the paper's Fig. 3c on {where}.")
        verb = {"better than": "improves", "worse than": "worsens", "indistinguishable from": "does not move"}
        words = ", ".join(f"{lab} {verb[c]} it ({d:+.2f})" for lab, d, c in moved)
        afp = next((c for lab, _, c in moved if lab == "AFP"), None)
        worse = [lab for lab, _, c in moved if c == "worse than"]
        note = (f": {' and '.join(worse)} crowd{'s' if len(worse) == 1 else ''} the sentences together on {where}, "
                "the opposite of the paper's Fig. 3c, where AFP lowers both alignment and uniformity") if worse else \
            f", as in the paper's Fig. 3c (on {where})" if afp == "better than" else \
            f"; the paper's Fig. 3c (AFP lowers uniformity) is not shown on {where}"
        return f" **Uniformity** (lower is better; mean ± se over seeds): vanilla {val('vanilla', col, 2)}; {words}{note}."

    def ppl_word(col):
        """MCL's perplexity against vanilla's: a verb only where mean ± 1.96 se intervals exclude each other."""
        if not spread("MCL"):
            return "changes it (one training seed: no spread to test)"
        c = compare(se_iv("MCL", col), se_iv("vanilla", col))
        return {"above": "raises", "below": "lowers", "indistinguishable from": "does not measurably change"}[c] + " it"

    def times_vanilla(col):
        if not (has("AFP", col) and has("vanilla", col)) or f.loc["vanilla", col] <= 0:
            return ""
        return f" (AFP/vanilla = {f.loc['AFP', col] / f.loc['vanilla', col]:.1f}x)"

    baselines = [lab for lab in ("BPre", "CIT") if lab in f.index]
    lines = [] if "dev retrieval" not in f.columns else [
        f"- **In-domain held-out pairs** (the trainer's dev pairs): retrieval (%, 95% interval) AFP "
        f"{val('AFP', 'dev retrieval')}, "
        + "".join(f"{lab} {val(lab, 'dev retrieval')}, " for lab in (*baselines, "MCL") if lab in f.index)
        + f"vanilla {val('vanilla', 'dev retrieval')}: "
        + "".join(f"{above('AFP', lab, 'dev retrieval')}; " for lab in baselines)
        + f"{above('AFP', 'vanilla', 'dev retrieval')}{times_vanilla('dev retrieval')}; alignment AFP "
        f"{val('AFP', 'dev align', 3)}, CIT {val('CIT', 'dev align', 3)}, vanilla {val('vanilla', 'dev align', 3)}."
        f"{uniformity('dev uniform', 'the dev pairs')}",
    ]
    lines += [
        f"- **Bitext retrieval EN–ZH, Tatoeba** (out of domain, %, 95% interval): AFP {val('AFP', 'retrieval')}, "
        f"CIT {val('CIT', 'retrieval')}, MCL {val('MCL', 'retrieval')}, vanilla {val('vanilla', 'retrieval')}: "
        f"{above('AFP', 'CIT', 'retrieval')}; {above('AFP', 'vanilla', 'retrieval')}.",
        f"- **Alignment** (Tatoeba, lower is better): AFP {val('AFP', 'align', 3)}, CIT {val('CIT', 'align', 3)}, "
        f"vanilla {val('vanilla', 'align', 3)}.{uniformity('uniform', 'Tatoeba')}",
    ]
    for lang in ("en", "zh"):
        col = f"ppl {lang}"
        if col in f.columns:
            lines.append(f"- **Held-out perplexity ({lang})**: vanilla {val('vanilla', col)}, MCL only {val('MCL', col)}, "
                         f"CIT {val('CIT', col)}, AFP {val('AFP', col)}: MCL alone "
                         f"{ppl_word(col)}"
                         + (f"; AFP's cost {100 * (f.loc['AFP', col] / f.loc['vanilla', col] - 1):+.0f}%."
                            if has("AFP", col) else ".")
                         if "MCL" in f.index and "vanilla" in f.index else f"- perplexity ({lang}): {val('AFP', col)}")
    for direction, name in (("en->zh", "Chinese"), ("zh->en", "English")):
        answered, share = f"answered {direction} (%)", f"answers in {direction.split('->')[1]} (%)"
        if answered not in f.columns:
            continue
        parts = [f"{lab} answers {val(lab, answered, 0)}%, of which {val(lab, share, 0)}% in {name}"
                 if has(lab, share) else f"{lab} answers {val(lab, answered, 0)}% (no answer to score)"
                 for lab in ("vanilla", "CIT", "MCL", "AFP") if lab in f.index]
        lines.append(f"- **Answer language, {direction.upper().replace('->', '→')}** (`Answer in {name}:` after a "
                     f"held-out sentence; an answer without letters counts as no answer): " + "; ".join(parts) + ".")
    return "\n".join(lines)


def _part_key(part: str):
    return (0, 0) if part == "(none)" else (1, 0) if part == "embeddings" else (2, int(part.split()[1]))


def restored_table(restored, ppl):
    """Held-out perplexity of each aligned method (a row per method and language) as trained ("(none)") and with one
    part put back from the vanilla model (columns; rows of `probes.restored_perplexity`), and the vanilla
    model's own ("vanilla", from the `ppl` rows); means over the training seeds probed."""
    t = restored.pivot_table(index=["label", "language"], columns="restored", values="perplexity", aggfunc="mean")
    t = t[sorted(t.columns, key=_part_key)]
    van = ppl[ppl["label"] == "vanilla"].groupby("language")["perplexity"].mean()
    t["vanilla"] = [van.get(lang, float("nan")) for _, lang in t.index]
    t.columns.name = None
    labels = [x for x in ORDER if x in t.index.get_level_values(0)]
    t = t.reindex(sorted(t.index, key=lambda i: (labels.index(i[0]) if i[0] in labels else len(labels), i[1])))
    return t.reset_index().set_index("label")   # one plain index (the method), as `save_frame` writes


def describe_restored(t) -> str:
    """One sentence per method and language: the perplexity as trained, the vanilla model's, and the share of
    the difference that putting back each part recovers (100% = back to vanilla), largest first."""
    lines = []
    for label, row in t.iterrows():
        lang, own, van = row["language"], row["(none)"], row["vanilla"]
        if not own > van:
            lines.append(f"- **{label}, {lang}**: {own:.0f} as trained, vanilla {van:.0f}: no cost to locate.")
            continue
        parts = sorted(((p, row[p]) for p in t.columns if p not in ("language", "(none)", "vanilla")), key=lambda x: x[1])
        words = ", ".join(f"{p} {x:.0f} ({100 * (own - x) / (own - van):.0f}%)" for p, x in parts)
        lines.append(f"- **{label}, {lang}**: {own:.0f} as trained, vanilla {van:.0f}; with the vanilla model's "
                     f"part put back (share of the cost recovered): {words}.")
    return "\n".join(lines)


def five_task_scores(records, by=("model",)):
    """The paper's "average over the 5 EN-ZH datasets" per (by..., training seed, eval seed)."""
    from .records import seed_scores
    icl = records[records["task"] != "flores"]
    return seed_scores(icl, by=(*by, "train_seed"), tasks=sorted(icl["task"].unique()),
                       languages=("en", "zh"), shots=tuple(sorted(icl["shots"].unique())))


def headline(records, findings=None) -> dict:
    """Metrics for DVC: mean ICL accuracy per model and shot count, BLEU per model, probe results."""
    icl = records[(records["task"] != "flores") & (records["metric"] == "acc")]
    out = {"icl_accuracy": {f"{m} {s}-shot": round(float(v), 3)
                            for (m, s), v in icl.groupby(["model", "shots"])["value"].mean().items()}}
    bleu = records[(records["task"] == "flores") & (records["metric"] == "bleu")]
    if len(bleu):
        out["bleu"] = {m: round(float(v), 3) for m, v in bleu.groupby("model")["value"].mean().items()}
    if findings is not None:
        out["probes"] = {lab: {k: None if v != v else round(float(v), 4) for k, v in row.items()}  # NaN: not measured
                         for lab, row in findings.iterrows()}
    return out
