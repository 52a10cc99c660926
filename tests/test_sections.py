"""A section's models are declared once (params.yaml `<section>.runs`, afp_lib.sections): the notebooks'
own code trains exactly the runs of the paper plan, under every profile; the group syntax does what
afp_lib/sections.py says."""
import json
from pathlib import Path

import pytest

from afp_lib import sections
from afp_lib.experiment import train_config
from afp_lib.plan.resolve import _base_model, resolve_plan
from afp_lib.sections import NOTEBOOKS, SECTIONS, Variant, section_runs, section_variants
from afp_lib.trainer.runs import run_key

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("profile", ["smoke", "mini", "paper"])
@pytest.mark.parametrize("name", SECTIONS)
def test_plan_trains_exactly_what_the_notebook_asks_for(name, profile, run_notebook, mirror):
    """Run the notebook's code with every model call recorded: the aligned models it asks for are the plan's
    runs of that section (same run-cache keys, so the same folders), its vanilla models the plan's too."""
    _, used = run_notebook(name, profile)
    assert used, f"notebook {name} asked for no model"
    plan = resolve_plan(profile, sections=(name,))
    keys = {run_key(train_config(v, profile), _base_model(profile, v.arch)) for v in used if not v.vanilla}
    assert keys == {r.key for r in plan.runs}
    declared = section_variants(name, profile)
    assert set(used) == set(declared)                       # label, arch, overrides and seed
    assert {v.arch for v in used if v.vanilla} == {v.arch for v in declared if v.vanilla}
    assert {_base_model(profile, v.arch) for v in used if v.vanilla} == set(plan.vanilla)


@pytest.mark.parametrize("name", SECTIONS)
def test_notebooks_are_stored_without_outputs(name):
    nb = json.loads((ROOT / "notebooks" / NOTEBOOKS[name]).read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    setup = [c for c in code if "ex.setup(" in "".join(c["source"])]
    assert len(setup) == 1 and code.index(setup[0]) == 1   # after the parameters cell: one setup call


BLOCK = {"archs": ["xglm", "bloom"], "seeds": [0, 1], "other_seeds": [3, 4], "train": ["data.langs=[zh]"],
         "methods": {"vanilla": None, "AFP": ["objective=afp"]}, "layers": [0, 2], "langs": ["zh", "th"],
         "small": ["bloom"]}


def runs_of(monkeypatch, runs: dict, **block) -> dict:
    monkeypatch.setattr(sections, "section", lambda name, profile: {**BLOCK, **block, "runs": runs})
    return section_runs("toy", "smoke")


def test_methods_group_each_arch_label_and_seed(monkeypatch):
    out = runs_of(monkeypatch, {"m": {"methods": "methods"}, "f": {"methods": "methods", "seeds": "other_seeds",
                                                                    "first": ["arch", "seed"]}})
    assert [(v.label, v.arch, v.seed, v.train) for v in out["m"]] == [
        ("vanilla", "xglm", 0, None), ("AFP", "xglm", 0, ("data.langs=[zh]", "objective=afp")),
        ("AFP", "xglm", 1, ("data.langs=[zh]", "objective=afp")),
        ("vanilla", "bloom", 0, None), ("AFP", "bloom", 0, ("data.langs=[zh]", "objective=afp")),
        ("AFP", "bloom", 1, ("data.langs=[zh]", "objective=afp"))]
    assert [(v.label, v.arch, v.seed) for v in out["f"]] == [("vanilla", "xglm", 0), ("AFP", "xglm", 3)]


def test_sweep_group_labels_meta_vanilla_and_archs_for(monkeypatch):
    out = runs_of(monkeypatch, {"l": {"sweep": "layers", "set": "mcl.layer"},
                                "p": {"sweep": "layers", "set": "data.policy", "label": "{}", "vanilla": True,
                                      "langs": True, "archs_for": {2: "small"}}}, seeds=[0])
    assert [(v.label, v.arch, v.train, v.meta) for v in out["l"]] == [
        ("layer 0", "xglm", ("data.langs=[zh]", "mcl.layer=0"), {"layer": 0}),
        ("layer 2", "xglm", ("data.langs=[zh]", "mcl.layer=2"), {"layer": 2}),
        ("layer 0", "bloom", ("data.langs=[zh]", "mcl.layer=0"), {"layer": 0}),
        ("layer 2", "bloom", ("data.langs=[zh]", "mcl.layer=2"), {"layer": 2})]
    # per arch: its vanilla model first; value 2 only on the archs listed under `small`
    assert [(v.label, v.arch) for v in out["p"]] == [("vanilla", "xglm"), ("0", "xglm"), ("vanilla", "bloom"),
                                                     ("0", "bloom"), ("2", "bloom")]
    assert out["p"][-1].train == ("data.langs=[zh]", "data.langs=[zh, th]", "data.policy=2")


def test_langs_all_is_every_trainable_language(monkeypatch):
    monkeypatch.setattr(sections, "trainable_languages", lambda profile: ["ar", "zh"])
    out = runs_of(monkeypatch, {"a": {"methods": {"AFP": []}, "langs": True}}, langs="all", train=[], seeds=[0])
    assert [v.train for v in out["a"]] == [("data.langs=[ar, zh]",)] * 2


@pytest.mark.parametrize("group", [{"methods": "methods", "sweep": "layers"}, {"layers": "layers"},
                                   {"methods": "methods", "seed": "other_seeds"}])
def test_a_malformed_group_names_the_section_and_group(monkeypatch, group):
    with pytest.raises(ValueError, match=r"toy\.runs\.bad"):
        runs_of(monkeypatch, {"bad": group})


def test_variant_names():
    v = Variant("AFP", "xglm", ("objective=afp",), 1)
    assert (v.display("mini"), v.name("mini"), Variant("vanilla", "bloom").name("mini")) == (
        "xglm-mini+AFP", "xglm-mini+AFP#s1", "bloom-mini")


def test_dvc_stages_follow_the_declarations():
    """dvc.yaml cannot interpolate a list into `deps`: its section stages and the scorecard's inputs must be the
    converted models of params.yaml `models` and afp_lib.sections.NOTEBOOKS. The mini world builds no models
    (its sections align the pretrained ones), so a section's only world dep is the corpus the probes read."""
    import yaml

    from afp_lib.world import load_world_config
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert load_world_config("mini").archs == [] and load_world_config("smoke").archs   # smoke keeps its toy models
    assert not [name for name in stages if name.startswith("world_") and name != "world_corpus"]
    assert [d for d in stages["section"]["do"]["deps"] if d.startswith("runs/world/")] == ["runs/world/${profile}/corpus"]
    assert stages["world_corpus"]["outs"] == ["runs/world/${profile}/corpus"]
    pretrained = yaml.safe_load((ROOT / "params.yaml").read_text())["models"]   # each converted model, a dep
    assert [d for d in stages["section"]["do"]["deps"] if d.startswith("runs/models/")] == [
        f"runs/models/{name}" for name in pretrained]
    assert {k: v["notebook"] + ".ipynb" for k, v in stages["section"]["foreach"].items()} == NOTEBOOKS
    assert [d for d in stages["scorecard"]["deps"] if d.startswith("results/")] == [f"results/${{profile}}/{s}" for s in SECTIONS]
    # each section's runs, then its cells, made ahead by their own stages (afp_lib/plan/prepare.py), in that order
    manifest = "results/${{profile}}/prepared/${{{}}}-{}.json".format
    for step, before in (("train", None), ("score", "train")):
        stage = stages[f"prepare_{step}"]
        assert stage["foreach"] == list(SECTIONS)
        assert stage["do"]["cmd"] == f"python -m afp_lib prepare {step} --profile ${{profile}} --section ${{item}}"
        assert list(stage["do"]["outs"][0]) == [manifest("item", step)]
        assert before is None or manifest("item", before) in stage["do"]["deps"]
    assert manifest("key", "score") in stages["section"]["do"]["deps"]


def test_the_mini_sweeps_reuse_notebook_01s_gemma_models():
    """The mini sweeps on Gemma hold notebook 01's budget, so their default point is its AFP model and their
    parts its findings' runs: the same run keys, trained and scored once through the caches. A budget edited in
    one section but not the others breaks this (and costs a training and ten cells per model)."""
    def key(name, label):
        (v,) = [v for v in section_variants(name, "mini") if v.arch == "gemma3-270m" and v.label == label]
        return run_key(train_config(v, "mini"), _base_model("mini", v.arch))
    afp = key("bilingual", "AFP")
    for name, label in [("mcl_layer", "layer 1"), ("p_src", "p_src 0.5"), ("ablation", "w/ AFP"),
                        ("appendix", "pooling mean_skip_bos"), ("appendix", "alpha 1.5")]:
        assert key(name, label) == afp, f"{name}: {label} is not notebook 01's AFP run"
    for part, label in [("MCL", "w/ MCL"), ("CIT", "w/ CIT"), ("BPre", "w/ CLM")]:
        assert key("ablation", label) == key("bilingual", part)
    others = {key("appendix", label) for label in ("pooling max", "pooling last", "alpha 1.0", "alpha 2.0")}
    assert len(others) == 4 and afp not in others


def test_the_mini_multilingual_sections_hold_notebook_01s_budget():
    """Multilingual and all-languages align more languages on Gemma with notebook 01's budget: their AFP runs
    differ from notebook 01's AFP only in the data (its languages, multilingual's policy, and the per-language
    cap the 19 languages of all-languages draw from), so the three sections' numbers come from one recipe."""
    from dataclasses import asdict

    def config(name, label):
        (v,) = [v for v in section_variants(name, "mini") if v.arch == "gemma3-270m" and v.label == label]
        return asdict(train_config(v, "mini"))
    afp = config("bilingual", "AFP")
    for name, label in [("multilingual", "bridge"), ("multilingual", "pairwise"), ("all_languages", "AFP")]:
        other = config(name, label)
        assert {k for k in afp if afp[k] != other[k]} == {"data"}, f"{name} {label}: another budget"
        moved = {k for k in afp["data"] if afp["data"][k] != other["data"][k]}
        assert "langs" in moved and moved <= {"langs", "policy", "max_pairs_per_lang"}, f"{name} {label}: {moved}"
