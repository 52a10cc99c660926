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


def findings(afp=(30.0, 32.0), cit=(10.0, 12.0)):
    probes = pd.DataFrame([{"label": lab, "retrieval": r, "align": 1.0, "uniform": -1.0}
                           for lab, vals in [("AFP", afp), ("CIT", cit), ("vanilla", (9.0,))] for r in vals])
    ppl = pd.DataFrame([{"label": lab, "language": "en", "perplexity": p}
                        for lab, p in [("AFP", 50), ("AFP", 52), ("CIT", 48), ("CIT", 50), ("vanilla", 40)]])
    answers = pd.DataFrame([{"label": lab, "direction": "en->zh", "target_script_share": s}
                            for lab, s in [("AFP", 90), ("AFP", 80), ("CIT", 95), ("CIT", 85), ("vanilla", 0)]])
    return ex.findings_table(probes, ppl, answers)


def test_findings_table_means_and_standard_errors():
    f = findings()
    assert list(f.index) == ["vanilla", "CIT", "AFP"]
    assert f.loc["AFP", "retrieval"] == 31.0 and math.isclose(f.loc["AFP", "retrieval se"], 1.0)
    assert f.loc["vanilla", "retrieval se"] == 0.0 and f.loc["vanilla", "n seeds"] == 1
    assert f.loc["CIT", "ppl en"] == 49.0 and f.loc["AFP", "answers in zh (%)"] == 85.0


def test_describe_findings_states_the_comparison_from_the_numbers():
    text = ex.describe_findings(findings())
    assert "AFP 31.0 ± 1.0" in text and "AFP is clearly better than CIT" in text
    close = ex.describe_findings(findings(afp=(11.0, 13.0)))  # a 1-point gap inside two standard errors
    assert "AFP is better than CIT;" in close and "AFP is clearly better than vanilla" in close
    worse = ex.describe_findings(findings(afp=(5.0, 6.0)))
    assert "AFP is not better than CIT" in worse


def test_trainable_languages_follow_the_training_sources(mirror):
    langs = ex.trainable_languages("mini")
    assert {"zh", "th", "tr", "sw", "de"} <= set(langs) and "en" not in langs


def test_icl_scores_are_cached_apart_from_translation(monkeypatch, tmp_path):
    """A section that asks for the same ICL grid without translation reuses the records file of one that
    asked with it (01 and 06 share the vanilla and AFP scores); translation has its own file."""
    monkeypatch.setenv("AFP_RUNS", str(tmp_path))
    calls = {"icl": [], "translation": []}

    def fake_suite(model, tokenizer, cfg, model_name, out_file, progress=True):
        assert not cfg.translation.langs  # ICL only: translation goes through its own cache file
        calls["icl"].append(out_file)
        return [{"task": "xnli"}]

    def fake_translate(model, tokenizer, pairs, shots, seeds, max_items, model_name, out_file, *args, **kw):
        calls["translation"].append((out_file, list(pairs)))
        return [{"task": "flores"}]

    import afp_lib.eval
    import afp_lib.eval.translation
    monkeypatch.setattr(ex, "model_path", lambda v, profile: "/models/xglm")
    monkeypatch.setattr(ex, "load", lambda v, profile: (None, None))
    monkeypatch.setattr(afp_lib.eval, "run_suite", fake_suite)
    monkeypatch.setattr(afp_lib.eval.translation, "translate_eval", fake_translate)
    v = ex.Variant("vanilla", "xglm")
    with_mt = ex.evaluate(v, "mini", overrides={"langs": ["en", "zh"]})
    icl_only = ex.evaluate(v, "mini", overrides={"shots": [0, 5]}, translation=False)
    other_grid = ex.evaluate(v, "mini", overrides={"shots": [0]}, translation=False)
    assert [r["task"] for r in with_mt] == ["xnli", "flores"] and [r["task"] for r in icl_only] == ["xnli"]
    assert calls["icl"][0] == calls["icl"][1] != calls["icl"][2]
    assert len(calls["translation"]) == 1 and calls["translation"][0][0] not in calls["icl"]
    assert other_grid[0]["model"] == "xglm-mini"
