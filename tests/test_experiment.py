import math

import pandas as pd
import pytest

from afp_lib import experiment as ex


def test_variants_train_each_aligned_method_once_per_seed():
    vs = ex.variants({"vanilla": None, "AFP": ["objective=afp"]}, ["xglm", "bloom"], [0, 1], common=["data.langs=[zh]"])
    assert [v.name("mini") for v in vs] == ["xglm-mini", "xglm-mini+AFP#s0", "xglm-mini+AFP#s1",
                                            "bloom-mini", "bloom-mini+AFP#s0", "bloom-mini+AFP#s1"]
    assert vs[1].train == ("data.langs=[zh]", "objective=afp") and vs[0].vanilla
    assert vs[1].display("mini") == vs[2].display("mini") == "xglm-mini+AFP"  # seeds average under one name


def test_same_overrides_resolve_to_the_same_run_config():
    """Notebooks share runs: the same overrides in another order give the same training config."""
    a = ex.train_config(ex.Variant("AFP", "xglm", ("objective=afp", "data.langs=[zh]")), "mini")
    b = ex.train_config(ex.Variant("w/ AFP", "xglm", ("data.langs=[zh]", "objective=afp")), "mini")
    assert a == b


@pytest.mark.parametrize("text,lang,share", [("我们 ok", "zh", 0.5), ("hello", "en", 1.0), ("สวัสดี", "th", 1.0),
                                              ("", "zh", 0.0), ("12 !", "en", 0.0)])
def test_script_share(text, lang, share):
    assert math.isclose(ex.script_share(text, lang), share)


def findings(afp=(30.0, 32.0), cit=(10.0, 12.0), uniform=None, n=600):
    """Two seeds of AFP and CIT, one vanilla model; retrieval over n queries per seed."""
    from afp_lib.analysis.intervals import bernoulli
    uniform = uniform or {"vanilla": -1.2, "AFP": -0.67, "CIT": -1.25}
    probes = pd.DataFrame([{"label": lab, "retrieval": r, "align": 1.0, "uniform": uniform[lab],
                            "retrieval items": bernoulli(r, n)}
                           for lab, vals in [("AFP", afp), ("CIT", cit), ("vanilla", (9.0,))] for r in vals])
    ppl = pd.DataFrame([{"label": lab, "language": "en", "perplexity": p}
                        for lab, p in [("AFP", 50), ("AFP", 52), ("CIT", 48), ("CIT", 50), ("vanilla", 40)]])
    answers = pd.DataFrame([{"label": lab, "direction": d, "answered": a, "target_script_share": s}
                            for lab, d, a, s in [("AFP", "en->zh", 100, 90), ("AFP", "en->zh", 100, 80),
                                                 ("CIT", "en->zh", 100, 95), ("CIT", "en->zh", 90, 85),
                                                 ("vanilla", "en->zh", 0, float("nan")),
                                                 ("AFP", "zh->en", 100, 1.0), ("AFP", "zh->en", 100, 0.0),
                                                 ("CIT", "zh->en", 100, 0.0), ("CIT", "zh->en", 100, 0.0),
                                                 ("vanilla", "zh->en", 50, 0.0)]])
    return ex.findings_table(probes, ppl, answers)


def test_findings_table_means_standard_errors_and_intervals():
    f = findings()
    assert list(f.index) == ["vanilla", "CIT", "AFP"]
    assert f.loc["AFP", "retrieval"] == 31.0 and math.isclose(f.loc["AFP", "retrieval se"], 1.0)
    assert f.loc["vanilla", "retrieval se"] == 0.0 and f.loc["vanilla", "n seeds"] == 1
    assert f.loc["AFP", "retrieval lo"] < 30.0 and f.loc["AFP", "retrieval hi"] > 32.0   # seeds and items
    assert f.loc["CIT", "ppl en"] == 49.0 and f.loc["AFP", "answers in zh (%)"] == 85.0
    assert f.loc["CIT", "answered en->zh (%)"] == 95.0 and math.isnan(f.loc["vanilla", "answers in zh (%)"])


def test_findings_intervals_skip_seeds_without_a_probe():
    """As in notebook 01: the vanilla model has one Tatoeba probe but a dev probe per findings seed."""
    from afp_lib.analysis.intervals import bernoulli
    probes = pd.DataFrame([{"label": "vanilla", "train_seed": 0, "retrieval": 2.0, "retrieval items": bernoulli(2.0, 600),
                            "dev retrieval": 2.0, "dev retrieval items": bernoulli(2.0, 800)},
                           {"label": "vanilla", "train_seed": 1, "retrieval": float("nan"), "retrieval items": float("nan"),
                            "dev retrieval": 3.0, "dev retrieval items": bernoulli(3.0, 800)}])
    f = ex.findings_table(probes, pd.DataFrame(columns=["label", "language", "perplexity"]),
                          pd.DataFrame(columns=["label", "direction", "answered", "target_script_share"]))
    assert f.loc["vanilla", "retrieval lo"] < 2.0 < f.loc["vanilla", "retrieval hi"]
    assert f.loc["vanilla", "dev retrieval"] == 2.5 and f.loc["vanilla", "dev retrieval lo"] < 2.0
    assert f.loc["vanilla", "dev retrieval hi"] > 3.0


def test_describe_findings_words_follow_the_intervals():
    text = ex.describe_findings(findings())
    assert "AFP 31.0 [" in text and "AFP is above CIT" in text
    close = ex.describe_findings(findings(afp=(11.0, 13.0)))  # overlapping intervals
    assert "AFP is indistinguishable from CIT;" in close
    worse = ex.describe_findings(findings(afp=(5.0, 6.0)))
    assert "AFP is below CIT" in worse
    many = ex.describe_findings(findings(afp=(20.0, 22.0)))
    few = ex.describe_findings(findings(afp=(20.0, 22.0), n=40))   # the same rates over 40 queries
    assert "AFP is above vanilla" in many and "AFP is indistinguishable from vanilla" in few


def test_describe_findings_says_when_uniformity_worsens():
    text = ex.describe_findings(findings())
    assert "AFP worsens it (+0.53)" in text and "the opposite of the paper's Fig. 3c" in text
    better = ex.describe_findings(findings(uniform={"vanilla": -1.2, "AFP": -1.5, "CIT": -1.25}))
    assert "AFP improves it (-0.30), as in the paper's Fig. 3c" in better and "opposite" not in better


def test_describe_findings_tests_nothing_with_one_training_seed():
    """With one seed per trained method the standard errors are 0: the words must not call a move beyond noise
    (the scorecard's rule), while retrieval, bootstrapped over pairs, is still compared."""
    f = findings(uniform={"vanilla": -1.2, "AFP": -1.5, "CIT": -1.25})
    one = f.copy()
    one["n seeds"] = 1
    text = ex.describe_findings(one)
    assert "AFP moves it by -0.30" in text and "no spread to test the paper's Fig. 3c" in text
    assert "as in the paper's Fig. 3c" not in text and "improves it" not in text
    assert "AFP is above CIT" in text  # the bootstrap interval over pairs needs no second seed
    assert "as in the paper's Fig. 3c" in ex.describe_findings(f)  # two seeds: tested as before


def test_findings_text_and_scorecard_share_the_one_seed_rule():
    """Without an "n seeds" column the seeds are unknown: the findings text and the scorecard both call that no
    spread (they used to differ, the text testing the move and the scorecard not)."""
    from afp_lib.analysis import scorecard as S
    from afp_lib.analysis.intervals import has_seed_spread
    f = findings(uniform={"vanilla": -1.2, "AFP": -1.5, "CIT": -1.25}).drop(columns="n seeds")
    assert not has_seed_spread(f, "AFP") and has_seed_spread(f, "vanilla")
    assert "no spread to test the paper's Fig. 3c" in ex.describe_findings(f)
    claim = {"id": "t", "section": "bilingual", "measure": "probe", "source": "findings.csv", "a": "AFP",
             "b": "vanilla", "column": "uniform", "side": "<", "claim": "t"}
    (u,) = S.measure_probe(claim, f)
    assert S.verdict(u["difference"], "<", u["no_skill"]) == S.UNTESTABLE and "no spread" in u["measured"]
    two = f.assign(**{"n seeds": 2})
    assert has_seed_spread(two, "AFP") and "no spread" not in ex.describe_findings(two)


def test_describe_findings_dev_pairs_name_every_baseline_and_the_ratio_to_vanilla():
    """Issue 18's criteria in words: AFP against BPre, CIT and vanilla on the dev pairs, AFP/vanilla, and
    AFP's perplexity cost against vanilla."""
    from afp_lib.analysis.intervals import bernoulli
    dev = {"AFP": (28.0, 30.0), "CIT": (6.0, 7.0), "BPre": (6.5, 7.5), "MCL": (20.0, 21.0), "vanilla": (6.0, 8.0)}
    probes = pd.DataFrame([{"label": lab, "retrieval": 1.0, "retrieval items": bernoulli(1.0, 600),
                            "dev retrieval": r, "dev retrieval items": bernoulli(r, 800), "dev align": 1.0,
                            "dev uniform": -1.0} for lab, vals in dev.items() for r in vals])
    ppl = pd.DataFrame([{"label": lab, "language": "zh", "perplexity": p}
                        for lab, p in [("AFP", 110), ("AFP", 130), ("CIT", 100), ("MCL", 400), ("vanilla", 100)]])
    answers = pd.DataFrame(columns=["label", "direction", "answered", "target_script_share"])
    text = ex.describe_findings(ex.findings_table(probes, ppl, answers))
    assert "BPre 7.0 [" in text and "AFP is above BPre; AFP is above CIT; AFP is above vanilla" in text
    assert "(AFP/vanilla = 4.1x)" in text
    assert "MCL alone raises it; AFP's cost +20%." in text


def test_describe_findings_counts_empty_answers_apart_in_both_directions():
    text = ex.describe_findings(findings())
    assert "EN→ZH" in text and "ZH→EN" in text
    assert "vanilla answers 0 ± 0% (no answer to score)" in text
    assert "CIT answers 95 ± 5%, of which 90 ± 5% in Chinese" in text
    assert "vanilla answers 50 ± 0%, of which 0 ± 0% in English" in text


def test_trainable_languages_follow_the_training_sources(mirror):
    langs = ex.trainable_languages("mini")
    assert {"zh", "th", "tr", "sw", "de"} <= set(langs) and "en" not in langs


def test_cells_are_shared_between_sections_and_scored_once(monkeypatch, tmp_path):
    """Every (task, language, shots, seed, setting) of a model is one cache file: a section that asks for a
    grid another one scored (01 and 06 share the vanilla and AFP scores, also under other labels) reads it,
    and only the cells it adds are scored; translation cells are apart from ICL ones."""
    monkeypatch.setenv("AFP_RUNS", str(tmp_path))
    calls = {"icl": [], "translation": []}

    def fake_icl(model, tokenizer, tasks, langs, shots, seeds, model_name, out_file, **kw):
        calls["icl"].append((list(shots), list(seeds)))
        recs = [{"model": model_name, "task": t, "language": c, "shots": k, "seed": s, "demo_lang": c,
                 "demos": "random", "connectors": "english", "max_items": kw["max_items"], "version": 1,
                 "metric": "acc", "value": 50.0 + k} for t in tasks for c in langs for k in shots for s in seeds
                if out_file.done({"task": t, "language": c, "shots": k, "seed": s, "demo_lang": c, "demos": "random",
                                  "connectors": "english", "max_items": kw["max_items"], "version": 1}) is None]
        out_file.add(recs)
        return recs

    def fake_translate(model, tokenizer, pairs, shots, seeds, max_items, model_name, out_file, *args, **kw):
        calls["translation"].append(list(pairs))
        out_file.add([{"model": model_name, "task": "flores", "language": f"{a}-{b}", "shots": k, "seed": s,
                       "demo_lang": a, "demos": "random", "connectors": "english", "max_items": max_items,
                       "version": 1, "metric": "bleu", "value": 1.0} for a, b in pairs for k in shots for s in seeds])

    import afp_lib.eval
    import afp_lib.eval.translation
    monkeypatch.setattr(ex, "model_ref", lambda v, profile: "/models/xglm")
    monkeypatch.setattr(ex, "load", lambda v, profile: (None, None))
    monkeypatch.setattr(afp_lib.eval, "evaluate", fake_icl)
    monkeypatch.setattr(afp_lib.eval.translation, "translate_eval", fake_translate)
    grid = {"tasks": ["xcopa"], "langs": ["zh"], "seeds": [0]}
    with_mt = ex.evaluate(ex.Variant("AFP", "xglm", ("objective=afp",)), "mini", overrides={**grid, "shots": [0]})
    assert [(r["task"], r["model"], r["run"]) for r in with_mt] == [("xcopa", "xglm-mini+AFP", "xglm-mini+AFP#s0"),
                                                                    *[("flores", "xglm-mini+AFP", "xglm-mini+AFP#s0")] * 6]
    n = len(calls["icl"])
    same = ex.evaluate(ex.Variant("w/ AFP", "xglm", ("objective=afp",)), "mini", overrides={**grid, "shots": [0]},
                       translation=False)
    assert len(calls["icl"]) == n and [r["value"] for r in same] == [50.0] and same[0]["label"] == "w/ AFP"
    more = ex.evaluate(ex.Variant("AFP", "xglm", ("objective=afp",)), "mini", overrides={**grid, "shots": [0, 5]},
                       translation=False)
    assert [r["value"] for r in more] == [50.0, 55.0] and len(calls["icl"]) == n + 1
    assert len(calls["translation"]) == 1
    assert len(list((tmp_path / "eval").rglob("*.jsonl"))) == 2 + 6   # xcopa 0- and 5-shot, 6 FLORES cells
