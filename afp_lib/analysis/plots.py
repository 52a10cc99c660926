"""The paper's figures, one function each, in one style (`afp_style`). Every function returns a Figure and
never shows it; `save(fig, stem)` writes PNG + PDF atomically, `show(fig)` puts it in a notebook's output.
Outside IPython the backend is Agg (no display is ever needed); inside a kernel it is left to IPython
(inline), so interactive and papermill-executed notebooks show their figures.

  tsne_before_after  Fig. 1(a, b), 3(a, b): sentence representations coloured by language
  tsne_grid          Fig. 6: several models (vanilla / aligned) side by side
  align_uniform_trajectories  Fig. 3(c): L_uniform vs L_align during training, one line per method
  interval_sweep     Fig. 4(a) layer, 4(b) p_src, 5(a) pooling, 5(b) alpha: mean and 95% interval, chance line
  sweep              mean ± sd over the rows of each group (Fig. 1(c))
  relative_gap       Fig. 1(c): relative EN-XX gap before and after alignment"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

from .. import atomic
from .notebook import in_ipython, show  # noqa: F401  (show: re-exported for notebooks)

if not in_ipython() and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .tsne import tsne_2d  # noqa: E402

PALETTE = "colorblind"
LANGUAGE_ORDER = ("en", "zh", "th", "tr", "sw", "de", "es", "fr", "ru", "ar", "hi", "vi", "ja", "ko", "id")
LABELS = {"layer": "MCL layer", "p_src": r"$p_{src}$", "pooling": "pooling", "alpha": r"CIT weight $\alpha$",
          "value": "accuracy (%)", "align": r"$L_\mathrm{align}$", "uniform": r"$L_\mathrm{uniform}$"}   # glyphs DejaVu has: no substitution


@contextlib.contextmanager
def afp_style():
    """The one look of every afp figure: seaborn 'whitegrid', paper context, colour-blind palette."""
    rc = {"figure.dpi": 100, "savefig.dpi": 200, "savefig.bbox": "tight", "axes.titlesize": 10,
          "axes.labelsize": 9, "legend.fontsize": 8, "legend.title_fontsize": 8, "font.family": "DejaVu Sans"}
    with sns.axes_style("whitegrid"), sns.plotting_context("paper"), sns.color_palette(PALETTE), \
            plt.rc_context(rc):
        yield


def language_colors(langs: Sequence[str]) -> dict[str, tuple]:
    """A fixed colour per language (EN is always the first palette colour), shared by all figures."""
    seen = list(dict.fromkeys(list(LANGUAGE_ORDER) + sorted(set(langs))))
    colors = sns.color_palette(PALETTE, n_colors=max(len(seen), 10))
    return {lang: colors[i % len(colors)] for i, lang in enumerate(seen) if lang in set(langs)}


def _coords(x, perplexity: float, seed: int) -> np.ndarray:
    x = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    return x if x.shape[1] == 2 else tsne_2d(x, perplexity=perplexity, seed=seed)


def _scatter(ax, xy: np.ndarray, langs: Sequence[str], pairs: Sequence[tuple[int, int]] | None, title: str):
    langs = np.asarray(langs)
    if len(langs) != len(xy):
        raise ValueError(f"{len(langs)} language labels for {len(xy)} points")
    for i, j in pairs or ():  # faint lines between translations: how far apart the pairs sit
        ax.plot(*xy[[i, j]].T, color="0.6", lw=0.3, alpha=0.4, zorder=1)
    for lang, color in language_colors(list(langs)).items():
        pts = xy[langs == lang]
        ax.scatter(pts[:, 0], pts[:, 1], s=6, color=color, label=lang.upper(), alpha=0.8, lw=0, zorder=2)
    ax.set_title(title)
    ax.set_xticks([]), ax.set_yticks([])


def tsne_grid(panels: Mapping[str, object], langs: Sequence[str], *, ncols: int | None = None,
              pairs: Sequence[tuple[int, int]] | None = None, perplexity: float = 30.0, seed: int = 0,
              panel_size: float = 3.2):
    """One t-SNE panel per entry of `panels` (title -> (N, H) vectors or (N, 2) coordinates); the same
    points in the same order in every panel, labelled by `langs`. One shared legend. Under each title of a
    panel given as vectors: the share of each point's 10 nearest neighbours (cosine, in the representation
    space, not the map) that are in another language, against that share were the languages fully mixed."""
    n = len(panels)
    ncols = ncols or n
    nrows = -(-n // ncols)
    with afp_style():
        fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size * ncols, panel_size * nrows + 0.4),
                                 squeeze=False)
        for ax, (title, x) in zip(axes.flat, panels.items()):
            if np.ndim(x) == 2 and np.shape(x)[1] > 2:
                mix = neighbour_mix(x, langs)
                title = f"{title}\nother-language 10-NN: {mix['share']:.0f}% (mixed: {mix['mixed']:.0f}%)"
            _scatter(ax, _coords(x, perplexity, seed), langs, pairs, title)
        for ax in axes.flat[n:]:
            ax.set_visible(False)
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), markerscale=2.5, frameon=False)
        fig.tight_layout(rect=(0, 0.06 if nrows == 1 else 0.03, 1, 1))
    return fig


def neighbour_mix(x, langs, k: int = 10) -> dict[str, float]:
    """afp_lib.metrics.other_language_neighbours of (N, H) vectors (a tensor or an array)."""
    import torch

    from ..metrics import other_language_neighbours
    return other_language_neighbours(torch.as_tensor(np.asarray(x, dtype=np.float32)), langs, k)


def tsne_before_after(emb_before, emb_after, langs: Sequence[str], *, titles=("vanilla", "+AFP"),
                      pairs: Sequence[tuple[int, int]] | None = None, perplexity: float = 30.0, seed: int = 0):
    """Fig. 1(a, b): the same sentences before and after alignment, each space with its own t-SNE."""
    return tsne_grid({titles[0]: emb_before, titles[1]: emb_after}, langs, pairs=pairs,
                     perplexity=perplexity, seed=seed)


def read_train_log(path: str | Path) -> list[dict]:
    """The trainer's train_log.jsonl (one JSON object per line); errors name the file and line."""
    from ..data import read_jsonl
    return read_jsonl(Path(path))


def eval_points(log: Sequence[Mapping]) -> pd.DataFrame:
    """The eval steps of a training log (entries with `align` and `uniform`), sorted by step."""
    rows = [{"step": r["step"], "align": r["align"], "uniform": r["uniform"]}
            for r in log if r.get("align") is not None and r.get("uniform") is not None]
    if not rows:
        raise ValueError("the log has no eval entries with 'align' and 'uniform' (see the trainer's log contract)")
    return pd.DataFrame(rows).sort_values("step")


def align_uniform_trajectories(logs: Mapping[str, Sequence[Mapping]], *, annotate: bool = True):
    """Fig. 3(c): each method's path through (L_uniform, L_align) over training; lower-left is better.
    Hollow marker = first eval, filled star = last eval."""
    with afp_style():
        fig, ax = plt.subplots(figsize=(4.6, 3.6))
        colors = sns.color_palette(PALETTE, n_colors=max(len(logs), 3))
        for color, (name, log) in zip(colors, logs.items()):
            pts = eval_points(log)
            u, a, steps = pts["uniform"].to_numpy(), pts["align"].to_numpy(), pts["step"].to_numpy()
            ax.plot(u, a, "-o", color=color, ms=3.5, lw=1.2, label=name)
            ax.scatter(u[:1], a[:1], s=60, facecolors="white", edgecolors=[color], zorder=3)
            ax.scatter(u[-1:], a[-1:], s=90, marker="*", color=color, zorder=3)
            if annotate:
                for k in (0, len(pts) - 1):
                    ax.annotate(f"{int(steps[k])}", (u[k], a[k]), textcoords="offset points", xytext=(4, 4),
                                fontsize=6, color=color)
        ax.set_xlabel(LABELS["uniform"])
        ax.set_ylabel(LABELS["align"])
        ax.legend(title="method (step: first, last)" if annotate else "method")
        fig.tight_layout()
    return fig


def sweep(df: pd.DataFrame, x: str, y: str = "value", hue: str | None = "model", *, errorbar=("sd", 1),
          ylabel: str | None = None, xlabel: str | None = None, title: str | None = None, order=None):
    """Mean of `y` per `x` (and `hue`) with ± sd over the rows of each group (the seeds): Fig. 1(c). Figs. 4/5
    use `interval_sweep`. Numeric x gives lines; categorical x (model) gives bars."""
    missing = [c for c in (x, y, hue) if c and c not in df]
    if missing:
        raise ValueError(f"sweep: column(s) {missing} not in the frame (columns: {list(df.columns)})")
    colors = {}
    if hue == "language":  # the same colour per language as in the t-SNE figures
        colors = {"palette": language_colors(list(df[hue].unique())),
                  "hue_order": [l for l in LANGUAGE_ORDER if l in set(df[hue])] +
                               sorted(set(df[hue]) - set(LANGUAGE_ORDER))}
    with afp_style():
        fig, ax = plt.subplots(figsize=(4.2, 3.2))
        if pd.api.types.is_numeric_dtype(df[x]):
            sns.lineplot(df, x=x, y=y, hue=hue, marker="o", errorbar=errorbar, err_style="bars", ax=ax,
                         err_kws={"capsize": 3}, **colors)
            values = sorted(df[x].unique())
            if len(values) <= 12:
                ax.set_xticks(values)
        else:
            sns.barplot(df, x=x, y=y, hue=hue, errorbar=errorbar, capsize=0.15, ax=ax, order=order,
                        err_kws={"linewidth": 1}, **colors)
            bottom = max(0, np.nanmin(df[y]) - 5)
            ax.set_ylim(bottom, max(ax.get_ylim()[1], bottom + 1))   # all bars 0 (smoke): no empty range
        ax.set_xlabel(LABELS.get(x, x) if xlabel is None else xlabel)
        ax.set_ylabel(LABELS.get(y, y) if ylabel is None else ylabel)
        if title:
            ax.set_title(title)
        if hue and ax.get_legend():
            ax.legend(title=hue)
        fig.tight_layout()
    return fig


def interval_sweep(iv: pd.DataFrame, x: str, hue: str | None = "arch", *, ylabel: str | None = None,
                   xlabel: str | None = None, title: str | None = None, order=None):
    """Fig. 4/5 from `intervals.score_intervals` rows: the mean per `x` (and `hue`) with its 95% interval over
    training seeds and test items as error bars, and the chance score as a dashed line. With one training seed
    a ± sd bar would be empty although 16 items per cell leave the score uncertain by several points; two points
    whose intervals overlap are not distinguishable. Numeric x gives lines; categorical x (pooling) gives
    markers side by side, in `order` when given."""
    missing = [c for c in (x, hue, "value", "low", "high") if c and c not in iv]
    if missing:
        raise ValueError(f"interval_sweep: column(s) {missing} not in the frame (columns: {list(iv.columns)})")
    numeric = pd.api.types.is_numeric_dtype(iv[x])
    cats = list(order) if order is not None else list(dict.fromkeys(iv[x]))
    groups = list(iv.groupby(hue, sort=True)) if hue else [(None, iv)]
    colors = sns.color_palette(PALETTE, n_colors=max(len(groups), 3))
    with afp_style():
        fig, ax = plt.subplots(figsize=(4.2, 3.2))
        for i, (name, d) in enumerate(groups):
            if numeric:
                d = d.sort_values(x)
                pos = d[x].to_numpy(dtype=float)
            else:
                d = d.set_index(x).reindex(cats).reset_index()
                pos = np.arange(len(cats)) + (i - (len(groups) - 1) / 2) * 0.2
            ax.errorbar(pos, d["value"], yerr=[d["value"] - d["low"], d["high"] - d["value"]],
                        fmt="o-" if numeric else "o", capsize=3, color=colors[i], label=name)
        if "chance" in iv:
            ax.axhline(float(iv["chance"].mean()), ls="--", lw=1, color="0.4", label="chance")
        if numeric:
            values = sorted(iv[x].unique())
            if len(values) <= 12:
                ax.set_xticks(values)
        else:
            ax.set_xticks(np.arange(len(cats)), [str(c) for c in cats])
        ax.set_xlabel(LABELS.get(x, x) if xlabel is None else xlabel)
        ax.set_ylabel(LABELS.get("value") if ylabel is None else ylabel)
        if title:
            ax.set_title(title)
        ax.legend(title=hue, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))   # beside: bars fill the axes
        fig.tight_layout()
    return fig


def relative_gap(df: pd.DataFrame, *, hue: str = "language", x: str = "model", task: str = "XNLI 0-shot"):
    """Fig. 1(c): 100 * (EN - XX) / EN per model (from records.relative_gap), ± sd over seeds."""
    fig = sweep(df, x=x, y="value", hue=hue, ylabel="relative gap to EN (%)", xlabel="", title=task)
    ax = fig.axes[0]
    ax.set_ylim(min(0, float(np.nanmin(df["value"])) - 1), None)
    ax.axhline(0, color="0.3", lw=0.8)
    if ax.get_legend():
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.0, 1.0), title=hue, frameon=False, fontsize=8,
                        title_fontsize=8)
    return fig


def save(fig, stem: str | Path, formats: Sequence[str] = ("png", "pdf")) -> dict[str, Path]:
    """Write <stem>.png and <stem>.pdf (tmp file, then os.replace) and list them in the folder's figure index
    (`render.start_figure_index`, where a section notebook started one); returns the paths by suffix."""
    from .render import add_to_figure_index
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = {}
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        with atomic.replacing(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=200, bbox_inches="tight")
        paths[fmt] = path
    add_to_figure_index(stem.parent, stem.name, list(formats))
    return paths
