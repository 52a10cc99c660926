"""The paper's reported numbers as data: Tables 1-13 of AFP, transcribed into tidy CSV under results/paper/.

One row per reported cell, the same columns for every table (blank where a column does not apply):
  table, model, method, task, language, tier, direction, shots, metric, value, pm
`model` is the base model ("XGLM-564M"), `method` is "base" or the alignment applied ("AFP", "MCL", ...);
`task`/`language` = "avg" mark the paper's average columns and a blank `shots` means "averaged over the
table's shots". `pm` is the paper's ± (its meaning differs per table: see CAPTIONS and results/paper/README.md).
"""
from __future__ import annotations

import csv
import functools
import re

import pandas as pd

from ..paths import results_dir
from ..pretrained import model_sources

COLUMNS = ("table", "model", "method", "task", "language", "tier", "direction", "shots", "metric", "value", "pm")
PER_LANGUAGE_TABLE = {"xnli": 9, "pawsx": 10, "xcopa": 11, "xstorycloze": 12, "xwinograd": 13}
TASKS = tuple(PER_LANGUAGE_TABLE)  # the tasks the paper reports (a new task has no paper numbers)

# Resource tiers as the paper's Tables 3 and 9-13 group languages (Table 11's header is reconstructed: README).
TIERS = {
    "xnli": {**dict.fromkeys("en de es fr ru zh".split(), "High"),
             **dict.fromkeys("ar bg el th tr vi".split(), "Medium"), **dict.fromkeys("hi sw ur".split(), "Low")},
    "pawsx": {**dict.fromkeys("en de es fr zh ja".split(), "High"), "ko": "Medium"},
    "xcopa": {**dict.fromkeys("en zh".split(), "High"), **dict.fromkeys("id it th tr vi".split(), "Medium"),
              **dict.fromkeys("et sw ta".split(), "Low"), **dict.fromkeys("ht qu".split(), "Ex-Low")},
    "xstorycloze": {**dict.fromkeys("en es ru zh".split(), "High"), **dict.fromkeys("ar id".split(), "Medium"),
                    **dict.fromkeys("hi sw te".split(), "Low"), **dict.fromkeys("eu my".split(), "Ex-Low")},
    "xwinograd": {**dict.fromkeys("en fr ru zh ja".split(), "High"), "pt": "Medium"},
}
FIVE_LANGUAGES = ("en", "zh", "th", "tr", "sw")  # the 5-language experiments (Tables 3-6)
TIER_ORDER = ("High", "Medium", "Low", "Ex-Low")
# Languages marked † (unseen in BLOOM's pre-training corpus) per task.
BLOOM_UNSEEN = {"xnli": {"de", "ru", "bg", "el", "th", "tr"}, "pawsx": {"de", "ja", "ko"},
                "xcopa": {"it", "th", "tr", "et", "ht", "qu"}, "xstorycloze": {"ru", "my"}, "xwinograd": {"ru", "ja"}}

CAPTIONS = {
    1: "Table 1: EN/ZH in-context learning accuracy, 0/5-shot, 5 datasets; Avg over all 20 cells.",
    2: "Table 2: FLORES-101 devtest BLEU, EN-ZH both directions, 0/1/5/10-shot (± over seeds).",
    3: "Table 3: XNLI and XCOPA accuracy across 5 languages, 0/5-shot; Avg over all cells.",
    4: "Table 4: FLORES-101 BLEU averaged over directions from / to each language (± across the other languages).",
    5: "Table 5: EN bridge vs pairwise alignment; per-language mean of XNLI and XCOPA, 0 and 5-shot.",
    6: "Table 6: AFP with semantically aligned demonstrations; same averages as Table 5.",
    7: "Table 7: 52-language alignment; mean accuracy over each task's languages (± population std across languages).",
    8: "Table 8: ablation; mean over 5 datasets x EN/ZH (± over seeds).",
    9: "Table 9: XNLI accuracy per language.",
    10: "Table 10: PAWS-X accuracy per language.",
    11: "Table 11: XCOPA accuracy per language.",
    12: "Table 12: XStoryCloze accuracy per language.",
    13: "Table 13: XWinograd accuracy per language.",
}


def paper_dir():
    return results_dir("paper")


def label(model: str, method: str) -> str:
    """The row label a reader sees: 'XGLM-564M' for a base model, 'XGLM-564M + AFP' for an aligned one."""
    return model if method in ("base", "", None) else f"{model} + {method}"


@functools.lru_cache(maxsize=None)
def _read(n: int) -> pd.DataFrame:
    path = paper_dir() / f"table{n:02d}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no transcription of Table {n}: {path} is missing (tables 1-13 exist)")
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path}:1: header {reader.fieldnames} != expected {list(COLUMNS)}")
        for line, row in enumerate(reader, 2):
            for field in ("value", "pm", "shots"):
                if row[field] != "" and not re.fullmatch(r"-?\d+(\.\d+)?", row[field]):
                    raise ValueError(f"{path}:{line}: field {field!r}={row[field]!r} is not a number")
            if row["table"] != str(n):
                raise ValueError(f"{path}:{line}: field 'table'={row['table']!r}, expected {n}")
            rows.append(row)
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df["table"] = n
    df["value"] = df["value"].astype(float)
    df["pm"] = pd.to_numeric(df["pm"].replace("", None), errors="raise").astype(float)
    df["shots"] = pd.to_numeric(df["shots"].replace("", None)).astype("Int64")
    df["label"] = [label(m, me) for m, me in zip(df["model"], df["method"])]
    return df


def paper_table(n: int) -> pd.DataFrame:
    """Table `n` (1-13) of the paper as a tidy DataFrame (a copy: change it freely)."""
    if n not in CAPTIONS:
        raise ValueError(f"the paper has no Table {n!r}; use 1..13")
    return _read(n).copy()


def paper_tables() -> dict[int, pd.DataFrame]:
    return {n: paper_table(n) for n in CAPTIONS}


def normalise_name(name: str) -> str:
    """'facebook/xglm-564M+afp' and 'XGLM-564M + AFP' both become 'xglm564mafp' (for matching run names)."""
    name = name.split("/")[-1].lower()
    return re.sub(r"[^0-9a-z]", "", name)


def match_label(name: str, labels) -> str | None:
    """The paper row label that names the same model as one of our run names, or None."""
    want = normalise_name(name)
    for lab in labels:
        if normalise_name(lab) == want:
            return lab
    return None


# --- which paper rows our models stand against (the diff rows of every table). The model side comes from
# the family registry (`afp_lib.families`: each family's smallest model and its 7B model); the method side
# is this table: our run label -> the paper's `method` column, per kind of comparison.
PAPER_METHODS = {
    "policy": {"bridge": "AFP (EN bridge)", "pairwise": "AFP (pairwise)"},          # Table 5
    "semantic": {"bridge": "AFP", "bridge w/ semantic demos": "AFP + semantic demos"},  # Table 6 (7B rows)
}


def _families(archs):
    from ..families import FAMILIES
    return [FAMILIES[a] for a in archs if a in FAMILIES]


def paper_match(profile: str, archs, labels=("AFP",)) -> dict[str, str]:
    """Our model names -> the paper's closest rows (its smallest model of each family): the vanilla model
    and, for each of `labels`, the aligned one ("xglm-mini+AFP" -> "XGLM-564M + AFP"). A converted pretrained
    model (params.yaml `models`) stands against the paper model its `stands_for` names."""
    out = {}
    roles = {**{f.name: f.paper_model for f in _families(archs)},
             **{n: src.stands_for for n, src in model_sources().items() if n in archs}}
    for arch, paper_model in roles.items():
        if paper_model:
            out[f"{arch}-{profile}"] = paper_model
            out.update({f"{arch}-{profile}+{lab}": label(paper_model, lab) for lab in labels})
    return out


def policy_match(profile: str, archs) -> dict[str, str]:
    """Table 5: the vanilla rows and our EN-bridge / pairwise runs."""
    out = paper_match(profile, archs, labels=())
    for f in _families(archs):
        if f.paper_model:
            out.update({f"{f.name}-{profile}+{ours}": label(f.paper_model, theirs)
                        for ours, theirs in PAPER_METHODS["policy"].items()})
    return out


def semantic_match(profile: str, archs) -> dict[str, str]:
    """Table 6 reports only the 7B models: our bridge-aligned models stand against those rows."""
    return {f"{f.name}-{profile}+{ours}": label(f.paper_model_7b, theirs)
            for f in _families(archs) if f.paper_model_7b for ours, theirs in PAPER_METHODS["semantic"].items()}


def ablation_match(profile: str, archs, methods: dict) -> dict[str, str]:
    """Table 8: the vanilla rows and every aligned method of the section (`w/ CLM` -> the paper's `CLM`)."""
    out = paper_match(profile, archs, labels=())
    for f in _families(archs):
        if f.paper_model:
            out.update({f"{f.name}-{profile}+{lab}": label(f.paper_model, lab.replace("w/ ", ""))
                        for lab, overrides in methods.items() if overrides is not None})
    return out
