"""The few numbers `dvc metrics show` prints per section: the same keys for every section, so the table is
one legible row per section (the detail stays in results/<profile>/metrics/<section>.json)."""
from __future__ import annotations

import math

KEYS = ("acc_vanilla", "acc_aligned", "acc_best", "acc_worst", "bleu_vanilla", "bleu_aligned")


def _mean(series) -> float | None:
    v = float(series.mean()) if len(series) else math.nan
    return None if math.isnan(v) else round(v, 2)


def headline_metrics(records) -> dict:
    """Mean ICL accuracy (%, every task, language, shot count and seed a section evaluates) of its vanilla
    models, of all its aligned ones, and of its best and worst aligned label (a sweep's spread); mean BLEU
    where it translates. A key the section has no records for is null."""
    is_vanilla = records["label"] == "vanilla"
    icl = records[(records["task"] != "flores") & (records["metric"] == "acc")]
    bleu = records[(records["task"] == "flores") & (records["metric"] == "bleu")]
    per_label = icl[~is_vanilla.loc[icl.index]].groupby("label")["value"].mean()
    out = {"acc_vanilla": _mean(icl.loc[is_vanilla.loc[icl.index], "value"]),
           "acc_aligned": _mean(icl.loc[~is_vanilla.loc[icl.index], "value"]),
           "acc_best": _mean(per_label.iloc[[per_label.argmax()]]) if len(per_label) else None,
           "acc_worst": _mean(per_label.iloc[[per_label.argmin()]]) if len(per_label) else None,
           "bleu_vanilla": _mean(bleu.loc[is_vanilla.loc[bleu.index], "value"]),
           "bleu_aligned": _mean(bleu.loc[~is_vanilla.loc[bleu.index], "value"])}
    assert tuple(out) == KEYS
    return out
