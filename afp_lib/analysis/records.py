"""Evaluation records -> tidy DataFrames: validation, mean ± std over seeds, per-seed averages for sweeps.

A record is one score of one model on one (task, language, shots, seed), as afp_lib.eval writes them:
  model, task, language (ISO 639-1; FLORES "en-zh"), shots, seed, metric, value (0-100), n_items.
Extra keys (a run's layer, pooling, alpha, p_src, ...) are kept, so sweeps can group by them."""
from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..eval.tasks import ICL_TASKS as _ICL_TASKS
from ..eval.tasks import METRICS as _METRICS
from ..eval.tasks import TASKS as _TASK_REGISTRY

logger = logging.getLogger(__name__)

FIELDS = {"model": str, "task": str, "language": str, "shots": int, "seed": int, "metric": str, "value": float,
          "n_items": int}
# Read from the task YAMLs (afp_lib/eval/tasks/*.yaml): a record may name any registered task and metric.
TASKS = tuple(_TASK_REGISTRY)
ICL_TASKS = _ICL_TASKS  # the multiple-choice tasks: the paper's "5 datasets"
METRICS = _METRICS
KEYS = ["model", "task", "language", "shots", "metric"]


def _read_file(path: Path) -> list[tuple[str, dict]]:
    if path.suffix == ".csv":
        return [(f"{path}:{i}", row) for i, row in enumerate(pd.read_csv(path).to_dict("records"), 2)]
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append((f"{path}:{i}", json.loads(line)))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{i}: not JSON ({e.msg})") from None
    return out


def _check(where: str, rec: Mapping) -> dict:
    missing = [k for k in FIELDS if k not in rec]
    if missing:
        raise ValueError(f"{where}: record lacks field(s) {missing}; a record has {list(FIELDS)}")
    out = dict(rec)
    for k, tp in FIELDS.items():
        v = rec[k]
        try:
            if tp is int and (isinstance(v, bool) or float(v) != int(float(v))):
                raise ValueError
            out[k] = tp(int(float(v))) if tp is int else tp(v)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: field {k!r}={v!r} is not {tp.__name__}") from None
    for k, allowed in (("task", TASKS), ("metric", METRICS)):
        if out[k] not in allowed:
            close = difflib.get_close_matches(out[k], allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{where}: field {k!r}={out[k]!r} is not one of {', '.join(allowed)}{hint}")
    if not 0.0 <= out["value"] <= 100.0:
        raise ValueError(f"{where}: field 'value'={out['value']} is outside 0-100 (scores are percentages)")
    return out


def load_records(source) -> pd.DataFrame:
    """Records from a list of dicts, a DataFrame, or .jsonl/.csv path(s), checked field by field."""
    if isinstance(source, pd.DataFrame):
        items = [(f"row {i}", r) for i, r in enumerate(source.to_dict("records"))]
    elif isinstance(source, (str, Path)):
        items = _read_file(Path(source))
    elif isinstance(source, Iterable):
        source = list(source)
        if source and isinstance(source[0], (str, Path)):
            items = [it for p in source for it in _read_file(Path(p))]
        else:
            items = [(f"record {i}", r) for i, r in enumerate(source)]
    else:
        raise TypeError(f"records must be dicts, a DataFrame or paths, got {type(source).__name__}")
    rows = [_check(where, rec) for where, rec in items]
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=list(FIELDS))
    extras = df[[c for c in df.columns if c not in FIELDS]].astype(str)  # settings may be lists or dicts
    dup = pd.concat([df[KEYS + ["seed"]], extras], axis=1).duplicated(keep=False)
    if dup.any():
        first = df[dup].iloc[0]
        raise ValueError(f"{int(dup.sum())} duplicate records, e.g. {first[KEYS + ['seed']].to_dict()}")
    return df


def aggregate(records, by: Sequence[str] = KEYS) -> pd.DataFrame:
    """Mean ± std (ddof 1) over seeds for each `by` group, with the number of seeds and of test items."""
    df = load_records(records) if not isinstance(records, pd.DataFrame) or "seed" not in records else records
    g = df.groupby(list(by), sort=False, dropna=False)
    out = g["value"].agg(mean="mean", std="std", n_seeds="count").reset_index()
    out["n_items"] = g["n_items"].sum().values
    return out


def seed_scores(records, by: Sequence[str] = ("model",), tasks: Sequence[str] = ICL_TASKS,
                languages: Sequence[str] = ("en", "zh"), shots: Sequence[int] = (0, 5),
                metric: str = "acc") -> pd.DataFrame:
    """Per (by..., seed): the mean over the tasks x languages x shots cells (the paper's '5 EN-ZH datasets'
    average of Fig. 4/5 and Table 8). Groups missing a cell get NaN, never an average over fewer cells."""
    df = load_records(records) if not isinstance(records, pd.DataFrame) else records
    sel = df[df.task.isin(tasks) & df.language.isin(languages) & df.shots.isin(shots) & (df.metric == metric)]
    expected = len(set(tasks)) * len(set(languages)) * len(set(shots))
    g = sel.groupby(list(by) + ["seed"], sort=False, dropna=False)["value"]
    out = g.agg(value="mean", n_cells="count").reset_index()
    short = out.n_cells < expected
    if short.any():
        logger.warning("%d groups lack some of the %d cells; their average is NaN", int(short.sum()), expected)
        out.loc[short, "value"] = float("nan")
    return out


def relative_gap(records, task: str = "xnli", shots: int = 0, pivot: str = "en", metric: str = "acc") -> pd.DataFrame:
    """Fig. 1(c): per model, language and seed, 100 * (score[pivot] - score[lang]) / score[pivot]."""
    df = load_records(records) if not isinstance(records, pd.DataFrame) else records
    sel = df[(df.task == task) & (df.shots == shots) & (df.metric == metric)]
    wide = sel.pivot_table(index=["model", "seed"], columns="language", values="value", aggfunc="first")
    if pivot not in wide:
        raise ValueError(f"no {task} {shots}-shot {metric} records in {pivot!r}; languages: {list(wide.columns)}")
    gap = wide.drop(columns=pivot).rsub(wide[pivot], axis=0).div(wide[pivot], axis=0) * 100
    return gap.stack().rename("value").reset_index()
