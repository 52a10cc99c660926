"""The one override syntax and the one merge rule of params.yaml (afp_lib.config)."""
import pytest
import yaml

from afp_lib.config import apply_overrides, load_section, merge_rule

PARAMS = {
    "train": {"base": {"lr": 1.0, "mcl": {"layer": 1, "pooling": "mean"}}, "mini": {"mcl": {"layer": 2}}},
    "bilingual": {"base": {"seeds": [0], "methods": {"vanilla": None, "AFP": ["objective=afp"], "MCL": ["objective=mcl"]},
                           "eval": {"langs": ["en", "zh"], "shots": [0, 5]}},
                  "smoke": {"methods": {"AFP": ["objective=afp"]}, "eval": {"shots": [0]}}},
}


def test_config_sections_merge_deeply_and_section_blocks_replace(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(PARAMS), encoding="utf-8")
    assert merge_rule("train") == "deep" and merge_rule("bilingual") == "replace"
    assert load_section("train", "mini", path) == {"lr": 1.0, "mcl": {"layer": 2, "pooling": "mean"}}
    smoke = load_section("bilingual", "smoke", path)
    assert smoke["methods"] == {"AFP": ["objective=afp"]}    # the profile's runs, not base's plus these
    assert smoke["eval"] == {"shots": [0]} and smoke["seeds"] == [0]
    assert load_section("bilingual", "mini", path) == PARAMS["bilingual"]["base"]


def test_overrides_as_strings_or_as_a_tree_are_the_same():
    cfg = {"a": 1, "mcl": {"layer": 1, "pooling": "mean"}, "translation": {"langs": ["en"], "shots": [0, 5]}}
    strings = apply_overrides(cfg, ["mcl.layer=2", "translation.langs=[en, zh]", "new.key=x"])
    tree = apply_overrides(cfg, {"mcl": {"layer": 2}, "translation": {"langs": ["en", "zh"]}, "new": {"key": "x"}})
    assert strings == tree == {"a": 1, "mcl": {"layer": 2, "pooling": "mean"},
                               "translation": {"langs": ["en", "zh"], "shots": [0, 5]}, "new": {"key": "x"}}
    assert apply_overrides(cfg, None) == cfg and cfg["mcl"]["layer"] == 1   # never changes its input
    with pytest.raises(TypeError, match="list of key.sub=value strings"):
        apply_overrides(cfg, "mcl.layer=2")
    with pytest.raises(ValueError, match="must look like key.sub=value"):
        apply_overrides(cfg, ["mcl.layer"])


def test_every_config_loader_takes_the_same_overrides():
    from afp_lib.analysis.config import analysis_config
    from afp_lib.eval import load_eval_config
    from afp_lib.trainer import load_train_config
    from afp_lib.world import load_world_config
    eval_cfg = load_eval_config("mini", overrides=["translation.langs=[en, th]", "shots=[0]"])
    assert eval_cfg == load_eval_config("mini", overrides={"translation": {"langs": ["en", "th"]}, "shots": [0]})
    assert eval_cfg.translation.shots == load_eval_config("mini").translation.shots   # a leaf, not the whole map
    assert analysis_config("mini", ["tsne.n_sentences=7"]) == analysis_config("mini", {"tsne": {"n_sentences": 7}})
    assert analysis_config("mini", ["tsne.n_sentences=7"]).tsne.seed == analysis_config("mini").tsne.seed
    assert load_world_config("smoke", ["pretrain.steps=3"]) == load_world_config("smoke", {"pretrain": {"steps": 3}})
    assert load_train_config("mini", ["mcl.layer=2"]) == load_train_config("mini", {"mcl": {"layer": 2}})
