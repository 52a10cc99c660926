"""Render the numeric tables of afp_lib.analysis.tables: formatted cells ("45.5±0.3", "45.5/41.2" where the
paper merges 0/5-shot), markdown for notebooks, LaTeX for the paper-style PDF, tidy CSV for machines.
Files are written atomically (afp_lib.atomic), so an interrupted run never leaves half a table."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .. import atomic
from ..eval.tasks import TITLES
from .intervals import no_skill

NAMES = TITLES  # task -> its `title` in the task YAML ("pawsx" -> "PAWS-X")


def _pretty(level: str, value) -> str:
    value = str(value)
    if level in ("task",):
        return NAMES.get(value, value)
    if level == "language" or level == "direction":
        return value.upper().replace("-", "→") if value not in ("Avg", "Var", "") else value
    return value


def pm_frame(df: pd.DataFrame) -> pd.DataFrame | None:
    """The ± of each cell (NaN where none) as a frame shaped like `df`, from df.attrs["pm"]."""
    pm = df.attrs.get("pm")
    if pm is None:
        return None
    frame = pd.DataFrame(pm) if isinstance(pm, dict) else pm
    return frame.reindex(index=df.index, columns=df.columns)


def ci_frames(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame] | None:
    """(low, high, chance, majority) of each cell as frames shaped like `df` (NaN where none), from
    df.attrs["ci"]; majority is the majority-class rate of the cell's items (NaN in tables built before it)."""
    ci = df.attrs.get("ci")
    if not ci:
        return None
    return tuple(pd.DataFrame(ci[k]).reindex(index=df.index, columns=df.columns) if k in ci else
                 pd.DataFrame(float("nan"), index=df.index, columns=df.columns)
                 for k in ("lo", "hi", "chance", "majority"))


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out.attrs = {}
    return out


def _cell(v, pm, digits: int, show_pm: bool, ci=None, compact: bool = False) -> str:
    """'45.5±0.3' (± as the table defines it), then the 95% interval where there is one,
    '45.5±0.3 [41.2, 49.8]', or with `compact` '45.5±4' (± half the interval's width, whole points), marked
    '†' where the interval does not clear both uniform chance and the majority-class rate (intervals.no_skill)."""
    if pd.isna(v):
        return "–"
    s = f"{v:.{digits}f}"
    has_ci = show_pm and ci is not None and not pd.isna(ci[0])
    if show_pm and pm is not None and not pd.isna(pm) and not (compact and has_ci):
        s += f"±{pm:.{digits}f}"
    if has_ci:
        lo, hi, chance, majority = (tuple(ci) + (float("nan"),) * 4)[:4]
        s += f"±{(hi - lo) / 2:.0f}" if compact else f" [{lo:.{digits}f}, {hi:.{digits}f}]"
        s += "†" if no_skill(lo, chance, majority) else ""
    return s


def _reference_rows(df: pd.DataFrame, cis) -> dict[str, list[float]] | None:
    """Per column, the uniform chance and majority-class rate of our cells (the same items for every model of a
    table, so their mean is that value): rows `chance | uniform` and `chance | majority class`."""
    if cis is None or not cis[2].notna().any().any():
        return None
    return {name: f.mean(axis=0, skipna=True).to_numpy(dtype=float) for name, f in
            (("uniform", cis[2]), ("majority class", cis[3])) if f.notna().any().any()}


def formatted(df: pd.DataFrame, show_pm: bool = True, digits: int | None = None,
              compact: bool = False) -> pd.DataFrame:
    """Strings as the paper prints them; columns flattened to header strings, rows to plain columns. Tables
    with intervals of accuracies end with the rows `chance | uniform` and `chance | majority class`."""
    digits = df.attrs.get("digits", 1) if digits is None else digits
    pm = pm_frame(df)
    names = list(df.columns.names)
    groups: dict[tuple, list] = {}
    merge = df.attrs.get("merge_shots") and names[-1] == "shots"
    for col in df.columns:
        key = col[:-1] if merge and col[-1] != "" else col
        groups.setdefault(key, []).append(col)
    vals = df.to_numpy(dtype=float)
    pms = pm.to_numpy(dtype=float) if pm is not None else None
    frames = ci_frames(df)
    cis = None if frames is None else [f.to_numpy(dtype=float) for f in frames]
    ci_at = (lambda i, j: None) if cis is None else (lambda i, j: tuple(f[i, j] for f in cis))
    refs = _reference_rows(df, frames) if show_pm else None
    pos = {c: j for j, c in enumerate(df.columns)}
    out = {}
    for key, cols in groups.items():
        parts = [_pretty(n, v) for n, v in zip(names, key) if str(v) != ""]
        if merge and len(cols) > 1 or (merge and cols[0][-1] != ""):
            parts[-1] = parts[-1] + "-" + "/".join(c[-1] for c in cols)
        header = " ".join(parts)
        out[header] = ["/".join(_cell(vals[i, pos[c]], None if pms is None else pms[i, pos[c]], digits, show_pm,
                                      ci_at(i, pos[c]), compact) for c in cols) for i in range(len(df))]
        for ref in (refs or {}).values():
            out[header].append("/".join("–" if pd.isna(ref[pos[c]]) else f"{ref[pos[c]]:.{digits}f}" for c in cols))
    body = pd.DataFrame(out)
    index = _plain(df).index.to_frame(index=False)
    if refs:
        index = index.astype(object)
        for name in refs:
            index.loc[len(index)] = ["chance", name] + [""] * (index.shape[1] - 2)
    return pd.concat([index, body], axis=1)


CI_NOTE = ("Ours: mean ± as above, [95% bootstrap interval over training seeds and test items]; † the interval "
           "does not clear both uniform chance and the majority-class rate of the items (rows `chance`).")
CI_NOTE_COMPACT = ("Ours: mean±half the width of its 95% bootstrap interval over training seeds and test items "
                   "(the interval itself is in the CSV); † the interval does not clear both uniform chance and "
                   "the majority-class rate of the items (rows `chance`).")


def _caption(df: pd.DataFrame, show_pm: bool, compact: bool = False) -> str:
    caption = df.attrs.get("caption", "")
    cis = ci_frames(df) if show_pm else None
    if cis is not None and cis[0].notna().any().any():
        caption = f"{caption} {CI_NOTE_COMPACT if compact else CI_NOTE}".strip()
    return caption


def to_markdown(df: pd.DataFrame, show_pm: bool = True, compact: bool = False) -> str:
    """The table as Markdown; `compact` cells ('43.8±25†') fit a notebook column, the full intervals stay in
    the CSV and the LaTeX."""
    caption = _caption(df, show_pm, compact)
    table = formatted(df, show_pm, compact=compact).to_markdown(index=False, disable_numparse=True)
    return f"{caption}\n\n{table}" if caption else table


def to_latex(df: pd.DataFrame, show_pm: bool = True) -> str:
    body = formatted(df, show_pm)
    tex = body.to_latex(index=False, escape=True, caption=_caption(df, show_pm) or None,
                        label=f"tab:afp{df.attrs.get('table', '')}")
    return tex.replace("±", r"$\pm$").replace("→", r"$\to$").replace("–", "--").replace("†", r"$^\dagger$")


def to_long(df: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: the index levels, the column levels, value and pm (CSV-friendly)."""
    pm, levels = pm_frame(df), list(range(df.columns.nlevels))
    long = _plain(df).stack(levels, future_stack=True).rename("value").to_frame()
    if pm is not None:
        long["pm"] = _plain(pm).stack(levels, future_stack=True)
    cis = ci_frames(df)
    if cis is not None:
        for name, f in zip(("ci_low", "ci_high", "chance", "majority"), cis):
            long[name] = _plain(f).stack(levels, future_stack=True)
    return long.dropna(subset=["value"]).reset_index()


def save(df: pd.DataFrame, stem: str | Path) -> dict[str, Path]:
    """Write <stem>.csv (tidy, every interval), <stem>.md (compact cells) and <stem>.tex (full intervals);
    returns the paths by suffix."""
    stem = Path(stem)
    paths = {ext: stem.with_name(stem.name + "." + ext) for ext in ("csv", "md", "tex")}
    atomic.write_text(paths["csv"], to_long(df).to_csv(index=False))
    atomic.write_text(paths["md"], to_markdown(df, compact=True) + "\n")
    atomic.write_text(paths["tex"], to_latex(df))
    atomic.write_text(stem.parent / "data_revisions.json", _data_revisions())
    return paths


def _data_revisions() -> str:
    """Which data the tables of a folder came from: the store's manifest hash and dataset revisions."""
    import json

    from ..data.store import data_revisions
    from ..paths import mirror_root
    return json.dumps(data_revisions(mirror_root()), indent=1, ensure_ascii=False) + "\n"


def save_frame(df, stem: Path) -> None:
    """A plain (single-level) DataFrame as `stem.csv` and `stem.md`, written atomically."""
    for suffix, text in ((".csv", df.to_csv()), (".md", df.to_markdown(floatfmt=".3f") + "\n")):
        atomic.write_text(stem.with_suffix(suffix), text)


def write_json(path: Path, data) -> None:
    """Atomic JSON write (metrics files that DVC reads)."""
    atomic.write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=float) + "\n")


FIGURE_INDEX = "index.md"
NO_FIGURES = "No figures: this section's results are its tables.\n"


def start_figure_index(folder: Path, title: str) -> None:
    """A fresh `index.md` in a section's figure folder, listing no figure yet; `add_to_figure_index` (called
    by `plots.save`) lists each figure the notebook draws. The folder is never empty, so git keeps it and a
    fresh clone's DVC finds a section that draws no figure (Table 7, Table 8) up to date."""
    atomic.write_text(Path(folder) / FIGURE_INDEX, f"# {title}\n\n{NO_FIGURES}")


def add_to_figure_index(folder: Path, name: str, suffixes: list[str]) -> None:
    """List figure `name` (its files `name.<suffix>`) in `folder`'s index, sorted, once; no index, no-op."""
    path = Path(folder) / FIGURE_INDEX
    if not path.is_file():
        return
    title, *lines = path.read_text(encoding="utf-8").splitlines()
    entries = {line[2:].split(":")[0]: line for line in lines if line.startswith("- ")}
    entries[name] = f"- {name}: " + ", ".join(f"[{s}]({name}.{s})" for s in suffixes)
    atomic.write_text(path, f"{title}\n\n" + "".join(entries[k] + "\n" for k in sorted(entries)))
