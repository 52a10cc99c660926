"""Figures: every plot function returns a Figure with the expected artists (no window ever opens),
save() writes PNG and PDF atomically, t-SNE is deterministic and picks its method by size."""
import json

import matplotlib
import numpy as np
import pandas as pd
import pytest

from afp_lib.analysis import plots, tsne


def test_backend_is_agg():
    assert matplotlib.get_backend().lower() == "agg"


def test_tsne_is_seeded_and_separates_two_far_clusters():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(30, 8)) + 20 * np.eye(8)[0], rng.normal(size=(30, 8)) - 20 * np.eye(8)[0]])
    a = tsne.tsne_2d(x, perplexity=10, seed=3, normalize=False, n_iter=250)
    b = tsne.tsne_2d(x, perplexity=10, seed=3, normalize=False, n_iter=250)
    assert a.shape == (60, 2) and np.allclose(a, b)
    centre = [a[:30].mean(0), a[30:].mean(0)]
    spread = max(np.linalg.norm(a[:30] - centre[0], axis=1).max(), np.linalg.norm(a[30:] - centre[1], axis=1).max())
    assert np.linalg.norm(centre[0] - centre[1]) > spread
    with pytest.raises(ValueError, match="N >= 4"):
        tsne.tsne_2d(np.zeros((2, 3)))


def test_tsne_method_switches_at_the_limit(monkeypatch):
    seen = {}

    class FakeTSNE:
        def __init__(self, **kw):
            seen.update(kw)

        def fit(self, x):
            return np.zeros((len(x), 2))

    import openTSNE
    monkeypatch.setattr(openTSNE, "TSNE", FakeTSNE)
    tsne.tsne_2d(np.random.rand(50, 4), perplexity=100)
    assert seen["negative_gradient_method"] == "bh" and seen["perplexity"] == pytest.approx(49 / 3)
    tsne.tsne_2d(np.random.rand(tsne.BH_LIMIT, 2))
    assert seen["negative_gradient_method"] == "fft"


def test_tsne_before_after_draws_one_colour_per_language_and_pair_lines():
    xy = np.random.default_rng(0).normal(size=(6, 2))  # already 2-D: plotted as given
    fig = plots.tsne_before_after(xy, xy + 1, ["en"] * 3 + ["zh"] * 3, pairs=[(0, 3), (1, 4), (2, 5)])
    ax0, ax1 = fig.axes[:2]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["EN", "ZH"]
    assert len(ax0.collections) == 2 and len(ax0.lines) == 3
    assert ax1.get_title() == "+AFP"
    colors = plots.language_colors(["zh", "en", "sw"])
    assert colors["en"] == plots.language_colors(["en"])["en"]  # EN keeps its colour in every figure
    with pytest.raises(ValueError, match="5 language labels for 6 points"):
        plots.tsne_before_after(xy, xy, ["en"] * 5)
    matplotlib.pyplot.close("all")


def test_align_uniform_trajectories_uses_eval_entries_only(tmp_path):
    log = [{"step": s, "loss": 1.0, "mcl": 1.0, "cit": 1.0, "clm": None} for s in range(0, 40, 10)]
    log[0] |= {"align": 1.0, "uniform": -1.0, "retrieval": 0.1}
    log[3] |= {"align": 0.5, "uniform": -2.0, "retrieval": 0.4}
    path = tmp_path / "train_log.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in log) + "\n")
    fig = plots.align_uniform_trajectories({"AFP": plots.read_train_log(path)})
    line = fig.axes[0].lines[0]
    assert list(line.get_xdata()) == [-1.0, -2.0] and list(line.get_ydata()) == [1.0, 0.5]
    with pytest.raises(ValueError, match="no eval entries"):
        plots.align_uniform_trajectories({"x": log[1:3]})
    path.write_text('{"step": 1}\n{bad\n')
    with pytest.raises(ValueError, match="train_log.jsonl:2"):
        plots.read_train_log(path)
    matplotlib.pyplot.close("all")


def test_sweep_error_bars_are_sd_over_seeds():
    df = pd.DataFrame({"layer": [1, 1, 2, 2], "value": [50.0, 52.0, 40.0, 40.0], "model": ["m"] * 4})
    fig = plots.sweep(df, x="layer", hue="model")
    ax = fig.axes[0]
    assert list(ax.lines[0].get_ydata()) == [51.0, 40.0]
    segs = [c for c in ax.collections if hasattr(c, "get_segments")][0].get_segments()
    assert segs[0][:, 1] == pytest.approx([51 - np.sqrt(2), 51 + np.sqrt(2)])  # sample sd of 50, 52
    bars = plots.sweep(df.assign(layer=df.layer.map({1: "mean", 2: "last"})), x="layer")
    assert sorted(p.get_height() for p in bars.axes[0].patches if p.get_height() > 0) == [40.0, 51.0]
    with pytest.raises(ValueError, match="not in the frame"):
        plots.sweep(df, x="alpha")
    matplotlib.pyplot.close("all")


def test_interval_sweep_draws_each_mean_with_its_interval_and_the_chance_line():
    iv = pd.DataFrame({"arch": ["xglm", "xglm", "bloom", "bloom"], "layer": [1, 0, 0, 1],
                       "value": [45.0, 47.0, 50.0, 44.0], "low": [37.0, 40.0, 42.0, 36.0],
                       "high": [53.0, 55.0, 58.0, 52.0], "chance": [46.7] * 4})
    ax = plots.interval_sweep(iv, x="layer").axes[0]
    bars = {c.get_label(): c for c in ax.containers}
    assert set(bars) == {"bloom", "xglm"}
    data_line, _, (segments,) = bars["xglm"].lines
    assert list(data_line.get_xdata()) == [0.0, 1.0] and list(data_line.get_ydata()) == [47.0, 45.0]  # sorted by x
    assert [list(seg[:, 1]) for seg in segments.get_segments()] == [[40.0, 55.0], [37.0, 53.0]]
    chance = [ln for ln in ax.lines if ln.get_label() == "chance"]
    assert len(chance) == 1 and list(chance[0].get_ydata()) == [46.7, 46.7]

    cat = iv.assign(layer=iv.layer.map({0: "mean", 1: "last"}))
    ax = plots.interval_sweep(cat, x="layer", order=["mean", "last", "max"]).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["mean", "last", "max"]
    xs = {c.get_label(): list(c.lines[0].get_xdata()) for c in ax.containers}
    assert xs["bloom"][:2] == pytest.approx([-0.1, 0.9]) and xs["xglm"][:2] == pytest.approx([0.1, 1.1])  # dodged
    with pytest.raises(ValueError, match=r"\['high'\] not in the frame"):
        plots.interval_sweep(iv.drop(columns="high"), x="layer")
    matplotlib.pyplot.close("all")


def test_save_writes_png_and_pdf_atomically(tmp_path):
    fig = plots.relative_gap(pd.DataFrame({"model": ["a", "a", "b"], "language": ["zh"] * 3,
                                           "value": [10.0, 12.0, 5.0]}))
    paths = plots.save(fig, tmp_path / "figs" / "fig1c")
    assert paths["png"].read_bytes()[:4] == b"\x89PNG" and paths["pdf"].read_bytes()[:4] == b"%PDF"
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["fig1c.pdf", "fig1c.png"]
    matplotlib.pyplot.close("all")


def test_a_started_figure_index_lists_each_saved_figure_once(tmp_path):
    from afp_lib.analysis.render import start_figure_index
    folder = tmp_path / "figs"
    start_figure_index(folder, "Figures of notebooks/06_ablation.ipynb, profile mini")
    assert (folder / "index.md").read_text() == ("# Figures of notebooks/06_ablation.ipynb, profile mini\n\n"
                                                 "No figures: this section's results are its tables.\n")
    fig = plots.relative_gap(pd.DataFrame({"model": ["a"], "language": ["zh"], "value": [10.0]}))
    for stem in ("tsne_xglm", "fig1c", "tsne_xglm"):
        plots.save(fig, folder / stem)
    assert (folder / "index.md").read_text().splitlines() == [
        "# Figures of notebooks/06_ablation.ipynb, profile mini", "",
        "- fig1c: [png](fig1c.png), [pdf](fig1c.pdf)", "- tsne_xglm: [png](tsne_xglm.png), [pdf](tsne_xglm.pdf)"]
    start_figure_index(folder, "Figures again")   # a rerun starts over: a figure no longer drawn is not listed
    assert "fig1c" not in (folder / "index.md").read_text()
    matplotlib.pyplot.close("all")
