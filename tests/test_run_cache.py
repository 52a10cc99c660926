"""The run cache's key (trainer.runs): only the fields that change a run's result, every field classified;
folders named by the former key adopted once; a finished run of another world size refused."""
import copy
import dataclasses
import json
import typing

import pytest

from afp_lib.config import semantic
from afp_lib.trainer import runs
from afp_lib.trainer.config import OPERATIONAL, TrainConfig, config_dict

BASE = "hub-id"  # a hub id: its identity is the id itself, nothing is read from disk

# Every field that changes what a run computes (its weights, or the logged eval points Fig. 3c plots). A new
# TrainConfig field fails test_every_field_is_classified until it is listed here or in config.OPERATIONAL.
RESULT_FIELDS = {
    "objective", "alpha", "seed", "steps", "batch_size", "grad_accum", "seq_len", "precision", "threads",
    "backend", "zero_stage", "device", "eval_every",
    "mcl.layer", "mcl.pooling", "mcl.temperature", "mcl.symmetric", "mcl.gather", "mcl.length_groups",
    "cit.p_src", "cit.sources", "cit.prompt", "cit.alpaca", "cit.batch_size", "cit.pack",
    "optim.lr", "optim.betas", "optim.eps", "optim.weight_decay", "optim.schedule", "optim.warmup_ratio",
    "optim.min_lr_ratio", "optim.grad_clip",
    "data.langs", "data.pivot", "data.sources", "data.policy", "data.max_pairs_per_lang", "data.bactrian_pairs",
    "data.dev_pairs", "data.min_chars", "data.max_chars",
}
# other valid values for the fields a generic rule cannot change (free strings, lists)
OTHER = {"name": "other", "objective": "cit", "device": "cpu", "data.langs": ["tr"], "data.pivot": "fr",
         "data.sources": ["udhr"], "cit.sources": ["translation", "alpaca"], "optim.betas": [0.9, 0.95]}


def leaves(cls=TrainConfig, prefix=""):
    """(dotted name, dataclass field) of every leaf of the config, sub-configs included."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from leaves(hints[f.name], f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", hints[f.name]


def changed(cfg: TrainConfig, name: str, hint) -> TrainConfig:
    """`cfg` with the leaf `name` set to another valid value."""
    *parents, leaf = name.split(".")
    owner = cfg
    for p in parents:
        owner = getattr(owner, p)
    value = getattr(owner, leaf)
    if name in OTHER:
        new = OTHER[name]
    elif typing.get_origin(hint) is typing.Literal:
        new = next(v for v in typing.get_args(hint) if v != value)
    elif isinstance(value, bool):
        new = not value
    elif isinstance(value, int):
        new = value + 1
    elif isinstance(value, float):
        new = value + 0.1
    else:
        raise AssertionError(f"no other value for {name}={value!r}: add one to OTHER")
    assert new != value, name
    out = dataclasses.replace(owner, **{leaf: new})
    for i in range(len(parents) - 1, -1, -1):
        holder = cfg
        for p in parents[:i]:
            holder = getattr(holder, p)
        out = dataclasses.replace(holder, **{parents[i]: out})
    return out


def test_every_field_is_classified():
    names = {n for n, _ in leaves()}
    assert not set(OPERATIONAL) & RESULT_FIELDS
    unclassified = names - set(OPERATIONAL) - RESULT_FIELDS
    assert not unclassified, (f"TrainConfig field(s) {sorted(unclassified)}: if changing one changes no number, "
                              "add it with why to OPERATIONAL in afp_lib/trainer/config.py; else to RESULT_FIELDS here")
    assert names == set(OPERATIONAL) | RESULT_FIELDS, sorted((set(OPERATIONAL) | RESULT_FIELDS) - names)
    assert all(isinstance(why, str) and why for why in OPERATIONAL.values())


@pytest.mark.parametrize("name, hint", list(leaves()), ids=[n for n, _ in leaves()])
def test_only_result_fields_change_the_key(name, hint):
    cfg = TrainConfig(steps=3, batch_size=4)
    other = changed(cfg, name, hint)
    assert config_dict(other) != config_dict(cfg)
    same = runs.run_key(other, BASE) == runs.run_key(cfg, BASE)
    assert same == (name in OPERATIONAL), f"{name}: {'kept' if same else 'changed'} the key"


def test_base_model_and_data_change_the_key():
    from afp_lib.trainer import TrainData
    cfg = TrainConfig(steps=3, batch_size=4)
    assert runs.run_key(cfg, BASE) != runs.run_key(cfg, "other-hub-id")
    pair = {"src": "a", "tgt": "b", "src_lang": "en", "tgt_lang": "zh"}
    assert runs.run_key(cfg, BASE, TrainData(pairs=[pair])) != runs.run_key(cfg, BASE, TrainData(pairs=[pair, pair]))


def test_a_retired_field_with_todays_meaning_is_the_same_run():
    """A former config's `cit.p_src_on_translation: true` is today's rule: such a run is found; `false` (translation
    samples always translated) was another run and is not."""
    want = semantic(TrainConfig(steps=3), runs.OPERATIONAL)
    old = copy.deepcopy(want)
    old["cit"]["p_src_on_translation"] = True
    assert runs._current_fields(old, want) == want
    old["cit"]["p_src_on_translation"] = False
    assert runs._current_fields(old, want) is None


def _finished(folder, cfg, result=None, run=None):
    """A run folder as the trainer leaves it (no weights: the cache only looks at these files)."""
    (folder / "final").mkdir(parents=True)
    (folder / "final" / "train_config.json").write_text(json.dumps(config_dict(cfg)))
    (folder / "train_config.json").write_text(json.dumps(config_dict(cfg)))
    (folder / "final" / runs.RESULT).write_text(json.dumps(result or {"steps": cfg.steps}))
    (folder / "run.json").write_text(json.dumps(run or {"base_model": BASE, "config": config_dict(cfg)}))


@pytest.fixture()
def no_training(tmp_path, monkeypatch):
    monkeypatch.setenv("AFP_RUNS", str(tmp_path))
    monkeypatch.setattr("afp_lib.models.load_model", lambda name: (None, None))
    trained = []

    def fake_train(cfg, model, tokenizer, path, data=None):
        trained.append(path)
        (path / "final").mkdir(parents=True, exist_ok=True)
        (path / "final" / runs.RESULT).write_text("{}")
    monkeypatch.setattr("afp_lib.trainer.loop.train", fake_train)
    return trained


def test_a_run_under_the_former_key_is_adopted(no_training, tmp_path, caplog):
    cfg = TrainConfig(steps=3, batch_size=4)
    old = tmp_path / "align" / "afp-3eeb96c5a140"  # a name of the former scheme
    _finished(old, cfg, run={"identity": runs.model_identity(BASE), "config": config_dict(cfg)})
    from afp_lib.eval.runner import Cell, read_cell, write_cell
    cell = dict(task="xcopa", language="zh", shots=0, seed=0, demo_lang="zh", demos="random", connectors="english",
                max_items=8, version=1)
    write_cell(Cell(model=str(old / "final"), **cell), [{"metric": "acc", "value": 60.0}])  # its scores
    with caplog.at_level("WARNING", logger="afp_lib.trainer.runs"):
        path = runs.get_or_train(cfg, BASE)
    assert read_cell(Cell(model=str(path / "final"), **cell)) == [{"metric": "acc", "value": 60.0}]  # moved along
    assert path == runs.run_dir(cfg, BASE) != old and not old.exists() and no_training == []
    assert f"adopted {old}" in caplog.text
    run = json.loads((path / "run.json").read_text())
    assert run["adopted_from"] == old.name and run["key"] == runs.run_key(cfg, BASE) and run["world_size"] == 1
    # a speed-only change now finds the same run (the former key would have missed it)
    faster = dataclasses.replace(cfg, log_every=1, gradient_checkpointing=True, save_every=7)
    assert runs.get_or_train(faster, BASE) == path and no_training == []


def test_a_former_run_with_other_speed_settings_is_found_by_its_saved_config(no_training, tmp_path):
    """Asked with another log_every than it was trained with, a former-scheme run has another former key:
    it is found by its run.json (no `key`, the same base model) and saved train_config.json."""
    cfg = TrainConfig(steps=3, batch_size=4)
    trained = dataclasses.replace(cfg, log_every=1, save_every=2)
    identity = runs.model_identity(BASE)
    _finished(tmp_path / "align" / "afp-000000000000", dataclasses.replace(trained, seed=1),
              run={"identity": identity})                                  # another run
    _finished(tmp_path / "align" / "afp-111111111111", trained, run={"identity": "hub:other"})  # another base
    old = tmp_path / "align" / "afp-222222222222"
    _finished(old, trained, run={"identity": identity, "config": config_dict(trained)})
    path = runs.get_or_train(cfg, BASE)
    assert no_training == [] and not old.exists() and json.loads((path / "run.json").read_text())["adopted_from"] == old.name
    assert {f.name for f in (tmp_path / "align").iterdir()} == {"afp-000000000000", "afp-111111111111", path.name}


def test_a_former_folder_with_another_config_is_left_alone(no_training, tmp_path):
    cfg = TrainConfig(steps=3, batch_size=4)
    old = tmp_path / "align" / "afp-3eeb96c5a140"
    other = dataclasses.replace(cfg, seed=7)
    _finished(old, other, run={"identity": runs.model_identity(BASE), "config": config_dict(other)})
    path = runs.get_or_train(cfg, BASE)
    assert old.is_dir() and no_training == [path]


def test_another_world_size_is_refused_on_many_ranks_and_named_to_one_process(tmp_path, caplog):
    cfg = TrainConfig(steps=3, batch_size=4, grad_accum=2)
    one, two = tmp_path / "one", tmp_path / "two"
    _finished(one, cfg, run={"world_size": 1})
    _finished(two, cfg, result={"steps": 3, "ranks": 2})  # former scheme: only result.json says it
    assert runs.recorded_world(one) == 1 and runs.recorded_world(two) == 2
    assert runs._world_problem(one, cfg, 1) is None and runs._world_problem(two, cfg, 2) is None
    msg = runs._world_problem(one, cfg, 2)
    assert "trained by 1 rank(s), a global batch of 8; this launch has 2 ranks, a global batch of 16" in msg
    with caplog.at_level("WARNING", logger="afp_lib.trainer.runs"):
        assert runs._world_problem(two, cfg, 1) is None
    assert f"run {two} was trained by 2 rank(s), a global batch of 16" in caplog.text
    ds = tmp_path / "ds"
    _finished(ds, dataclasses.replace(cfg, backend="deepspeed"))  # a former-scheme DeepSpeed run: unknown
    assert runs.recorded_world(ds) is None and "an unrecorded number of ranks" in runs._world_problem(ds, cfg, 2)


def test_a_new_run_records_its_key_and_world(no_training):
    cfg = TrainConfig(steps=3, batch_size=4, grad_accum=2)
    path = runs.get_or_train(cfg, BASE)
    run = json.loads((path / "run.json").read_text())
    assert (run["key"], run["world_size"], run["global_batch"]) == (runs.run_key(cfg, BASE), 1, 8)
