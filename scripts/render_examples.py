"""Render every table and figure of the analysis layer from SYNTHETIC example inputs.

Nothing here is a result: the records, embeddings and training logs are random numbers shaped like the
real ones, so that the layouts and plots can be checked by eye. Output goes to build/examples/ (git-
ignored), never to results/ or figures/.

    .venv/bin/python scripts/render_examples.py [--out build/examples]
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from afp_lib.analysis import plots, tables  # noqa: E402
from afp_lib.analysis.paper import TIERS  # noqa: E402
from afp_lib.analysis.records import relative_gap, seed_scores  # noqa: E402

LANGS5 = ["en", "zh", "th", "tr", "sw"]
MODELS = {"example/xglm-mini": 0.0, "example/xglm-mini+afp": 3.0, "example/xglm-mini+mcl": -1.5,
          "example/xglm-mini+clm": 1.0, "example/xglm-mini+cit": 2.0}


def example_records(rng) -> list[dict]:
    recs = []
    for model, gain in MODELS.items():
        for task, tiers in TIERS.items():
            for lang in tiers:
                base = 60 - 8 * (lang != "en") - 4 * (tiers[lang] in ("Low", "Ex-Low"))
                for shots, seed in itertools.product((0, 3, 5), (1, 2, 3)):
                    v = base + gain * (lang != "en") + 0.5 * shots / 5 + rng.normal(0, 1.0)
                    recs.append(dict(model=model, task=task, language=lang, shots=shots, seed=seed, metric="acc",
                                     value=float(np.clip(v, 0, 100)), n_items=100))
        for (a, b), shots, seed in itertools.product(itertools.permutations(LANGS5, 2), (0, 1, 5, 10), (1, 2, 3)):
            v = (6 if "en" in (a, b) else 2) + 0.2 * shots + gain / 2 + rng.normal(0, 0.5)
            recs.append(dict(model=model, task="flores", language=f"{a}-{b}", shots=shots, seed=seed,
                             metric="bleu", value=float(max(v, 0)), n_items=100))
    return recs


def sweep_records(rng, name: str, values, best) -> list[dict]:
    """Per-seed records of several runs differing in one setting (the sweeps of Fig. 4/5)."""
    recs = []
    for arch, offset in (("example/xglm-mini", 0.0), ("example/bloom-mini", -1.0)):
        for i, v in enumerate(values):
            penalty = abs(i - values.index(best)) * 0.8
            for task, lang, shots, seed in itertools.product(tables.ICL_TASKS, ("en", "zh"), (0, 5), (1, 2, 3)):
                recs.append(dict(model=arch, task=task, language=lang, shots=shots, seed=seed, metric="acc",
                                 value=float(55 + offset - penalty + rng.normal(0, 1.0)), n_items=100, **{name: v}))
    return recs


def example_embeddings(rng, n=300, dim=64, langs=LANGS5):
    """Vanilla: each language sits in its own region; aligned: translations share one point plus noise."""
    content = rng.normal(size=(n, dim))
    shift = {lang: rng.normal(scale=3.0, size=dim) for lang in langs}
    before = np.concatenate([content + shift[lang] + rng.normal(scale=0.3, size=(n, dim)) for lang in langs])
    after = np.concatenate([content + 0.15 * shift[lang] + rng.normal(scale=0.3, size=(n, dim)) for lang in langs])
    labels = [lang for lang in langs for _ in range(n)]
    return before, after, labels


def example_logs(rng) -> dict[str, list[dict]]:
    logs = {}
    for name, (da, du) in {"AFP": (-0.5, -0.6), "BPre": (0.02, -0.5), "BIT": (-0.15, -0.3)}.items():
        log, a, u = [], 1.2, -1.0
        for step in range(0, 5001, 100):
            entry = {"step": step, "loss": 3.0 - step / 4000, "mcl": 1.0, "cit": 2.0, "clm": None}
            if step % 500 == 0:
                t = step / 5000
                entry |= {"align": a + da * t + rng.normal(0, 0.01), "uniform": u + du * t + rng.normal(0, 0.01),
                          "retrieval": 10 + 30 * t}
            log.append(entry)
        logs[name] = log
    return logs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "build" / "examples"))
    out = Path(ap.parse_args(argv).out)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "README.md").write_text("SYNTHETIC EXAMPLES ONLY (scripts/render_examples.py): random numbers shaped "
                                   "like real records; not results.\n")
    rng = np.random.default_rng(0)
    recs = example_records(rng)
    match = {"example/xglm-mini": "XGLM-564M", "example/xglm-mini+afp": "XGLM-564M + AFP"}
    for n, build in tables.BUILDERS.items():
        kw = {"shots": 5} if n == 4 else {}
        if n in (1, 2, 3, 5, 8):
            kw |= {"match": match}
        if n in (1, 3):
            kw |= {"paper_models": ["XGLM-564M", "XGLM-564M + AFP"]}
        df = build(recs, **kw)
        tables.save(df, out / "tables" / f"table{n}")
        print(tables.to_markdown(df)[:400], "...\n")

    figs = out / "figures"
    before, after, langs = example_embeddings(rng, n=200)
    pair_lines = [(i, i + 200) for i in range(200)]  # en-zh translation pairs
    two = [i for i, lang in enumerate(langs) if lang in ("en", "zh")]
    plots.save(plots.tsne_before_after(before[two], after[two], [langs[i] for i in two], pairs=pair_lines,
                                       titles=("example vanilla (synthetic)", "example +AFP (synthetic)")),
               figs / "fig1ab_tsne")
    plots.save(plots.tsne_grid({f"example {k} (synthetic)": v for k, v in
                                {"vanilla": before, "aligned": after}.items()}, langs), figs / "fig6_tsne_grid")
    plots.save(plots.align_uniform_trajectories(example_logs(rng)), figs / "fig3c_align_uniform")
    for name, values, best, fig in (("layer", [0, 1, 2, 4, 6, 8, 12], 1, "fig4a_layer"),
                                    ("p_src", [0.0, 0.25, 0.5, 0.75, 1.0], 0.5, "fig4b_p_src"),
                                    ("pooling", ["last", "max", "mean"], "mean", "fig5a_pooling"),
                                    ("alpha", [0.5, 1.0, 1.5, 2.0], 1.5, "fig5b_alpha")):
        scores = seed_scores(sweep_records(rng, name, values, best), by=("model", name))
        plots.save(plots.sweep(scores, x=name, y="value", hue="model", ylabel="avg. accuracy, 5 datasets (%)",
                               title="synthetic example"), figs / fig)
    gap = relative_gap([r for r in recs if r["model"] in match], task="xnli", shots=0)
    plots.save(plots.relative_gap(gap[gap.language.isin(LANGS5)], task="XNLI 0-shot (synthetic example)"),
               figs / "fig1c_relative_gap")
    print(f"wrote {len(list(out.rglob('*.*')))} files under {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
