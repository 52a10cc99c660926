"""The run cache's key (trainer.runs): only the fields that change a run's result, every field classified;
a finished run of another world size refused."""
import dataclasses
import json
import typing

import pytest

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
