"""Which of the paper's claims hold in this profile's results, by a stated rule on 95% intervals.

Each claim is data (CLAIMS below): its id, section, the paper's statement, the result file of the section
that tests it, the two things compared (`a`, `b`: selectors on that file's rows), the claimed side of the
difference a - b (">" or "<") and, for accuracies, the cells averaged. `section_scorecard(section, folder)`
measures every claim of a section from the files a notebook wrote there; `gather(profile)` writes the one
table of every section, results/<profile>/scorecard.md. The rules (docs/scorecard.md):

  measured      the difference a - b and its 95% interval:
                  icl    accuracy from records.csv: per model the mean over training seeds of the mean over
                         the cells (eval seeds averaged first); a and b are bootstrapped independently
                         (training seeds, then items; afp_lib.analysis.intervals) and the interval is the
                         percentile interval of the difference of their replicates (disjoint samples)
                  gap    icl of language x minus language y per model, then a's gap minus b's
                  probe  a column of findings.csv: [lo_a - hi_b, hi_a - lo_b] from each row's interval
                         (`… lo`/`… hi`; else mean ± 1.96 se over seeds); it excludes 0 exactly when the two
                         intervals exclude each other. Without a bootstrap interval, a trained method with
                         one training seed has no spread: not testable
                  table  a cell of a table CSV (BLEU; Table 6, whose semantic runs are not in records.csv):
                         as probe, from ci_low/ci_high
  verdict       not testable  every score compared shows no skill: its interval does not clear both uniform
                              chance and the majority-class rate of its items (accuracies; intervals.no_skill),
                              or reaches below 1 BLEU (BLEU_FLOOR)
                holds         the interval of the difference lies wholly on the claimed side of 0
                does not hold otherwise (it contains 0, or lies on the other side)
                not measured  the profile has no row the claim selects (e.g. smoke evaluates fewer tasks)"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .. import atomic, paths
from ..paths import NOTEBOOKS, SECTIONS
from . import intervals as I

HOLDS, FAILS, UNTESTABLE, UNMEASURED = "holds", "does not hold", "not testable at this scale", "not measured"
VERDICTS = (HOLDS, FAILS, UNTESTABLE, UNMEASURED)
ICL = ("xnli", "pawsx", "xcopa", "xstorycloze", "xwinograd")
BLEU_FLOOR = 1.0   # a BLEU interval reaching below this shows no skill: smoothed scores of a few matched n-grams

# id, section, the paper's claim, the measure and its inputs. `a`/`b` select rows by column value (records:
# label, arch, demos; findings: the row label; tables: the model's label, the part after "+", or "vanilla").
CLAIMS: list[dict] = [
    # §3.2 bilingual (notebook 01)
    dict(id="T1-avg", section="bilingual", measure="icl", source="records.csv", a={"label": "AFP"},
         b={"label": "vanilla"}, cells={"task": ICL, "language": ("en", "zh")}, side=">",
         claim="Table 1: AFP improves EN/ZH in-context learning on the five datasets (+3.31 points on average)"),
    dict(id="T1-nli", section="bilingual", measure="icl", source="records.csv", a={"label": "AFP"},
         b={"label": "vanilla"}, cells={"task": ("xnli", "pawsx"), "language": ("en", "zh")}, side=">",
         claim="Table 1: the gain is largest on XNLI and PAWS-X (+4.28)"),
    dict(id="F1c", section="bilingual", measure="gap", source="records.csv", a={"label": "AFP"},
         b={"label": "vanilla"}, cells={"task": ("xnli",), "shots": (0,)}, languages=("en", "zh"), side="<",
         claim="Fig. 1c: AFP narrows the EN-ZH gap on XNLI 0-shot (relative gap -6.53% for XGLM-564M)"),
    dict(id="T2", section="bilingual", measure="table", source="table2.csv", a={"label": "AFP"},
         b={"label": "vanilla"}, cells={"direction": "Avg", "shots": 0}, side=">",
         claim="Table 2: AFP raises FLORES EN↔ZH BLEU (0-shot average 0.1 → 4.2)"),
    dict(id="MCL-dev", section="bilingual", measure="probe", source="findings.csv", a="AFP", b="vanilla",
         column="dev retrieval", side=">",
         claim="§2.1: MCL aligns the representations of translations (retrieval, in-domain dev pairs)"),
    dict(id="MCL-tatoeba", section="bilingual", measure="probe", source="findings.csv", a="AFP", b="vanilla",
         column="retrieval", side=">",
         claim="§2.1: MCL aligns the representations of translations (retrieval, Tatoeba, out of domain)"),
    dict(id="F3c-align-dev", section="bilingual", measure="probe", source="findings.csv", a="AFP", b="vanilla",
         column="dev align", side="<", claim="Fig. 3c: AFP lowers the alignment loss (dev pairs)"),
    dict(id="F3c-uniform-dev", section="bilingual", measure="probe", source="findings.csv", a="AFP",
         b="vanilla", column="dev uniform", side="<", claim="Fig. 3c: AFP lowers the uniformity loss (dev pairs)"),
    dict(id="F3c-align-tatoeba", section="bilingual", measure="probe", source="findings.csv", a="AFP",
         b="vanilla", column="align", side="<", claim="Fig. 3c: AFP lowers the alignment loss (Tatoeba)"),
    dict(id="F3c-uniform-tatoeba", section="bilingual", measure="probe", source="findings.csv", a="AFP",
         b="vanilla", column="uniform", side="<", claim="Fig. 3c: AFP lowers the uniformity loss (Tatoeba)"),
    dict(id="MCL-vs-CIT", section="bilingual", measure="probe", source="findings.csv", a="MCL", b="CIT",
         column="dev retrieval", side=">",
         claim="§2: MCL, not CIT, is what aligns the representations (dev retrieval, MCL above CIT)"),
    # §3.2.2 which layer (notebook 02)
    dict(id="F4a-0", section="mcl_layer", measure="icl", source="records.csv", a={"label": "layer 1"},
         b={"label": "layer 0"}, cells={"task": ICL}, side=">",
         claim="Fig. 4a: MCL on the first block is best (layer 1 above layer 0)"),
    dict(id="F4a-2", section="mcl_layer", measure="icl", source="records.csv", a={"label": "layer 1"},
         b={"label": "layer 2"}, cells={"task": ICL}, side=">",
         claim="Fig. 4a: MCL on the first block is best (layer 1 above layer 2)"),
    # §3.2.3 p_src (notebook 03)
    dict(id="F4b-0.5", section="p_src", measure="icl", source="records.csv", a={"label": "p_src 0.5"},
         b={"label": "p_src 1.0"}, cells={"task": ICL}, side=">",
         claim="Fig. 4b: monolingual instruction tuning (p_src = 1) is inferior to cross-lingual (p_src = 0.5)"),
    dict(id="F4b-0", section="p_src", measure="icl", source="records.csv", a={"label": "p_src 0.0"},
         b={"label": "p_src 1.0"}, cells={"task": ICL}, side=">",
         claim="Fig. 4b: monolingual instruction tuning (p_src = 1) is inferior to cross-lingual (p_src = 0)"),
    # §3.3 multilingual (notebook 04)
    dict(id="T3-avg", section="multilingual", measure="icl", source="records.csv", a={"label": "bridge"},
         b={"label": "vanilla"}, cells={"task": ("xnli", "xcopa"), "demos": "random"}, side=">",
         claim="Table 3: aligning five languages improves XNLI and XCOPA"),
    dict(id="T3-sw", section="multilingual", measure="icl", source="records.csv", a={"label": "bridge"},
         b={"label": "vanilla"}, cells={"task": ("xnli", "xcopa"), "language": ("sw",), "demos": "random"},
         side=">", claim="Table 3: ... down to low-resource Swahili"),
    dict(id="T4", section="multilingual", measure="table", source="table4.csv", a={"label": "bridge"},
         b={"label": "vanilla"}, cells={"direction": "from", "language": "Avg"}, side=">",
         claim="Table 4: translation among the five languages gains BLEU after alignment (+0.75)"),
    dict(id="T5-sw", section="multilingual", measure="icl", source="records.csv", a={"label": "pairwise"},
         b={"label": "bridge"}, cells={"task": ("xnli", "xcopa"), "language": ("sw",), "demos": "random"},
         side=">", claim="Table 5: pairwise alignment is better than English as the bridge on Swahili"),
    dict(id="T5-avg", section="multilingual", measure="icl", source="records.csv", a={"label": "bridge"},
         b={"label": "pairwise"}, cells={"task": ("xnli", "xcopa"), "demos": "random"}, side=">",
         claim="Table 5: English as the bridge gives the larger average improvement"),
    dict(id="T6", section="multilingual", measure="table", source="table6.csv",
         a={"label": "bridge w/ semantic demos"}, b={"label": "bridge"}, cells={"tier": "Avg"}, side=">",
         claim="Table 6: semantically aligned demonstrations add to the aligned model (+0.4)"),
    # §3.4 all languages (notebook 05)
    dict(id="T7", section="all_languages", measure="icl", source="records.csv", a={"label": "AFP"},
         b={"label": "vanilla"}, cells={"task": ICL}, side=">",
         claim="Table 7: aligning every language improves the five tasks (+2.6 points on average)"),
    # §3.5 ablation (notebook 06)
    dict(id="T8-MCL", section="ablation", measure="icl", source="records.csv", a={"label": "w/ MCL"},
         b={"label": "vanilla"}, cells={"task": ICL, "language": ("en", "zh")}, side="<",
         claim="Table 8: MCL alone lowers in-context learning"),
    dict(id="T8-CLM", section="ablation", measure="icl", source="records.csv", a={"label": "w/ CLM"},
         b={"label": "vanilla"}, cells={"task": ICL, "language": ("en", "zh")}, side=">",
         claim="Table 8: CLM on the pairs improves it (+1.1)"),
    dict(id="T8-CIT", section="ablation", measure="icl", source="records.csv", a={"label": "w/ CIT"},
         b={"label": "vanilla"}, cells={"task": ICL, "language": ("en", "zh")}, side=">",
         claim="Table 8: CIT improves it (+2.0)"),
    dict(id="T8-CIT>CLM", section="ablation", measure="icl", source="records.csv", a={"label": "w/ CIT"},
         b={"label": "w/ CLM"}, cells={"task": ICL, "language": ("en", "zh")}, side=">",
         claim="Table 8: CIT improves it more than CLM"),
    dict(id="T8-AFP", section="ablation", measure="icl", source="records.csv", a={"label": "w/ AFP"},
         b={"label": "w/ CIT"}, cells={"task": ICL, "language": ("en", "zh")}, side=">",
         claim="Table 8: MCL + CIT (AFP) improves it most (above CIT alone)"),
    # Appendix B.1-B.2 (notebook 07)
    dict(id="F5a-last", section="appendix", measure="icl", source="records.csv", a={"label": "pooling last"},
         b={"label": "pooling max"}, cells={"task": ICL}, side=">",
         claim="Fig. 5a: last-token pooling does better than max pooling"),
    # mean_skip_bos: the mean without the BOS, mini's pooling on Gemma (docs/budgets-real.md); a section sweeps one
    dict(id="F5a-mean", section="appendix", measure="icl", source="records.csv",
         a={"label": ["pooling mean", "pooling mean_skip_bos"]},
         b={"label": "pooling max"}, cells={"task": ICL}, side=">",
         claim="Fig. 5a: mean pooling does better than max pooling"),
    dict(id="F5b-1", section="appendix", measure="icl", source="records.csv", a={"label": "alpha 1.5"},
         b={"label": "alpha 1.0"}, cells={"task": ICL}, side=">",
         claim="Fig. 5b: alpha = 1.5 does better than alpha = 1"),
    dict(id="F5b-2", section="appendix", measure="icl", source="records.csv", a={"label": "alpha 1.5"},
         b={"label": "alpha 2.0"}, cells={"task": ICL}, side=">",
         claim="Fig. 5b: alpha = 1.5 does better than alpha = 2"),
]
KEYS = {"id", "section", "measure", "source", "a", "b", "side", "claim", "cells", "column", "languages"}


def check_claims(claims: Sequence[Mapping] = CLAIMS) -> None:
    """Every claim names a known section, measure, side and only known keys; ids are unique."""
    seen = set()
    for i, c in enumerate(claims):
        where = f"scorecard claim {i} ({c.get('id', '?')})"
        unknown = set(c) - KEYS
        if unknown or not {"id", "section", "measure", "source", "a", "b", "side", "claim"} <= set(c):
            raise ValueError(f"{where}: unknown keys {sorted(unknown)} or a missing one of id/section/measure/"
                             "source/a/b/side/claim")
        if c["section"] not in SECTIONS or c["measure"] not in MEASURES or c["side"] not in (">", "<"):
            raise ValueError(f"{where}: section {c['section']!r}, measure {c['measure']!r} or side {c['side']!r} "
                             f"unknown (sections {SECTIONS}, measures {sorted(MEASURES)}, side > or <)")
        if c["id"] in seen:
            raise ValueError(f"{where}: duplicate id")
        seen.add(c["id"])


# --- the verdict rule ------------------------------------------------------------------------------------
def verdict(diff: tuple[float, float, float] | None, side: str, no_skill: Sequence[bool] = ()) -> str:
    """The verdict of a claim from the (estimate, low, high) of a - b, the claimed side, and whether each score
    compared shows no skill (module docstring): not testable when all do, holds when the interval of the
    difference lies wholly on the claimed side of 0, else does not hold; not measured without a difference."""
    if diff is None or any(x is None or (isinstance(x, float) and math.isnan(x)) for x in diff):
        return UNMEASURED
    if no_skill and all(no_skill):
        return UNTESTABLE
    _, lo, hi = diff
    return HOLDS if (lo > 0 if side == ">" else hi < 0) else FAILS


def disjoint_difference(a: tuple[float, float, float], b: tuple[float, float, float]) -> tuple[float, float, float]:
    """(a - b, lo_a - hi_b, hi_a - lo_b): excludes 0 exactly when the two intervals exclude each other."""
    return a[0] - b[0], a[1] - b[2], a[2] - b[1]


# --- measures ----------------------------------------------------------------------------------------------
def _select(df: pd.DataFrame, sel: Mapping) -> pd.DataFrame:
    q = pd.Series(True, index=df.index)
    for col, want in sel.items():
        if col not in df:
            return df.iloc[:0]
        want = want if isinstance(want, (list, tuple)) else (want,)
        q &= df[col].astype(str).isin([str(w) for w in want])
    return df[q]


def _score(d: pd.DataFrame, n_boot: int, seed: int) -> dict | None:
    """Mean over training seeds of the mean over (task, language, shots) cells, its bootstrap replicates, and
    the same mean at uniform chance and at the majority-class rate."""
    if d.empty:
        return None
    d = d.assign(_ts=d["train_seed"] if "train_seed" in d else 0, _maj=I.majority_rates(d),
                 _chance=d["task"].map(I.CHANCE))
    cells = d.groupby(["_ts", "task", "language", "shots"])[["value", "n_items", "_maj", "_chance"]].mean().reset_index()
    seeds = [[I.bernoulli(v, int(n)) for v, n in zip(c["value"], c["n_items"])] for _, c in cells.groupby("_ts")]
    est = float(np.mean([np.mean([x.mean() for x in s]) for s in seeds])) * 100
    reps = I.replicates(seeds, n_boot, seed) * 100
    lo, hi = np.percentile(reps, [(100 - I.LEVEL) / 2, (100 + I.LEVEL) / 2])
    chance, majority = float(cells["_chance"].mean()), float(cells["_maj"].mean())
    return {"iv": (est, float(lo), float(hi)), "reps": reps, "chance": chance, "majority": majority,
            "no_skill": I.no_skill(float(lo), chance, majority)}


def _diff(a_est, b_est, reps) -> tuple[float, float, float]:
    lo, hi = np.percentile(reps, [(100 - I.LEVEL) / 2, (100 + I.LEVEL) / 2])
    return a_est - b_est, float(lo), float(hi)


def _fmt(iv, digits=1) -> str:
    return I.fmt(iv, digits)


def _refs(s: dict) -> str:
    return f"chance {s['chance']:.1f}" + ("" if math.isnan(s["majority"]) else f", majority {s['majority']:.1f}")


def measure_icl(claim, records: pd.DataFrame, n_boot: int = I.N_BOOT) -> list[dict]:
    """One row per architecture: a - b of the mean accuracy over the claim's cells."""
    rec = records[records["metric"] == "acc"]
    rec = _select(rec, claim.get("cells") or {})
    rows = []
    for arch in sorted(rec["arch"].unique()) if "arch" in rec else [None]:
        d = rec if arch is None else rec[rec["arch"] == arch]
        a, b = _score(_select(d, claim["a"]), n_boot, 1), _score(_select(d, claim["b"]), n_boot, 2)
        if a is None or b is None:
            continue
        diff = _diff(a["iv"][0], b["iv"][0], a["reps"] - b["reps"])
        rows.append({"arch": arch, "difference": diff, "no_skill": [a["no_skill"], b["no_skill"]],
                     "measured": f"{_fmt(diff)} points (a {_fmt(a['iv'])}, b {_fmt(b['iv'])}; {_refs(a)})"})
    return rows


def measure_gap(claim, records: pd.DataFrame, n_boot: int = I.N_BOOT) -> list[dict]:
    """One row per architecture: (x - y of a) - (x - y of b), x and y the claim's two languages."""
    x, y = claim["languages"]
    rec = _select(records[records["metric"] == "acc"], claim.get("cells") or {})
    rows = []
    for arch in sorted(rec["arch"].unique()):
        d = rec[rec["arch"] == arch]
        parts = {(who, lang): _score(_select(_select(d, claim[who]), {"language": lang}), n_boot, k)
                 for k, (who, lang) in enumerate([("a", x), ("a", y), ("b", x), ("b", y)], start=1)}
        if any(v is None for v in parts.values()):
            continue
        gap = {w: (parts[w, x]["iv"][0] - parts[w, y]["iv"][0], parts[w, x]["reps"] - parts[w, y]["reps"])
               for w in ("a", "b")}
        diff = _diff(gap["a"][0], gap["b"][0], gap["a"][1] - gap["b"][1])
        scores = "; ".join(f"{w} {x.upper()} {parts[w, x]['iv'][0]:.1f}, {y.upper()} {parts[w, y]['iv'][0]:.1f}"
                           for w in ("a", "b"))
        rows.append({"arch": arch, "difference": diff, "no_skill": [p["no_skill"] for p in parts.values()],
                     "measured": f"gap a - gap b {_fmt(diff)} points ({scores}; {_refs(parts['a', x])})"})
    return rows


def _interval(row: pd.Series, col: str) -> tuple[float, float, float]:
    m = float(row[col])
    if f"{col} lo" in row.index:
        return m, float(row[f"{col} lo"]), float(row[f"{col} hi"])
    se = float(row.get(f"{col} se", 0.0) or 0.0)
    return m, m - 1.96 * se, m + 1.96 * se


def measure_probe(claim, findings: pd.DataFrame, n_boot: int = I.N_BOOT) -> list[dict]:
    """a - b of a findings column, from each method's interval (disjoint rule)."""
    col, a, b = claim["column"], claim["a"], claim["b"]
    if col not in findings.columns or a not in findings.index or b not in findings.index:
        return []
    ia, ib = _interval(findings.loc[a], col), _interval(findings.loc[b], col)
    if any(math.isnan(v) for v in ia + ib):
        return []
    diff = disjoint_difference(ia, ib)
    how = "95% bootstrap interval" if f"{col} lo" in findings.columns else "mean ± 1.96 se over seeds"
    digits = 1 if "retrieval" in col else 3
    # mean ± 1.96 se is testable only where each trained method has two training seeds (I.has_seed_spread)
    no_spread = f"{col} lo" not in findings.columns and not all(I.has_seed_spread(findings, x) for x in (a, b))
    note = "; one training seed: no spread to test" if no_spread else ""
    return [{"arch": None, "difference": diff, "no_skill": [True] if no_spread else [],
             "measured": f"{_fmt(diff, digits)} ({a} {_fmt(ia, digits)}, {b} {_fmt(ib, digits)}; {how}{note})"}]


def model_label(model: str) -> str:
    """The label a table row's model name carries: 'xglm-mini+AFP' -> 'AFP', 'xglm-mini' -> 'vanilla'."""
    return model.split("+", 1)[1] if "+" in model else "vanilla"


def measure_table(claim, table: pd.DataFrame, n_boot: int = I.N_BOOT) -> list[dict]:
    """a - b of one cell of a table CSV (our rows), from each cell's interval (disjoint rule); no skill: an
    accuracy interval not clearing chance and the majority rate (the CSV's columns), a BLEU one below BLEU_FLOOR."""
    t = _select(table[table["block"] == "ours"], claim.get("cells") or {})
    t = t.assign(label=t["model"].map(model_label), arch=t["model"].str.split("-").str[0])
    rows = []
    for arch, d in t.groupby("arch", sort=True):
        a, b = _select(d, claim["a"]), _select(d, claim["b"])
        if len(a) != 1 or len(b) != 1 or a[["ci_low", "ci_high"]].isna().any(axis=None) or \
                b[["ci_low", "ci_high"]].isna().any(axis=None):
            continue
        ia, ib = (tuple(float(x.iloc[0][k]) for k in ("value", "ci_low", "ci_high")) for x in (a, b))
        diff = disjoint_difference(ia, ib)
        refs = [(float(x.iloc[0].get("chance", float("nan"))), float(x.iloc[0].get("majority", float("nan"))))
                for x in (a, b)]
        no_skill = [I.no_skill(iv[1], *ref) if ref[0] == ref[0] else iv[1] < BLEU_FLOOR   # accuracy, else BLEU
                    for iv, ref in zip((ia, ib), refs)]
        rows.append({"arch": arch, "difference": diff, "no_skill": no_skill,
                     "measured": f"{_fmt(diff)} (a {_fmt(ia)}, b {_fmt(ib)}; 95% bootstrap intervals)"})
    return rows


MEASURES = {"icl": measure_icl, "gap": measure_gap, "probe": measure_probe, "table": measure_table}


def _read(folder: Path, source: str) -> pd.DataFrame | None:
    path = folder / source
    if not path.is_file():
        return None
    return pd.read_csv(path, index_col=0) if source == "findings.csv" else pd.read_csv(path)


def section_scorecard(section: str, folder: str | Path, claims: Sequence[Mapping] = CLAIMS,
                      n_boot: int = I.N_BOOT, ids: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per claim of `section` (only `ids`, when given) and per architecture where the measure has
    one: id, arch, the paper's claim, a, side, b, what this profile measured, the verdict, the difference."""
    check_claims(claims)
    unknown = set(ids or ()) - {c["id"] for c in claims if c["section"] == section}
    if unknown:
        raise KeyError(f"scorecard: no claim {sorted(unknown)} in section {section!r}")
    folder, rows, cache = Path(folder), [], {}
    for c in (c for c in claims if c["section"] == section and (ids is None or c["id"] in ids)):
        if c["source"] not in cache:
            cache[c["source"]] = _read(folder, c["source"])
        data = cache[c["source"]]
        measured = [] if data is None else MEASURES[c["measure"]](c, data, n_boot)
        who = lambda s: s if isinstance(s, str) else ", ".join(   # noqa: E731  a selection's values; a list: either
            " or ".join(v) if isinstance(v, (list, tuple)) else f"{v}" for v in s.values())
        base = {"id": c["id"], "claim": c["claim"], "a": who(c["a"]), "b": who(c["b"]), "side": c["side"]}
        if not measured:
            rows.append({**base, "arch": "", "measured": f"no rows in {c['source']}", "verdict": UNMEASURED})
        for m in measured:
            rows.append({**base, "arch": m["arch"] or "", "measured": m["measured"],
                         "verdict": verdict(m["difference"], c["side"], m["no_skill"]),
                         "low": m["difference"][1], "high": m["difference"][2], "estimate": m["difference"][0]})
    cols = ["id", "arch", "claim", "a", "side", "b", "measured", "verdict", "estimate", "low", "high"]
    return pd.DataFrame(rows).reindex(columns=cols)


def to_markdown(card: pd.DataFrame, section: str | None = None) -> str:
    """The scorecard as a Markdown table: claim, a vs b, what was measured, the verdict."""
    view = pd.DataFrame({
        **({"section": card["section"]} if "section" in card and section is None else {}),
        "claim": card["id"] + ": " + card["claim"],
        "compared": card["a"] + " " + card["side"] + " " + card["b"] + card["arch"].map(lambda a: f" ({a})" if a else ""),
        "measured (a - b, 95% interval)": card["measured"], "verdict": "**" + card["verdict"] + "**"})
    return view.to_markdown(index=False)


def beside(section: str, folder: str | Path, ids: Sequence[str]) -> str:
    """The scorecard rows of `ids` as Markdown, to show under the result they read (the notebook's full
    scorecard, saved and gathered, comes at its end)."""
    return "**Scorecard** (rule: end of the notebook)\n\n" + to_markdown(section_scorecard(section, folder, ids=ids))


RULE = ("Verdict rule (docs/scorecard.md): **holds** if the 95% interval of the difference a - b lies wholly on "
        "the claimed side of 0; **not testable at this scale** if every score compared shows no skill (its "
        "interval does not clear both uniform chance and the majority-class rate of its items; BLEU: reaches "
        "below 1); **does not hold** otherwise; **not measured**: the profile has no result the claim reads.")


def save(card: pd.DataFrame, folder: str | Path, section: str) -> str:
    """Write <folder>/scorecard.csv and .md; returns the Markdown (rule, then table) for the notebook."""
    folder = Path(folder)
    text = f"{RULE}\n\n{to_markdown(card, section)}"
    atomic.write_text(folder / "scorecard.csv", card.to_csv(index=False))
    atomic.write_text(folder / "scorecard.md", f"# Scorecard: {section}\n\n{text}\n")
    return text


def gather(profile: str) -> Path:
    """results/<profile>/scorecard.md: every section's scorecard.csv present, in the notebooks' order, with a
    count of verdicts; written by each notebook after its own (the last one run completes it)."""
    root = paths.results_dir(profile)
    cards = [pd.read_csv(root / s / "scorecard.csv", keep_default_na=False).assign(section=s)
             for s in NOTEBOOKS if (root / s / "scorecard.csv").is_file()]
    lines = [f"# Scorecard of the paper's claims, profile `{profile}`", "",
             "Generated by afp_lib.analysis.scorecard from the results of each section notebook "
             "(results/<profile>/<section>/scorecard.csv); the claims are data in that module.", "", RULE, ""]
    if cards:
        card = pd.concat(cards, ignore_index=True)
        counts = card["verdict"].value_counts()
        lines += ["Verdicts: " + ", ".join(f"{v} {counts.get(v, 0)}" for v in VERDICTS) + ".", ""]
        for s in dict.fromkeys(card["section"]):
            lines += [f"## {s} ([notebook]({s}/{NOTEBOOKS[s]}))", "", to_markdown(card[card["section"] == s], s), ""]
        missing = [s for s in NOTEBOOKS if s not in set(card["section"])]
        if missing:
            lines += [f"Not run yet in this profile: {', '.join(missing)}.", ""]
    path = root / "scorecard.md"
    atomic.write_text(path, "\n".join(lines))
    return path
