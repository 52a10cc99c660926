"""Results as tidy records in a JSON-lines file, written atomically, so an interrupted evaluation that is
started again skips every (model, task, language, shots, seed, setting) it has already finished.

A record: {model, task, language, shots, seed, metric, value, n_items, ...settings}. `value` is accuracy in
percent (0-100, like the paper) or BLEU/chrF."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..data import read_jsonl

# Fields that identify one unit of work; everything else in a record is its outcome or provenance.
KEY_FIELDS = ("model", "task", "language", "shots", "seed", "demo_lang", "demos", "connectors", "max_items",
              "version")


def unit_key(rec: dict) -> tuple:
    return tuple(json.dumps(rec.get(k), sort_keys=True) for k in KEY_FIELDS)


def read_records(path: str | Path | None) -> list[dict]:
    """Records of a results file ([] when there is none yet); a broken line names file and line."""
    if path is None or not Path(path).exists():
        return []
    return read_jsonl(Path(path))


def append_records(path: str | Path | None, records: list[dict]) -> None:
    """Append by rewriting to a temporary file in the same folder and `os.replace`: a crash leaves either
    the old file or the new one, never half a line."""
    if path is None or not records:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    new = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(old + new)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Results:
    """The records of one results file, indexed by unit, for resuming."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None
        self.by_unit: dict[tuple, list[dict]] = {}
        for rec in read_records(self.path):
            self.by_unit.setdefault(unit_key(rec), []).append(rec)

    def done(self, unit: dict) -> list[dict] | None:
        return self.by_unit.get(unit_key(unit))

    def add(self, records: list[dict]) -> None:
        append_records(self.path, records)
        for rec in records:
            self.by_unit.setdefault(unit_key(rec), []).append(rec)


def summarize(records: list[dict]):
    """Mean and standard deviation over seeds, one row per (model, task, language, shots, metric, setting)."""
    import pandas as pd

    df = pd.DataFrame(records)
    if df.empty:
        return df
    keys = [k for k in ("model", "task", "language", "shots", "demo_lang", "demos", "connectors", "metric")
            if k in df.columns]
    df = df.fillna({k: "-" for k in keys})
    return (df.groupby(keys, dropna=False)
              .agg(mean=("value", "mean"), std=("value", "std"), n_seeds=("seed", "nunique"), n_items=("n_items", "max"))
              .reset_index())
