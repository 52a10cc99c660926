"""Results as tidy records in a JSON-lines file, written atomically, so an interrupted evaluation that is
started again skips every (model, task, language, shots, seed, setting) it has already finished.

A record: {model, task, language, shots, seed, metric, value, n_items, ...settings}. `value` is accuracy in
percent (0-100, like the paper) or BLEU/chrF."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import atomic
from ..data import read_jsonl
from ..paths import digest as _digest
from ..paths import model_key, runs_dir

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
    atomic.write_text(path, old + _lines(records))


def _lines(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)




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


# ---------------------------------------------------------------- the evaluation cache: one file per cell
#
# A cell is one unit of work for one model: (task, language, shots, seed) under one setting. Its records
# (one per metric) live in their own file, written once, atomically, so that notebooks, the sharded
# `evaluate --plan` run and a resumed run read and write the same cache without ever sharing a file.

CELL_FIELDS = ("task", "language", "shots", "seed", "demo_lang", "demos", "connectors", "max_items", "version")


@dataclass(frozen=True)
class Cell:
    """One (model, task, language, shots, seed, setting) of the grid; `scoring` holds the settings that
    change its numbers without appearing in its records (bf16, the semantic retriever, max_new_tokens)."""
    model: str              # what load_model loads: a folder or a hub id
    task: str
    language: str           # "zh", or "en-zh" for translation
    shots: int
    seed: int
    demo_lang: str
    demos: str
    connectors: str
    max_items: int | None
    version: int
    scoring: tuple = ()     # sorted (name, value) pairs

    @property
    def unit(self) -> dict:
        return {k: getattr(self, k) for k in CELL_FIELDS}

    @property
    def group(self) -> tuple:
        """Cells that one call scores together (a model's task and language under one setting)."""
        return (self.model, self.task, self.language, self.demo_lang, self.demos, self.connectors,
                self.max_items, self.version, self.scoring)

    def key(self) -> str:
        return f"{self.task}/{self.language}/{self.shots}shot-s{self.seed}-{_digest([self.unit, self.scoring], 10)}"

    def to_json(self) -> dict:
        return {**asdict(self), "scoring": dict(self.scoring)}

    @classmethod
    def from_json(cls, d: dict) -> "Cell":
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**{**d, "scoring": tuple(sorted((d.get("scoring") or {}).items()))})


def cell_file(cell: Cell, root: Path | None = None) -> Path:
    """runs/eval/<model digest>/<task>/<language>/<shots>shot-s<seed>-<setting digest>.jsonl"""
    return Path(root or runs_dir() / "eval") / _digest(model_key(cell.model)) / f"{cell.key()}.jsonl"


def read_cell(cell: Cell, root: Path | None = None) -> list[dict] | None:
    path = cell_file(cell, root)
    return read_records(path) if path.is_file() else None


def write_cell(cell: Cell, records: list[dict], root: Path | None = None) -> None:
    """All of a cell's records at once (temporary file + os.replace): a killed writer leaves no cell half
    written, and a cell written twice holds its records once."""
    path = cell_file(cell, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, _lines(records))


class CellStore:
    """`Results` over the per-cell cache of one model and scoring setting: what `evaluate` and
    `translate_eval` resume from and write to when given one as `out_file`."""

    def __init__(self, model: str, scoring: dict | None = None, root: Path | None = None, on_write=None):
        self.model, self.scoring, self.root = model, tuple(sorted((scoring or {}).items())), root
        self.on_write = on_write   # called with each cell written (the sharded runner counts them)

    def cell(self, unit: dict) -> Cell:
        return Cell(model=self.model, scoring=self.scoring, **{k: unit.get(k) for k in CELL_FIELDS})

    def done(self, unit: dict) -> list[dict] | None:
        return read_cell(self.cell(unit), self.root)

    def add(self, records: list[dict]) -> None:
        by_unit: dict[tuple, list[dict]] = {}
        for rec in records:
            by_unit.setdefault(unit_key(rec), []).append(rec)
        for recs in by_unit.values():
            cell = self.cell(recs[0])
            write_cell(cell, recs, self.root)
            if self.on_write is not None:
                self.on_write(cell)


def open_results(out_file) -> "Results | CellStore":
    """`out_file` as a results store: a CellStore as it is, a path (or None) as a `Results` file."""
    return out_file if isinstance(out_file, CellStore) else Results(out_file)


def eval_dtype(bf16: bool, device="auto"):
    """The dtype to load a model in for evaluation: bf16 when it is scored in bf16 on CUDA. Autocast over
    fp32 weights casts every weight on every forward, which dominates greedy decoding (one token per
    forward); bf16 weights are cast once, at load. On the CPU the weights stay fp32 (today's numbers:
    the CPU profiles pin fp32, and bf16 autocast there keeps fp32 weights as before)."""
    import torch

    from ..devices import resolve_device
    return torch.bfloat16 if bf16 and resolve_device(device).type == "cuda" else torch.float32


def icl_scoring(cfg) -> dict:
    scoring = {"bf16": cfg.bf16}
    if cfg.demos == "semantic":
        scoring.update(semantic_layer=cfg.semantic_layer, semantic_pooling=cfg.semantic_pooling)
    return scoring


def translation_scoring(cfg) -> dict:
    return {"bf16": cfg.bf16, "max_new_tokens": cfg.translation.max_new_tokens}


def config_cells(cfg, model: str, translation: bool = True) -> list[Cell]:
    """Every cell an `EvalConfig` asks of `model`, in the order `evaluate` then `translate_eval` score
    them (ICL: task, language, shots, seed; then translation: direction, shots, seed)."""
    from .tasks import TASKS, check_langs
    out = []
    icl = tuple(sorted(icl_scoring(cfg).items()))
    for name, codes in check_langs(list(cfg.tasks), cfg.langs).items():
        task = TASKS[name]
        for code in codes:
            dcode = cfg.demo_lang or task.lang(code).demos_from or code
            out += [Cell(model, name, code, k, s, dcode, cfg.demos, cfg.connectors, cfg.max_items, task.version, icl)
                    for k in cfg.shots for s in cfg.seeds]
    t = cfg.translation
    if translation and t.langs:
        flores = TASKS["flores"]
        mt = tuple(sorted(translation_scoring(cfg).items()))
        out += [Cell(model, "flores", f"{a}-{b}", k, s, a, "random", "english", t.max_items, flores.version, mt)
                for a, b in t.pairs for k in t.shots for s in t.seeds]
    return out


# ---------------------------------------------------------------- sharding a grid over ranks

def work_units(cells: list[tuple[Cell, float]]) -> list[tuple[tuple, list[Cell], float]]:
    """Cells grouped by what one call scores together (a model's task and language under one setting),
    as (group, cells, estimated seconds), largest first; ties broken by the group, so every rank that
    computes this gets the same list."""
    groups: dict[tuple, list] = {}
    for cell, secs in cells:
        g = groups.setdefault(cell.group, [[], 0.0])
        g[0].append(cell)
        g[1] += secs
    units = [(g, sorted(cs, key=lambda c: (c.shots, c.seed)), secs) for g, (cs, secs) in groups.items()]
    return sorted(units, key=lambda u: (-u[2], json.dumps(u[0], default=str)))


def assign(units: list, world: int) -> list[list]:
    """Largest first, each unit to the least loaded rank (lowest rank on ties): deterministic."""
    loads, shards = [0.0] * world, [[] for _ in range(world)]
    for u in units:
        r = min(range(world), key=lambda i: (loads[i], i))
        shards[r].append(u)
        loads[r] += max(u[2], 1e-9)
    return shards
