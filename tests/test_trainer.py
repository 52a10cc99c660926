"""The training loop: config errors, every objective, logs, checkpoints, resume equality, NaN stop, run cache."""
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from afp_lib.config import from_dict
from afp_lib.models import build_model
from afp_lib.trainer import (TrainConfig, TrainData, TrainingDiverged, evaluate_alignment, get_or_train,
                             load_train_config, train)
from afp_lib.trainer import checkpoint as ckpt
from afp_lib.trainer.backends import TorchBackend

EN = ["The cat sat on the mat.", "A dog runs in the park.", "We need at least ten countries to join us."]
XX = {"zh": ["猫坐在垫子上。", "一只狗在公园里跑。", "我们需要至少十个国家加入我们。"],
      "tr": ["Kedi paspasın üzerine oturdu.", "Bir köpek parkta koşuyor.", "Kedi oturdu."],
      "sw": ["Paka alikaa juu ya mkeka.", "Mbwa anakimbia bustanini.", "Paka alikaa."]}
PAIRS = [{"src": e, "tgt": x, "src_lang": "en", "tgt_lang": lang} for lang, xs in XX.items() for e, x in zip(EN, xs)]


def tiny_cfg(**kw) -> TrainConfig:
    base = dict(steps=4, batch_size=4, seq_len=32, precision="fp32", log_every=1, eval_every=2, save_every=2,
                optim={"lr": 1.0e-3, "warmup_ratio": 0.25})
    for k, v in kw.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = {**base[k], **v}
        else:
            base[k] = v
    return from_dict(TrainConfig, base, "test")


@pytest.fixture()
def model(toy_tokenizer, tiny_shape):
    return build_model("xglm", tiny_shape, toy_tokenizer, seed=0)


def data():
    return TrainData(pairs=list(PAIRS), dev_pairs=list(PAIRS[:6]))


def read_log(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


# --- configuration -------------------------------------------------------------------------------

def test_profiles_load():
    assert load_train_config("smoke").steps < load_train_config("mini").steps < load_train_config("paper").steps
    paper = load_train_config("paper")
    assert (paper.optim.lr, paper.alpha, paper.seq_len, paper.backend) == (1.0e-5, 1.5, 512, "deepspeed")
    assert load_train_config("mini", ["objective=bit"]).p_src == 1.0


@pytest.mark.parametrize("override, message", [
    ("mcl.pooling=cls", "mcl.pooling='cls' is not allowed; use one of 'mean', 'max', 'last'"),
    ("mcl.layer=-1", "mcl.layer=-1 is invalid"),
    ("cit.p_src=1.5", r"cit.p_src=1.5 is invalid; a probability must lie in \[0, 1\]"),
    ("alpha=-0.5", "alpha=-0.5 is invalid"),
    ("objective=simcse", "objective='simcse' is invalid; use one of afp, mcl, cit, clm, bit"),
    ("data.sources=[django,tatoeba]", "contains evaluation data"),
    ("data.sources=[xnli_test]", "contamination"),
    ("cit.sources=[flan]", "cit.sources"),
    ("mcl.length_groups=0", "mcl.length_groups=0 is invalid"),
])
def test_bad_values_fail_at_load(override, message):
    with pytest.raises((ValueError, TypeError), match=message):
        load_train_config("mini", [override])


def test_unknown_key_suggests():
    with pytest.raises(KeyError, match="did you mean 'temperature'"):
        load_train_config("mini", ["mcl.temprature=0.1"])


def test_layer_out_of_range_for_the_model(model, toy_tokenizer, tmp_path):
    with pytest.raises(ValueError, match="layer=7 is out of range for a 3-block model"):
        train(tiny_cfg(mcl={"layer": 7}), model, toy_tokenizer, tmp_path, data=data())


def test_schedule_warmup_then_cosine():
    cfg = tiny_cfg(steps=10, optim={"warmup_ratio": 0.2})
    backend = TorchBackend(cfg, torch.nn.Linear(2, 2), torch.device("cpu"))
    factors = []
    for _ in range(10):
        factors.append(backend.lr() / cfg.optim.lr)
        backend.optimizer.step()
        backend.scheduler.step()
    assert factors[:2] == [0.5, 1.0] and factors[2] == 1.0
    assert all(a >= b for a, b in zip(factors[2:], factors[3:])) and factors[-1] < 0.05


# --- objectives and logs --------------------------------------------------------------------------

@pytest.mark.parametrize("objective, parts", [
    ("afp", {"mcl", "cit"}), ("mcl", {"mcl"}), ("cit", {"cit"}), ("bit", {"cit"}), ("clm", {"clm"})])
def test_each_objective_trains_and_logs(objective, parts, model, toy_tokenizer, tmp_path):
    cfg = tiny_cfg(objective=objective, steps=2, save_every=0)
    res = train(cfg, model, toy_tokenizer, tmp_path, data=data())
    log = read_log(res.log_path)
    assert [r["step"] for r in log] == [1, 2]
    assert parts <= set(log[-1]) and not ({"mcl", "cit", "clm"} - parts) & set(log[-1])
    assert {"align", "uniform", "retrieval", "lr", "loss"} <= set(log[-1])
    if objective == "afp":
        assert log[0]["loss"] == pytest.approx(log[0]["mcl"] + 1.5 * log[0]["cit"], rel=1e-5)
    reloaded = AutoModelForCausalLM.from_pretrained(res.final_dir)  # plain transformers loads it
    for (name, p), q in zip(model.named_parameters(), reloaded.parameters()):
        assert torch.equal(p.detach().cpu(), q), name
    assert json.loads((res.final_dir / "train_config.json").read_text())["objective"] == objective
    assert not (tmp_path / "checkpoints").exists()


def test_afp_moves_pairs_together(toy_tokenizer, tiny_shape, tmp_path):
    """A few MCL steps on the toy pairs raise the dev retrieval of an untrained model."""
    model = build_model("xglm", tiny_shape, toy_tokenizer, seed=0)
    cfg = tiny_cfg(objective="mcl", steps=30, eval_every=30, save_every=0, log_every=1, batch_size=6,
                   optim={"lr": 3.0e-3, "warmup_ratio": 0.0}, mcl={"layer": 1})
    unique = PAIRS[:3] + [{"src": t, "tgt": s, "src_lang": "tr", "tgt_lang": "sw"} for t, s in zip(XX["tr"], XX["sw"])]
    d = TrainData(pairs=unique, dev_pairs=unique)
    from afp_lib.trainer.collate import encode_pairs
    before = evaluate_alignment(model, cfg, encode_pairs(toy_tokenizer, unique, 32), toy_tokenizer.pad_token_id, "cpu")
    assert before["retrieval"] < 1.0
    res = train(cfg, model, toy_tokenizer, tmp_path, data=d)
    first, last = read_log(res.log_path)[0], res.last
    assert last["retrieval"] == 1.0 and last["mcl"] < 0.5 * first.get("mcl", 10)


def test_clm_texts_packed_with_bf16(model, toy_tokenizer, tmp_path):
    cfg = tiny_cfg(objective="clm", precision="bf16", steps=3, save_every=0, seq_len=16)
    texts = EN + XX["zh"] + XX["tr"]
    res = train(cfg, model, toy_tokenizer, tmp_path, data=TrainData(clm_texts=texts))
    assert res.steps == 3 and "clm" in res.last and "align" not in res.last  # no dev pairs given



@pytest.mark.parametrize("tokenized", ["memory", "arrow"])
def test_bpre_rows_are_the_cit_runs_text_plus_the_pairs(tokenized, toy_tokenizer, tmp_path, monkeypatch):
    """Table 8 compares the methods on the same data: BPre's CLM blocks hold each CIT sample's text (its
    prompt included) and both sentences of each pair, in both data paths."""
    from afp_lib import cit
    from afp_lib.trainer.loop import prepare
    monkeypatch.setenv("AFP_TOKENIZED", str(tmp_path))
    bpre = tiny_cfg(objective="clm", seq_len=64, tokenized=tokenized)
    cit_prep = prepare(tiny_cfg(objective="cit", seq_len=64), toy_tokenizer, data())
    got = [t for ids, _ in prepare(bpre, toy_tokenizer, data()).clm for t in ids]
    samples = cit.translation_samples(PAIRS, bpre.p_src, seed=bpre.seed)
    docs = [p[k] for p in PAIRS for k in ("src", "tgt")] + [cit.sample_text(s) for s in samples]
    eos = toy_tokenizer.eos_token_id
    stream = [toy_tokenizer(d)["input_ids"] + [eos] for d in docs]
    assert sorted(map(tuple, _split_at(got, eos))) == sorted(map(tuple, stream))   # every document, shuffled
    assert len(cit_prep.cit) == len(samples) and len(got) > sum(len(ids) for ids, _ in cit_prep.cit)


def _split_at(ids: list[int], eos: int) -> list[list[int]]:
    docs, cur = [], []
    for t in ids:
        cur.append(t)
        if t == eos:
            docs.append(cur)
            cur = []
    return docs

# --- checkpoints, resume, NaN ---------------------------------------------------------------------

class Kill(Exception):
    pass


def _kill_at(step):
    def cb(done, record):
        if done == step:
            raise Kill
    return cb


@pytest.mark.parametrize("objective, precision, seq_len, shared", [
    ("afp", "fp32", 64, True),    # MCL reads the context sides from the CIT forward (trainer.shared)
    ("afp", "fp32", 32, False),   # contexts cut from the left: two independent batches
    ("clm", "bf16", 32, False)])
def test_resume_gives_the_uninterrupted_weights(objective, precision, seq_len, shared, toy_tokenizer, tiny_shape,
                                                tmp_path, caplog):
    cfg = tiny_cfg(objective=objective, precision=precision, steps=5, save_every=2, seq_len=seq_len)
    d = TrainData(pairs=list(PAIRS), dev_pairs=list(PAIRS[:6]), clm_texts=EN + XX["sw"])
    caplog.set_level("INFO", logger="afp_lib.trainer.loop")
    straight = build_model("xglm", tiny_shape, toy_tokenizer, seed=0)
    train(cfg, straight, toy_tokenizer, tmp_path / "a", data=d)

    killed = build_model("xglm", tiny_shape, toy_tokenizer, seed=0)
    with pytest.raises(Kill):
        train(cfg, killed, toy_tokenizer, tmp_path / "b", data=d, callbacks=[_kill_at(3)])  # after the step-2 save
    assert ckpt.latest_checkpoint(tmp_path / "b").name == "step-0000002"
    (tmp_path / "b" / "checkpoints" / ".tmp-step-0000004").mkdir()  # a save that was killed half-way
    fresh = build_model("xglm", tiny_shape, toy_tokenizer, seed=1)  # different init: weights come from disk
    res = train(cfg, fresh, toy_tokenizer, tmp_path / "b", data=d)
    assert res.resumed_from == 2
    for (name, p), q in zip(straight.named_parameters(), fresh.parameters()):
        assert torch.equal(p, q), name
    assert [r["step"] for r in read_log(res.log_path)] == [1, 2, 3, 4, 5]  # no duplicated records
    assert read_log(res.log_path) [-1]["loss"] == read_log(tmp_path / "a" / "train_log.jsonl")[-1]["loss"]
    assert ("from the CIT forward" in caplog.text) == shared


@pytest.mark.parametrize("manifest", [True, False])   # False: a checkpoint written before complete.json existed
def test_truncated_newest_checkpoint_falls_back_to_the_previous_one(manifest, toy_tokenizer, tiny_shape, tmp_path,
                                                                     caplog):
    cfg = tiny_cfg(steps=5, save_every=2)
    straight = build_model("xglm", tiny_shape, toy_tokenizer, seed=0)
    train(cfg, straight, toy_tokenizer, tmp_path / "a", data=data())
    killed = build_model("xglm", tiny_shape, toy_tokenizer, seed=0)
    with pytest.raises(Kill):
        train(cfg, killed, toy_tokenizer, tmp_path / "b", data=data(), callbacks=[_kill_at(5)])  # after step 4's save
    newest = ckpt.latest_checkpoint(tmp_path / "b")
    assert newest.name == "step-0000004" and (newest / ckpt.MANIFEST).is_file()
    weights = newest / "model.safetensors"
    if not manifest:
        (newest / ckpt.MANIFEST).unlink()
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a copy cut short
    fresh = build_model("xglm", tiny_shape, toy_tokenizer, seed=1)
    with caplog.at_level("WARNING"):
        res = train(cfg, fresh, toy_tokenizer, tmp_path / "b", data=data())
    assert res.resumed_from == 2
    assert "checkpoint step-0000004 is damaged" in caplog.text and str(weights) in caplog.text
    for (name, p), q in zip(straight.named_parameters(), fresh.parameters()):
        assert torch.equal(p, q), name


def _garble_header(path):
    data = bytearray(path.read_bytes())
    data[8:40] = b"#" * 32  # inside the JSON header: safetensors cannot parse it
    path.write_bytes(bytes(data))


def _zero_weights(path):
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")  # the tensors' bytes start after the header
    data[start:] = bytes(len(data) - start)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_garble_header, _zero_weights])
@pytest.mark.parametrize("checksums", [True, False])  # False: a checkpoint written before the manifest had sha256
def test_damaged_bytes_of_the_right_size_fall_back_or_warn(damage, checksums, toy_tokenizer, tiny_shape, tmp_path,
                                                          caplog):
    """Bytes changed at the same size: the checksum catches both; without checksums (older checkpoints, taken
    as before on sizes plus their safetensors headers) a garbled header is caught, zeroed weights cannot be,
    and the resume says that its bytes were not checked."""
    cfg = tiny_cfg(steps=5, save_every=2)
    straight = build_model("xglm", tiny_shape, toy_tokenizer, seed=0)
    train(cfg, straight, toy_tokenizer, tmp_path / "a", data=data())
    killed = build_model("xglm", tiny_shape, toy_tokenizer, seed=0)
    with pytest.raises(Kill):
        train(cfg, killed, toy_tokenizer, tmp_path / "b", data=data(), callbacks=[_kill_at(5)])  # after step 4's save
    newest = tmp_path / "b" / "checkpoints" / "step-0000004"
    manifest = json.loads((newest / ckpt.MANIFEST).read_text())
    assert set(manifest["sha256"]) == set(manifest["files"]) and "model.safetensors" in manifest["files"]
    if not checksums:
        (newest / ckpt.MANIFEST).write_text(json.dumps({"files": manifest["files"]}))
    weights = newest / "model.safetensors"
    size = weights.stat().st_size
    damage(weights)
    assert weights.stat().st_size == size
    fresh = build_model("xglm", tiny_shape, toy_tokenizer, seed=1)
    with caplog.at_level("WARNING"):
        res = train(cfg, fresh, toy_tokenizer, tmp_path / "b", data=data())
    caught = checksums or damage is _garble_header
    assert res.resumed_from == (2 if caught else 4)
    assert ("checkpoint step-0000004 is damaged" in caplog.text and str(weights) in caplog.text) == caught
    if checksums:
        assert "sha256 differs" in caplog.text
    else:
        assert "step-0000004 has no checksums" in caplog.text
    same = all(torch.equal(p, q) for p, q in zip(straight.parameters(), fresh.parameters()))
    assert same == caught  # zeroed weights without a checksum: the limit of an old checkpoint, said in the log


def test_nan_stops_and_keeps_the_last_good_checkpoint(model, toy_tokenizer, tmp_path):
    def poison(done, record):
        if done == 2:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="non-finite loss at step 3.*step-0000002"):
        train(tiny_cfg(steps=4, save_every=2), model, toy_tokenizer, tmp_path, data=data(), callbacks=[poison])
    good = ckpt.latest_checkpoint(tmp_path)
    assert good.name == "step-0000002" and not (tmp_path / "final").exists()
    reloaded = AutoModelForCausalLM.from_pretrained(good)
    assert all(torch.isfinite(p).all() for p in reloaded.parameters())


def test_finished_run_is_not_trained_again(model, toy_tokenizer, tmp_path):
    cfg = tiny_cfg(steps=2, save_every=0)
    train(cfg, model, toy_tokenizer, tmp_path, data=data())
    stamp = (tmp_path / "final" / ckpt.RESULT).stat().st_mtime_ns
    res = train(cfg, model, toy_tokenizer, tmp_path, data=data(), callbacks=[_kill_at(1)])  # would raise if it trained
    assert res.steps == 2 and (tmp_path / "final" / ckpt.RESULT).stat().st_mtime_ns == stamp


def test_run_cache_keys_on_config_and_base_model(model, toy_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("AFP_RUNS", str(tmp_path / "runs"))
    base = tmp_path / "base"
    model.save_pretrained(base)
    toy_tokenizer.save_pretrained(base)
    cfg = tiny_cfg(steps=2, save_every=0)
    run = get_or_train(cfg, base, data=data())
    assert (run / "final" / ckpt.RESULT).is_file() and run.parent == tmp_path / "runs" / "align"
    import afp_lib.trainer.loop as loop
    monkeypatch.setattr(loop, "train", lambda *a, **k: pytest.fail("a finished run was trained again"))
    assert get_or_train(cfg, base, data=data()) == run
    from afp_lib.trainer.runs import run_dir
    assert run_dir(tiny_cfg(steps=3), base, data()) != run
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    model.save_pretrained(base)  # a different base model is a different run
    assert run_dir(cfg, base, data()) != run


def test_cli_dry_run(capsys, tmp_path):
    from afp_lib.trainer.cli import main
    assert main(["--profile", "smoke", "objective=cit", "--base-model", "facebook/xglm-564M", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "objective='cit'" in out and "/align/smoke-cit-" in out


@pytest.mark.multiprocess
def test_concurrent_requests_for_one_run_train_it_once(tmp_path, monkeypatch):
    """Two processes asking for the same run: the second waits on the run's lock and gets the cached run."""
    import multiprocessing as mp
    from afp_lib.trainer import runs

    calls = mp.Manager().list()

    def fake_train(cfg, model, tokenizer, path, data=None):
        import time
        calls.append(str(path))
        time.sleep(1.0)
        (path / "final").mkdir(parents=True, exist_ok=True)
        (path / "final" / runs.RESULT).write_text("{}")

    monkeypatch.setenv("AFP_RUNS", str(tmp_path))
    monkeypatch.setattr("afp_lib.trainer.loop.train", fake_train)
    monkeypatch.setattr("afp_lib.models.load_model", lambda name: (None, None))
    cfg = runs.TrainConfig(steps=1, batch_size=2)
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=runs.get_or_train, args=(cfg, "hub-id")) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(calls) == 1


def test_mini_runs_keep_the_learning_rates_of_the_lambda_schedule():
    """The shared schedule (trainer.optim.lr_at, also the world's) gives the mini profile's alignment runs
    exactly the learning rates the former LambdaLR (lr * factor) gave them: the committed numbers stand."""
    import math
    from afp_lib.trainer.optim import lr_at
    for profile in ("smoke", "mini"):
        cfg = load_train_config(profile)
        o, warm = cfg.optim, math.ceil(cfg.optim.warmup_ratio * cfg.steps)
        old = [o.lr * ((s + 1) / warm if s < warm else o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (
            1 + math.cos(math.pi * min(1.0, (s - warm) / max(1, cfg.steps - warm))))) for s in range(cfg.steps)]
        assert [lr_at(s, o.lr, warm, cfg.steps, o.schedule, o.min_lr_ratio) for s in range(cfg.steps)] == old
