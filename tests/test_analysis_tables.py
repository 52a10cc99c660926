"""Table builders and records: hand-checkable inputs, the paper block, diffs, rendering and atomic saves."""
import itertools
import math
import re

import numpy as np
import pandas as pd
import pytest

from afp_lib.analysis import tables
from afp_lib.analysis.records import aggregate, load_records, relative_gap, seed_scores
from afp_lib.analysis.render import pm_frame

TASKS = ("xnli", "pawsx", "xcopa", "xstorycloze", "xwinograd")


def rec(model, task, lang, shots, seed, value, metric="acc"):
    return dict(model=model, task=task, language=lang, shots=shots, seed=seed, metric=metric, value=value, n_items=10)


def grid(model, value_fn, langs=("en", "zh"), shots=(0, 5), seeds=(1, 2), tasks=TASKS):
    return [rec(model, t, l, s, seed, value_fn(t, l, s, seed))
            for t, l, s, seed in itertools.product(tasks, langs, shots, seeds)]


def test_aggregate_is_mean_and_sample_std_over_seeds():
    agg = aggregate([rec("m", "xnli", "en", 0, 1, 40.0), rec("m", "xnli", "en", 0, 2, 44.0)])
    row = agg.iloc[0]
    assert (row["mean"], row["std"], row["n_seeds"], row["n_items"]) == (42.0, pytest.approx(math.sqrt(8)), 2, 20)


def test_bad_records_are_named():
    with pytest.raises(ValueError, match=r"record 0: field 'task'='xnlii'.*did you mean 'xnli'"):
        load_records([rec("m", "xnlii", "en", 0, 1, 40.0)])
    with pytest.raises(ValueError, match="outside 0-100"):
        load_records([rec("m", "xnli", "en", 0, 1, 0.4 * 1000)])
    with pytest.raises(ValueError, match="lacks field"):
        load_records([{"model": "m"}])
    with pytest.raises(ValueError, match="duplicate"):
        load_records([rec("m", "xnli", "en", 0, 1, 40.0)] * 2)


def test_records_from_a_jsonl_file_name_the_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"model": "m"}\n{oops\n')
    with pytest.raises(ValueError, match=r"r.jsonl:2: not JSON"):
        load_records(path)


def test_table1_values_average_and_paper_diff():
    # value = 50 + 10 * (lang == zh) + shots + seed: means are exact by hand
    recs = grid("facebook/xglm-564M", lambda t, l, s, seed: 50 + 10 * (l == "zh") + s + seed)
    df = tables.table1(recs)
    ours = df.loc[("ours", "facebook/xglm-564M")]
    assert ours[("xnli", "zh", "5")] == 66.5
    assert ours[("Avg", "", "")] == pytest.approx(50 + 5 + 2.5 + 1.5)
    pm = pm_frame(df).loc[("ours", "facebook/xglm-564M")]
    assert pm[("xnli", "en", "0")] == pytest.approx(math.sqrt(0.5))  # seeds 1, 2
    assert pm[("Avg", "", "")] == pytest.approx(math.sqrt(0.5))
    paper = df.loc[("paper", "XGLM-564M")]
    assert paper[("xnli", "en", "0")] == 45.5 and paper[("Avg", "", "")] == 52.5
    diff = df.loc[("diff", "facebook/xglm-564M - XGLM-564M")]
    assert diff[("xnli", "en", "0")] == pytest.approx(51.5 - 45.5)
    assert diff[("Avg", "", "")] == pytest.approx(59.0 - 52.5)


def test_table1_average_is_nan_when_a_cell_is_missing_and_match_is_explicit():
    recs = [r for r in grid("mini", lambda *a: 50.0) if not (r["task"] == "xcopa" and r["language"] == "en")]
    df = tables.table1(recs, match={"mini": "XGLM-564M + AFP"}, paper_models=["XGLM-564M + AFP"])
    assert np.isnan(df.loc[("ours", "mini"), ("Avg", "", "")])
    assert df.loc[("diff", "mini - XGLM-564M + AFP"), ("xnli", "en", "0")] == pytest.approx(50 - 48.1)
    assert set(df.index.get_level_values("model")) >= {"mini", "XGLM-564M + AFP"}
    assert "XGLM-564M" not in set(df.index.get_level_values("model"))


def test_table3_var_is_population_std_of_language_means():
    langs = ("en", "zh", "th", "tr", "sw")
    level = dict(zip(langs, (60.0, 50.0, 50.0, 40.0, 50.0)))
    recs = grid("m", lambda t, l, s, seed: level[l], langs=langs, tasks=("xnli", "xcopa"), seeds=(1,))
    df = tables.table3(recs)
    assert df.loc[("ours", "m"), ("Var", "", "", "")] == pytest.approx(np.std(list(level.values())))
    assert df.loc[("ours", "m"), ("Avg", "", "", "")] == 50.0
    assert df.loc[("ours", "m"), ("xnli", "Medium", "th", "0")] == 50.0
    # the paper block gets Var from its own cells: XGLM-564M's language means have std 2.434 (README)
    assert df.loc[("paper", "XGLM-564M"), ("Var", "", "", "")] == pytest.approx(2.434, abs=1e-3)


def test_table4_from_and_to_by_hand():
    langs = ("en", "zh", "th")
    bleu = {("en", "zh"): 10.0, ("en", "th"): 20.0, ("zh", "en"): 30.0, ("zh", "th"): 0.0, ("th", "en"): 6.0,
            ("th", "zh"): 2.0}
    recs = [rec("m", "flores", f"{a}-{b}", 5, 1, v, metric="bleu") for (a, b), v in bleu.items()]
    df = tables.table4(recs, languages=langs, paper=False)
    assert df.loc[("ours", "from", "m"), ("en",)] == 15.0
    assert df.loc[("ours", "to", "m"), ("en",)] == 18.0
    assert pm_frame(df).loc[("ours", "to", "m"), ("en",)] == 12.0  # population std of 30 and 6
    assert df.loc[("ours", "from", "m"), ("Avg",)] == pytest.approx(68 / 6)
    with pytest.raises(ValueError, match="pass shots="):
        tables.table4(recs + [rec("m", "flores", "en-zh", 0, 1, 1.0, metric="bleu")])


def test_table7_spread_across_languages_and_pooled_avg():
    values = {"en": 60.0, "zh": 50.0, "sw": 40.0}
    recs = grid("m", lambda t, l, s, seed: values[l] + (10 if t == "xnli" else 0), langs=tuple(values), seeds=(1,))
    df = tables.table7(recs, paper=False)
    assert df.loc[("ours", "m"), ("xnli", "0")] == 60.0
    assert pm_frame(df).loc[("ours", "m"), ("xnli", "0")] == pytest.approx(np.std([70, 60, 50]))
    pooled = [values[l] + (10 if t == "xnli" else 0) for t in TASKS for l in values for _ in (0, 5)]
    assert df.loc[("ours", "m"), ("Avg", "")] == pytest.approx(np.mean(pooled))
    assert pm_frame(df).loc[("ours", "m"), ("Avg", "")] == pytest.approx(np.std(pooled))


def test_table8_and_seed_scores_agree():
    recs = grid("m", lambda t, l, s, seed: 40.0 + seed + (t == "xnli"), shots=(0, 3, 5), seeds=(1, 2, 3))
    df = tables.table8(recs, paper=False)
    assert df.loc[("ours", "m"), ("3",)] == pytest.approx(42.2)  # 40 + mean seed 2 + xnli is 1 of 5 tasks
    assert pm_frame(df).loc[("ours", "m"), ("3",)] == pytest.approx(1.0)
    scores = seed_scores(recs, shots=(3,))
    assert sorted(scores.value) == pytest.approx([41.2, 42.2, 43.2])


def test_per_language_table_subset_recomputes_the_paper_average():
    recs = grid("m", lambda t, l, s, seed: 50.0, langs=("en", "zh"), tasks=("xnli",))
    df = tables.table9(recs, languages=["en", "zh"], paper_models=["XGLM-7.5B"])
    assert df.loc[("paper", "XGLM-7.5B", 0), ("Avg", "")] == pytest.approx((54.1 + 45.4) / 2)
    full = tables.table9(recs, paper_models=["XGLM-7.5B"])
    assert full.loc[("paper", "XGLM-7.5B", 0), ("Avg", "")] == 45.6  # as printed
    assert np.isnan(full.loc[("ours", "m", 0), ("Avg", "")])  # 2 of 15 languages: no average
    with pytest.raises(ValueError, match="no per-language table"):
        tables.per_language(recs, "flores")


def test_relative_gap_by_hand():
    recs = [rec("m", "xnli", "en", 0, 1, 50.0), rec("m", "xnli", "zh", 0, 1, 40.0)]
    gap = relative_gap(recs)
    assert gap.value.tolist() == [20.0] and gap.language.tolist() == ["zh"]


def test_rendering_merges_shots_and_saves_three_files(tmp_path):
    recs = grid("m", lambda t, l, s, seed: 50.0 + s)
    df = tables.table1(recs, paper_models=["XGLM-564M"])
    md = tables.to_markdown(df)
    # ours: mean [95% interval]; † where it contains chance (50% on 10 items does, XNLI 55% > 33.3% does not)
    assert "XNLI EN-0/5" in md and "45.5/41.2" in md
    assert re.search(r"\| 50\.0±0\.0 \[\d+\.\d, \d+\.\d\]†/55\.0±0\.0 \[\d+\.\d, \d+\.\d\] \|", md)
    tex = tables.to_latex(df)
    assert r"$^\dagger$" in tex and "\\begin{tabular}" in tex
    paths = tables.save(df, tmp_path / "sub" / "table1")
    assert sorted(p.suffix for p in paths.values()) == [".csv", ".md", ".tex"]
    long = pd.read_csv(paths["csv"])
    assert {"block", "model", "task", "language", "shots", "value", "pm", "ci_low", "ci_high", "chance"} <= set(long.columns)
    assert not list(tmp_path.rglob(".*tmp*"))  # no temporary file left behind
    assert len(long[(long.block == "ours")]) == 21


def test_every_builder_renders_the_paper_alone():
    for n, build in tables.BUILDERS.items():
        df = build([])
        assert set(df.index.get_level_values("block")) == {"paper"}, n
        assert df.attrs["caption"].startswith(f"Table {n}:")
        assert tables.to_markdown(df).count("\n") > 3
