"""The scorecard: verdict rules on synthetic intervals, the no-skill test against chance and the majority-class
rate, each measure on hand-made result files, and the gathered table."""
import math

import numpy as np
import pandas as pd
import pytest

from afp_lib.analysis import intervals as I
from afp_lib.analysis import scorecard as S


@pytest.mark.parametrize("diff,side,no_skill,expected", [
    ((5.0, 1.0, 9.0), ">", [False, False], S.HOLDS),            # wholly above 0
    ((5.0, -1.0, 9.0), ">", [False, False], S.FAILS),           # contains 0
    ((-5.0, -9.0, -1.0), ">", [False, False], S.FAILS),         # the other side
    ((-5.0, -9.0, -1.0), "<", [False, False], S.HOLDS),         # a claimed decrease
    ((0.0, -0.5, 0.5), "<", [], S.FAILS),                       # probes have no chance level
    ((5.0, 1.0, 9.0), ">", [True, True], S.UNTESTABLE),         # both at chance: even a clear gap says nothing
    ((5.0, 1.0, 9.0), ">", [False, True], S.HOLDS),             # one above chance is enough to test
    ((5.0, -1.0, 9.0), ">", [True, False], S.FAILS),
    (None, ">", [], S.UNMEASURED),
    ((float("nan"), 0.0, 1.0), ">", [], S.UNMEASURED),
])
def test_verdict_rule(diff, side, no_skill, expected):
    assert S.verdict(diff, side, no_skill) == expected


@pytest.mark.parametrize("low,chance,majority,expected", [
    (40.0, 33.3, 43.8, True),     # contains the majority rate of a skewed subset, above uniform chance
    (30.0, 33.3, float("nan"), True),   # contains chance (no majority known)
    (10.0, 50.0, 56.2, True),     # wholly below chance (hi is not needed: below is no skill either)
    (52.0, 50.0, 66.7, True),     # between chance and a constant answer's score
    (67.0, 50.0, 66.7, False),    # clears both
    (34.0, 33.3, float("nan"), False),
    (1.0, float("nan"), float("nan"), False),   # no reference (BLEU): never "no skill" by this test
])
def test_no_skill(low, chance, majority, expected):
    assert I.no_skill(low, chance, majority) is expected


def test_disjoint_difference_excludes_zero_exactly_when_the_intervals_do():
    a, b, c = (10.0, 8.0, 12.0), (5.0, 3.0, 7.0), (9.0, 6.0, 11.0)
    d = S.disjoint_difference(a, b)
    assert d == (5.0, 1.0, 9.0) and S.verdict(d, ">") == S.HOLDS
    assert S.verdict(S.disjoint_difference(a, c), ">") == S.FAILS   # overlapping intervals: no order


def records(values: dict, n=200, tasks=("xnli", "xcopa"), langs=("en", "zh"), seeds=(0, 1), arch="xglm"):
    """Accuracy records: values[label] = accuracy (%) of every cell of that label."""
    return pd.DataFrame([{"model": f"{arch}-mini+{lab}", "label": lab, "arch": arch, "task": t, "language": l,
                          "shots": 0, "seed": 0, "train_seed": s, "metric": "acc", "value": v, "n_items": n}
                         for lab, v in values.items() for t in tasks for l in langs for s in seeds])


CLAIM = dict(id="X", section="ablation", measure="icl", source="records.csv", a={"label": "AFP"},
             b={"label": "vanilla"}, cells={"task": ("xnli", "xcopa")}, side=">", claim="AFP improves ICL")


def test_icl_measure_on_synthetic_records():
    rows = S.measure_icl(CLAIM, records({"AFP": 80.0, "vanilla": 60.0}), n_boot=300)
    (row,) = rows
    est, lo, hi = row["difference"]
    assert est == pytest.approx(20.0) and 0 < lo < 20 < hi
    assert row["no_skill"] == [False, False]
    assert S.verdict(row["difference"], ">", row["no_skill"]) == S.HOLDS
    same = S.measure_icl(CLAIM, records({"AFP": 60.0, "vanilla": 60.0}), n_boot=300)[0]
    assert same["difference"][1] < 0 < same["difference"][2]
    assert S.verdict(same["difference"], ">", same["no_skill"]) == S.FAILS
    # both near chance (xnli 33.3, xcopa 50: mean 41.7) on few items: not testable, whatever the estimate
    few = S.measure_icl(CLAIM, records({"AFP": 50.0, "vanilla": 40.0}, n=10, seeds=(0,)), n_boot=300)[0]
    assert S.verdict(few["difference"], ">", few["no_skill"]) == S.UNTESTABLE
    assert "chance 41.7" in few["measured"]


def test_icl_measure_uses_the_majority_rate_of_the_items(monkeypatch):
    """A skewed subset: a constant answer scores 66.7%, so 62% is no skill although it clears 50% chance."""
    monkeypatch.setattr(I, "majority_rate", lambda task, lang, m: 66.7)
    rec = records({"AFP": 62.0, "vanilla": 55.0}, tasks=("pawsx",), n=100).assign(max_items=100)
    row = S.measure_icl({**CLAIM, "cells": {"task": ("pawsx",)}}, rec, n_boot=300)[0]
    assert row["no_skill"] == [True, True] and "majority 66.7" in row["measured"]


def test_gap_measure_and_probe_measure():
    rec = pd.concat([records({"AFP": 60.0, "vanilla": 60.0}, langs=("en",)),
                     records({"AFP": 60.0, "vanilla": 40.0}, langs=("zh",))])
    claim = dict(CLAIM, measure="gap", languages=("en", "zh"), side="<")
    row = S.measure_gap(claim, rec, n_boot=300)[0]
    assert row["difference"][0] == pytest.approx(-20.0) and row["difference"][2] < 0   # AFP's gap 0, vanilla's 20
    f = pd.DataFrame({"retrieval": [30.0, 5.0], "retrieval lo": [27.0, 3.0], "retrieval hi": [33.0, 7.0],
                      "uniform": [-1.0, -1.1], "uniform se": [0.02, 0.0], "n seeds": [2, 1]}, index=["AFP", "vanilla"])
    (r,) = S.measure_probe(dict(CLAIM, measure="probe", a="AFP", b="vanilla", column="retrieval"), f)
    assert r["difference"] == (25.0, 20.0, 30.0)
    (u,) = S.measure_probe(dict(CLAIM, measure="probe", a="AFP", b="vanilla", column="uniform", side="<"), f)
    assert S.verdict(u["difference"], "<", u["no_skill"]) == S.FAILS   # uniformity worsened: -1.0 > -1.1
    assert "mean ± 1.96 se" in u["measured"]
    assert S.measure_probe(dict(CLAIM, measure="probe", a="MCL", b="vanilla", column="retrieval"), f) == []
    one = f.assign(**{"n seeds": [1, 1]})   # one training seed of AFP: se 0 is no spread, so no verdict
    (u1,) = S.measure_probe(dict(CLAIM, measure="probe", a="AFP", b="vanilla", column="uniform", side="<"), one)
    assert S.verdict(u1["difference"], "<", u1["no_skill"]) == S.UNTESTABLE and "no spread" in u1["measured"]
    (r1,) = S.measure_probe(dict(CLAIM, measure="probe", a="AFP", b="vanilla", column="retrieval"), one)
    assert S.verdict(r1["difference"], ">", r1["no_skill"]) == S.HOLDS    # a bootstrap interval needs no seeds


def test_table_measure_bleu_floor():
    t = pd.DataFrame([{"block": "ours", "model": m, "direction": "Avg", "shots": 0, "value": v, "ci_low": lo,
                       "ci_high": hi} for m, v, lo, hi in [("xglm-mini", 0.0, 0.0, 0.0), ("xglm-mini+AFP", 0.2, 0.1, 0.3),
                                                          ("bloom-mini", 2.0, 1.5, 2.5), ("bloom-mini+AFP", 6.0, 4.0, 8.0)]])
    claim = dict(CLAIM, measure="table", source="table2.csv", cells={"direction": "Avg", "shots": 0})
    rows = {r["arch"]: r for r in S.measure_table(claim, t)}
    assert S.verdict(rows["xglm"]["difference"], ">", rows["xglm"]["no_skill"]) == S.UNTESTABLE   # below 1 BLEU
    assert S.verdict(rows["bloom"]["difference"], ">", rows["bloom"]["no_skill"]) == S.HOLDS


def test_claims_are_valid_data_and_bad_claims_are_named():
    S.check_claims()
    assert {c["section"] for c in S.CLAIMS} == {"bilingual", "mcl_layer", "p_src", "multilingual", "all_languages",
                                               "ablation", "appendix"}
    with pytest.raises(ValueError, match=r"claim 0 \(X\).*side"):
        S.check_claims([dict(CLAIM, side="?")])
    with pytest.raises(ValueError, match="duplicate id"):
        S.check_claims([CLAIM, CLAIM])
    with pytest.raises(ValueError, match="unknown keys"):
        S.check_claims([dict(CLAIM, rule="x")])


def test_section_scorecard_save_and_gather(tmp_path, monkeypatch):
    from afp_lib import paths
    monkeypatch.setattr(paths, "results_dir", lambda section="": tmp_path / section)
    folder = tmp_path / "mini" / "ablation"
    folder.mkdir(parents=True)
    rec = records({"vanilla": 60.0, "w/ MCL": 40.0, "w/ CLM": 61.0, "w/ CIT": 75.0, "w/ AFP": 90.0},
                  tasks=S.ICL, n=400)
    rec.to_csv(folder / "records.csv", index=False)
    card = S.section_scorecard("ablation", folder, n_boot=300)
    verdicts = dict(zip(card["id"], card["verdict"]))
    assert verdicts == {"T8-MCL": S.HOLDS, "T8-CLM": S.FAILS, "T8-CIT": S.HOLDS, "T8-CIT>CLM": S.HOLDS,
                        "T8-AFP": S.HOLDS}
    text = S.save(card, folder, "ablation")
    assert text.startswith("Verdict rule") and "**does not hold**" in text
    assert pd.read_csv(folder / "scorecard.csv")["verdict"].tolist() == card["verdict"].tolist()
    missing = S.section_scorecard("bilingual", tmp_path / "mini" / "bilingual", n_boot=100)
    assert set(missing["verdict"]) == {S.UNMEASURED}
    path = S.gather("mini")
    md = path.read_text(encoding="utf-8")
    assert path == tmp_path / "mini" / "scorecard.md"
    assert "## ablation" in md and "T8-CIT>CLM" in md and "holds 4, does not hold 1" in md
    assert "Not run yet in this profile: bilingual" in md
    with pytest.raises(KeyError, match="no claim"):
        S.section_scorecard("ablation", folder, ids=["T1-avg"])


def test_majority_rate_of_a_real_subset():
    """The smoke XNLI subset (6 items): the rate is a multiple of 1/6 and at least uniform chance."""
    rate = I.majority_rate("xnli", "en", 6)
    assert rate >= 100 / 3 and math.isclose(rate * 6 / 100, round(rate * 6 / 100))
    rec = pd.DataFrame({"task": ["xnli", "xnli"], "language": ["en", "en"], "max_items": [6, np.nan]})
    rates = I.majority_rates(rec)
    assert rates.iloc[0] == rate and rates.iloc[1] >= 100 / 3    # NaN max_items: every item
    assert I.majority_rates(rec.drop(columns="max_items")).isna().all()


def test_generated_findings_agree_with_the_scorecard_on_the_committed_results():
    """The findings sentences of notebook 01 and the scorecard read the same findings.csv: "as in the paper's
    Fig. 3c (on …)" exactly where the uniformity claim holds there, "AFP is above vanilla" exactly where the
    retrieval claim holds (whatever the numbers of a regenerated profile)."""
    from afp_lib.analysis.findings import describe_findings
    from afp_lib.paths import results_dir
    folder = results_dir("mini/bilingual")
    if not (folder / "findings.csv").is_file():
        pytest.skip("no committed mini findings")
    f = pd.read_csv(folder / "findings.csv", index_col=0)
    text = describe_findings(f)
    card = S.section_scorecard("bilingual", folder, ids=["F3c-uniform-dev", "F3c-uniform-tatoeba", "MCL-dev",
                                                         "MCL-tatoeba"])
    v = dict(zip(card["id"], card["verdict"]))
    dev_line, tatoeba_line = (next(line for line in text.splitlines() if key in line)
                              for key in ("In-domain held-out pairs", "**Alignment** (Tatoeba"))
    assert ("as in the paper's Fig. 3c (on the dev pairs)" in dev_line) == (v["F3c-uniform-dev"] == S.HOLDS)
    assert ("as in the paper's Fig. 3c (on Tatoeba)" in tatoeba_line) == (v["F3c-uniform-tatoeba"] == S.HOLDS)
    assert ("AFP is above vanilla" in dev_line) == (v["MCL-dev"] == S.HOLDS)
    retrieval_line = next(line for line in text.splitlines() if "Bitext retrieval" in line)
    assert ("AFP is above vanilla" in retrieval_line) == (v["MCL-tatoeba"] == S.HOLDS)


def test_findings_say_no_order_when_the_intervals_overlap():
    from afp_lib.analysis.findings import describe_findings
    f = pd.DataFrame({"uniform": [-1.20, -1.22], "uniform se": [0.0, 0.05], "n seeds": [1, 2],
                      "ppl en": [100.0, 104.0], "ppl en se": [0.0, 5.0]}, index=["vanilla", "MCL"])
    text = describe_findings(f)
    assert "MCL does not move it (-0.02)" in text and "as in the paper" not in text
    assert "is not shown on Tatoeba" in text
    assert "MCL alone does not measurably change it" in text


def test_the_mean_pooling_claim_reads_the_mean_without_the_bos(tmp_path):
    """F5a-mean names "pooling mean" or "pooling mean_skip_bos" (mini's pooling on Gemma): a section that sweeps
    either is measured, and the compared column says both names."""
    claim = next(c for c in S.CLAIMS if c["id"] == "F5a-mean")
    for mean in ("pooling mean", "pooling mean_skip_bos"):
        rec = records({mean: 70.0, "pooling max": 55.0})
        (row,) = S.measure_icl(claim, rec, n_boot=300)
        assert row["difference"][0] == pytest.approx(15.0) and S.verdict(row["difference"], ">", row["no_skill"]) == S.HOLDS
    rec.to_csv(tmp_path / "records.csv", index=False)
    card = S.section_scorecard("appendix", tmp_path, ids=["F5a-mean"], n_boot=300)
    assert card.iloc[0]["a"] == "pooling mean or pooling mean_skip_bos" and card.iloc[0]["verdict"] == S.HOLDS
