"""The mini world: corpus leak check, tokenizer, resumable pretraining, diagnostic, world API.
Everything runs on a fake mirror and tiny shapes; nothing here needs the real mirror."""
from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from afp_lib.config import from_dict
from afp_lib.world import config as wconfig
from afp_lib.world.config import WorldConfig

TIERS = {"high": {"weight": 4.0, "max_bytes": 100_000, "tokenizer_bytes": 50_000},
         "medium": {"weight": 2.0, "max_bytes": 100_000, "tokenizer_bytes": 50_000},
         "low": {"weight": 1.0, "max_bytes": 100_000, "tokenizer_bytes": 50_000}}


def tiny_cfg(**over) -> WorldConfig:
    data = {"languages": {"en": "high", "zh": "medium", "sw": "low"}, "tiers": TIERS, "heldout_lines": 3,
            "sources": ["leipzig"], "tokenizer": {"vocab_size": 400, "min_frequency": 1},
            "shape": {"d_model": 32, "n_layers": 2, "n_heads": 2, "ffn_dim": 64, "max_positions": 128},
            "pretrain": {"block_size": 32, "batch_size": 4, "steps": 6, "warmup_steps": 2, "checkpoint_every": 3,
                         "log_every": 2, "precision": "fp32"},
            "diagnose": {"langs": ["zh"], "pairs": 8, "max_tokens": 32}}
    for key, value in over.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and key != "languages" else value
    return from_dict(WorldConfig, data, "world.test")


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


EN = [f"Line number {i} tells a short story about the river and the town." for i in range(40)]
ZH = [f"第{i}行讲述了一个关于河流和小镇的小故事。" for i in range(40)]
SW = [f"Mstari wa {i} unaeleza hadithi fupi kuhusu mto na mji." for i in range(40)]
TR = [f"{i}. satır nehir ve kasaba hakkında kısa bir hikaye anlatıyor." for i in range(40)]
TH = [f"บรรทัดที่ {i} เล่าเรื่องสั้นเกี่ยวกับแม่น้ำและเมือง" for i in range(40)]
EVAL_SENT = "The committee will meet again next Tuesday at noon."
PAIR_SENT = "Click the Save button to keep your changes in the document."
ALPACA_OUT = "Here is a list of three fruits that are rich in vitamin C."


@pytest.fixture()
def small_mirror(fake_mirror):
    """Mono text in three languages with planted leaks: one line equals an XNLI premise, one paragraph
    contains an alignment-pair sentence, one line is an Alpaca output line."""
    write_jsonl(fake_mirror / "hub/facebook/xnli/en/validation.jsonl",
                [{"premise": EVAL_SENT, "hypothesis": "They meet.", "label": 0}])
    write_jsonl(fake_mirror / "hub/tatsu-lab/alpaca/default/train.jsonl",
                [{"instruction": "List fruits.", "input": "", "output": f"Sure.\n{ALPACA_OUT}", "text": "x"}])
    write_jsonl(fake_mirror / "parallel/django/en-zh.jsonl", [{"translation": {"en": PAIR_SENT, "zh": "点击保存按钮。"}}])
    write_jsonl(fake_mirror / "parallel/tatoeba/en-zh.jsonl",
                [{"translation": {"en": e, "zh": z}} for e, z in zip(EN[:8], ZH[:8])])
    mono = fake_mirror / "mono/leipzig"
    mono.mkdir(parents=True)
    leaks = [EVAL_SENT, f"Before you close it. {PAIR_SENT} That is all.", ALPACA_OUT]
    (mono / "en.txt").write_text("\n".join(EN[8:] + leaks) + "\n", encoding="utf-8")
    (mono / "zh.txt").write_text("\n".join(ZH[8:]) + "\n", encoding="utf-8")
    (mono / "sw.txt").write_text("\n".join(SW) + "\n", encoding="utf-8")
    return fake_mirror


# --- corpus ------------------------------------------------------------------------------------------------

def test_segments_cut_long_paragraphs_at_sentence_ends():
    from afp_lib.world.corpus import segments
    text = " ".join(f"Sentence {i} is here." for i in range(30))
    pieces = segments(text, 60)
    assert len(pieces) > 5 and all(len(p) <= 60 for p in pieces)
    assert " ".join(pieces) == text and all(p.endswith(".") for p in pieces)
    thai = " ".join(["สวัสดีครับวันนี้อากาศดี"] * 20)  # Thai ends sentences with a space
    assert " ".join(segments(thai, 70)) == thai and max(map(len, segments(thai, 70))) <= 70
    assert segments("short line", 60) == ["short line"]


def test_corpus_drops_every_planted_leak_and_reports_it(small_mirror, tmp_path):
    from afp_lib.world.corpus import build_corpus, read_corpus
    stats = build_corpus(tiny_cfg(), tmp_path / "corpus", cache_dir=tmp_path / "cache")
    assert stats["languages"]["en"]["dropped_lines"] == {"eval": 1, "pairs": 1, "alpaca": 1}
    assert stats["languages"]["zh"]["dropped_lines"] == {"eval": 0, "pairs": 0, "alpaca": 0}
    assert stats["overlap_check"]["matches"] == 0 and stats["overlap_check"]["segments_checked"] == 32 + 32 + 40
    text = "\n".join(line for split in ("train", "heldout")
                     for lines in read_corpus(tmp_path / "corpus", split, ["en", "zh", "sw"]).values() for line in lines)
    for leak in (EVAL_SENT, PAIR_SENT, ALPACA_OUT):
        assert leak not in text
    held = read_corpus(tmp_path / "corpus", "heldout", ["en"])["en"]
    train = read_corpus(tmp_path / "corpus", "train", ["en"])["en"]
    assert len(held) == 3 and not set(held) & set(train)
    # the cached index gives the same answer as a fresh one
    again = build_corpus(tiny_cfg(), tmp_path / "corpus2", cache_dir=tmp_path / "cache")
    assert again["languages"] == stats["languages"]


def test_corpus_and_tokenizer_folders_are_the_same_bytes_on_every_rebuild(small_mirror, tmp_path, monkeypatch):
    """The committed mini models depend (dvc.lock) on these two folders: a fresh clone rebuilds them, and any
    byte that differs (a wall time, the mirror's path) would make DVC pretrain the models again."""
    import shutil

    from afp_lib.world import steps
    moved = tmp_path / "elsewhere" / "mirror"
    shutil.copytree(small_mirror, moved)
    files = []
    for i, mirror in enumerate([small_mirror, moved]):
        monkeypatch.setenv("AFP_DATA_MIRROR", str(mirror))
        monkeypatch.setenv("AFP_RUNS", str(tmp_path / f"runs{i}"))
        steps.corpus("smoke", tiny_cfg())
        steps.tokenizer("smoke", tiny_cfg())
        root = tmp_path / f"runs{i}" / "world" / "smoke"
        files.append({p.relative_to(root).as_posix(): p.read_bytes()
                      for d in ("corpus", "tokenizer") for p in sorted((root / d).rglob("*")) if p.is_file()})
    assert "corpus/stats.json" in files[0] and "tokenizer/token_stats.json" in files[0]
    for name in ("corpus/stats.json", "tokenizer/token_stats.json"):   # a time can round equal at this size
        assert "wall_seconds" not in json.loads(files[0][name])
    assert files[0].keys() == files[1].keys()
    assert [k for k in files[0] if files[0][k] != files[1][k]] == []


def test_corpus_caps_low_tier_bytes(small_mirror, tmp_path):
    from afp_lib.world.corpus import build_corpus
    tiers = {**TIERS, "low": {**TIERS["low"], "max_bytes": 200}}
    stats = build_corpus(tiny_cfg(tiers=tiers), tmp_path / "c", cache_dir=tmp_path / "cache")
    assert 0 < stats["languages"]["sw"]["train_bytes"] <= 200
    assert stats["languages"]["en"]["train_bytes"] > 1000


def test_config_rejects_unknown_tier():
    with pytest.raises(KeyError, match="did you mean 'max_bytes'"):
        tiny_cfg(tiers={"low": {"max_byte": 3}}).tier_configs()
    with pytest.raises(ValueError, match="not a tier"):
        wconfig.load_world_config("smoke", {"languages": {"en": "huge"}})


# --- tokenizer ---------------------------------------------------------------------------------------------

def test_tokenizer_round_trip_and_token_counts(small_mirror, tmp_path):
    from afp_lib.world.bpe import build_tokenizer
    from afp_lib.world.corpus import build_corpus
    cfg = tiny_cfg()
    build_corpus(cfg, tmp_path / "corpus", cache_dir=tmp_path / "cache")
    stats = build_tokenizer(cfg, tmp_path / "corpus", tmp_path / "tok")
    tok = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    ids = tok("第3行讲述 Mstari wa 3")["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.decode(ids, skip_special_tokens=True) == "第3行讲述 Mstari wa 3"
    assert set(stats["train"]) == {"en", "zh", "sw"} and all(v["tokens"] > 0 for v in stats["train"].values())
    assert stats["train"]["zh"]["chars_per_token"] < stats["train"]["zh"]["bytes_per_token"]  # 3 bytes a character


# --- pretraining -------------------------------------------------------------------------------------------

def test_schedule_follows_weights_and_walks_each_language_without_repeats():
    from afp_lib.world.pretrain import schedule
    lang, block = schedule({"en": 50, "sw": 7}, {"en": 3.0, "sw": 1.0}, steps=40, batch_size=5, seed=0)
    again = schedule({"en": 50, "sw": 7}, {"en": 3.0, "sw": 1.0}, steps=40, batch_size=5, seed=0)
    assert (lang == again[0]).all() and (block == again[1]).all()
    share = (lang == 0).mean()
    assert 0.65 < share < 0.85
    sw_blocks = block[lang == 1]
    assert sorted(sw_blocks[:7]) == list(range(7))  # first epoch: every Swahili block once
    assert block[lang == 0].max() < 50 and sw_blocks.max() < 7


def test_token_blocks_pack_lines_with_bos_and_eos(toy_tokenizer):
    from afp_lib.world.pretrain import token_blocks
    blocks = token_blocks(toy_tokenizer, ["The cat sat on the mat."] * 10, 16)
    stream = blocks.reshape(-1)
    assert blocks.shape[1] == 16 and stream[0] == toy_tokenizer.bos_token_id
    assert (stream == toy_tokenizer.eos_token_id).sum() >= blocks.size // 16 - 1
    with pytest.raises(ValueError, match="cannot fill one block"):
        token_blocks(toy_tokenizer, ["cat"], 64)


def test_lr_schedule_is_the_trainers_and_warms_up_then_decays_to_floor():
    """The world's optimizer and scheduler are the trainer's (trainer.optim), stepped as the trainer steps them."""
    from afp_lib.trainer.optim import lr_at
    from afp_lib.world.config import PretrainConfig
    from afp_lib.world.pretrain import optim_config
    from afp_lib.trainer.optim import make_optimizer, make_scheduler
    pc = PretrainConfig(lr=1.0, warmup_steps=4, steps=20, min_lr_ratio=0.1)
    opt = make_optimizer([torch.nn.Parameter(torch.zeros(2))], optim_config(pc))
    sched = make_scheduler(opt, optim_config(pc), pc.warmup_steps, pc.steps)
    lrs = []
    for _ in range(21):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == [lr_at(s, 1.0, 4, 20, "cosine", 0.1) for s in range(21)]
    assert lrs[0] == pytest.approx(0.25) and lrs[3] == pytest.approx(1.0)
    assert lrs[19] > 0.1 and lrs[20] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    # the warm-up is lr * (step + 1) / warmup bit for bit: the committed mini world (lr 2e-3, 20 warm-up
    # steps) was trained with exactly these values, and lr * ((step + 1) / warmup) differs in the last bit
    assert [lr_at(s, 2.0e-3, 20, 200) for s in range(20)] == [2.0e-3 * (s + 1) / 20 for s in range(20)]


def _write_corpus(root, lines_by_lang):
    for lang, lines in lines_by_lang.items():
        (root / "corpus/train").mkdir(parents=True, exist_ok=True)
        (root / "corpus/train" / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("arch", ["xglm", "bloom"])
def test_pretrain_smoke_shape_saves_a_loadable_model(arch, tmp_path, toy_tokenizer):
    from afp_lib.world.pretrain import pretrain
    cfg = wconfig.load_world_config("smoke")
    texts = {"en": EN, "zh": ZH, "sw": SW, "tr": TR, "th": TH}
    _write_corpus(tmp_path, {lang: texts[lang] for lang in cfg.languages})
    toy_tokenizer.save_pretrained(tmp_path / "tok")
    pc = cfg.pretrain  # the smoke profile's own shape and budget, as CI builds it
    report = pretrain(cfg, arch, tmp_path / "corpus", tmp_path / "tok", tmp_path / arch, tmp_path / "ckpt")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / arch)
    assert model.config.model_type == arch and model.config.num_hidden_layers == cfg.shape.n_layers
    assert report["tokens"] == pc.steps * pc.batch_size * pc.block_size
    assert sum(report["rows_per_language"].values()) == pc.steps * pc.batch_size
    assert report["history"][-1]["step"] == pc.steps
    assert AutoTokenizer.from_pretrained(tmp_path / arch).bos_token_id == toy_tokenizer.bos_token_id
    # trained: the saved weights are not the initial ones, and the loss went down on the training text
    from afp_lib.models import build_model
    init = build_model(arch, cfg.shape, toy_tokenizer, seed=0)
    assert not torch.equal(init.get_input_embeddings().weight, model.get_input_embeddings().weight)
    x = torch.tensor([toy_tokenizer(EN[0])["input_ids"]])
    with torch.no_grad():
        assert model(input_ids=x, labels=x).loss < init(input_ids=x, labels=x).loss


def test_interrupted_pretraining_resumes_to_the_same_weights(tmp_path, toy_tokenizer, monkeypatch):
    from afp_lib.world import pretrain as pt
    _write_corpus(tmp_path, {"en": EN, "zh": ZH, "sw": SW})
    toy_tokenizer.save_pretrained(tmp_path / "tok")
    cfg = tiny_cfg()
    pt.pretrain(cfg, "xglm", tmp_path / "corpus", tmp_path / "tok", tmp_path / "straight", tmp_path / "ck1")

    real_save = pt._save_checkpoint

    def save_then_crash(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt  # the machine went away right after the step-3 checkpoint

    monkeypatch.setattr(pt, "_save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        pt.pretrain(cfg, "xglm", tmp_path / "corpus", tmp_path / "tok", tmp_path / "resumed", tmp_path / "ck2")
    assert not (tmp_path / "resumed").exists()
    monkeypatch.setattr(pt, "_save_checkpoint", real_save)
    report = pt.pretrain(cfg, "xglm", tmp_path / "corpus", tmp_path / "tok", tmp_path / "resumed", tmp_path / "ck2")
    assert report["resumed_from"] == 3
    a = AutoModelForCausalLM.from_pretrained(tmp_path / "straight").state_dict()
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "resumed").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit for bit


def test_precision_setting_is_checked_before_any_work(tmp_path):
    from afp_lib.world.pretrain import pretrain
    with pytest.raises(ValueError, match=r"world.pretrain.precision='none' is not a precision; use one of auto, bf16, fp32"):
        pretrain(tiny_cfg(pretrain={"precision": "none"}), "xglm", tmp_path / "corpus", tmp_path / "tok",
                 tmp_path / "m", tmp_path / "ck")


# --- diagnostic --------------------------------------------------------------------------------------------

def test_heldout_perplexity_matches_a_hand_computed_loss(tiny_models, toy_tokenizer):
    from afp_lib.world.diagnose import fit_text, heldout_perplexity
    model = tiny_models["xglm"]
    lines = ["The cat sat on the mat.", "猫坐在垫子上。", "Mbwa anakimbia bustanini."]
    r = heldout_perplexity(model, toy_tokenizer, lines, max_tokens=64, batch_size=2)
    nll, n = 0.0, 0
    with torch.no_grad():
        for line in lines:
            x = torch.tensor([toy_tokenizer(line)["input_ids"]])
            loss = model(input_ids=x, labels=x).loss.item()
            nll, n = nll + loss * (x.size(1) - 1), n + x.size(1) - 1
    assert r["tokens"] == n and r["perplexity"] == pytest.approx(math.exp(nll / n), rel=1e-4)
    assert r["bits_per_byte"] == pytest.approx(nll / math.log(2) / sum(len(t.encode()) for t in lines), rel=1e-4)
    ids, text = fit_text(toy_tokenizer, "The cat sat on the mat. " * 30, 20)
    assert len(ids) <= 20 and ids == toy_tokenizer(text)["input_ids"] and len(text) > 10


def test_heldout_perplexity_bounds_the_logits_of_one_forward(tiny_models, toy_tokenizer):
    """A large vocabulary scores fewer lines per forward (Gemma 3: 262k logits per token), with the same result."""
    from afp_lib.world.diagnose import heldout_perplexity
    model = tiny_models["xglm"]
    lines = ["The cat sat on the mat.", "猫坐在垫子上。", "Mbwa anakimbia bustanini.", "Bir köpek parkta koşuyor.",
             "A dog runs in the park and the cat watches it from the mat."]
    shapes = []
    hook = model.register_forward_pre_hook(lambda m, a, kw: shapes.append(tuple(kw["input_ids"].shape)),
                                           with_kwargs=True)
    try:
        full = heldout_perplexity(model, toy_tokenizer, lines, max_tokens=64, batch_size=8)
        assert [b for b, _ in shapes] == [5]
        budget = 4 * model.get_output_embeddings().weight.shape[0] * 2 * max(t for _, t in shapes)   # two long lines
        shapes.clear()
        small = heldout_perplexity(model, toy_tokenizer, lines, max_tokens=64, batch_size=8, logits_bytes=budget)
    finally:
        hook.remove()
    assert len(shapes) > 1 and sum(b for b, _ in shapes) == len(lines)
    assert all(4 * model.get_output_embeddings().weight.shape[0] * b * t <= budget for b, t in shapes)
    assert small["tokens"] == full["tokens"] and small["perplexity"] == pytest.approx(full["perplexity"], rel=1e-5)


def test_bitext_gap_finds_identical_sentences(tiny_models, toy_tokenizer):
    from afp_lib.world.diagnose import bitext_gap, by_script
    sents = ["The cat sat on the mat.", "猫坐在垫子上。", "Bir köpek parkta koşuyor.", "สุนัขวิ่งในสวน", "Paka alikaa."]
    r = bitext_gap(tiny_models["bloom"], toy_tokenizer, [(s, s) for s in sents], layer=1, pooling="mean",
                   batch_size=2, max_tokens=32)
    assert r["retrieval_xx2en"] == 1.0 and r["alignment"] == pytest.approx(0.0, abs=1e-5) and r["cos_gap"] > 0
    s = by_script({"tr": {**r, "retrieval_xx2en": 0.2}, "sw": {**r, "retrieval_xx2en": 0.4}, "th": r})
    assert s["Latin"]["retrieval_xx2en"] == pytest.approx(0.3) and s["Thai"]["langs"] == ["th"]


# --- the world API -----------------------------------------------------------------------------------------

def test_base_model_paper_names_hub_ids_and_missing_worlds_say_how_to_build(tmp_path, monkeypatch):
    from afp_lib.world import base_model, world_dir
    monkeypatch.setenv("AFP_RUNS", str(tmp_path))
    assert base_model("paper", "xglm") == "facebook/xglm-564M"
    assert base_model("paper", "bloom-7b1") == "bigscience/bloom-7b1"
    assert world_dir("smoke") == tmp_path / "world" / "smoke"
    with pytest.raises(FileNotFoundError, match="dvc repro.*world all --profile smoke"):
        base_model("smoke", "xglm")
    with pytest.raises(KeyError, match="not built"):
        base_model("smoke", "gpt2")


def test_ensure_world_builds_only_what_is_missing_or_stale(tmp_path, monkeypatch):
    import afp_lib.world as world
    from afp_lib.world import steps
    monkeypatch.setenv("AFP_RUNS", str(tmp_path))
    calls = []

    def fake(step, target):
        def run(profile, cfg, *arch):
            calls.append((step, *arch))
            name = "token_stats.json" if step == "tokenizer" else ("stats.json" if step == "corpus" else "pretrain.json")
            path = world.world_dir(profile) / (arch[0] if arch else target) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"fingerprint": world.fingerprints(cfg)[step if not arch else "model"]}))
            if step == "tokenizer":   # the trained tokenizer's bytes, which a pretrained model folder copies
                (path.parent / "tokenizer.json").write_text(tokens[0])
            if arch:
                shutil.copy(world.world_dir(profile) / "tokenizer/tokenizer.json", path.parent / "tokenizer.json")
        return run

    tokens = ["tokens v1"]

    monkeypatch.setattr(steps, "corpus", fake("corpus", "corpus"))
    monkeypatch.setattr(steps, "tokenizer", fake("tokenizer", "tokenizer"))
    monkeypatch.setattr(steps, "pretrain", fake("pretrain", None))
    world.ensure_world("smoke")
    assert calls == [("corpus",), ("tokenizer",), ("pretrain", "xglm"), ("pretrain", "bloom")]
    calls.clear()
    world.ensure_world("smoke")
    assert calls == []
    (tmp_path / "world/smoke/bloom/pretrain.json").unlink()
    world.ensure_world("smoke")
    assert calls == [("pretrain", "bloom")]
    assert world.base_model("smoke", "bloom") == str(tmp_path / "world/smoke/bloom")
    # a fresh clone: the committed models without the corpus and tokenizer, which rebuild to the same bytes
    calls.clear()
    shutil.rmtree(tmp_path / "world/smoke/corpus")
    shutil.rmtree(tmp_path / "world/smoke/tokenizer")
    world.ensure_world("smoke")
    assert calls == [("corpus",), ("tokenizer",)]
    # other tokens under the same config (the tokenizer's code changed): every model is pretrained again
    calls.clear()
    tokens[0] = "tokens v2"
    shutil.rmtree(tmp_path / "world/smoke/corpus")
    world.ensure_world("smoke")
    assert calls == [("corpus",), ("tokenizer",), ("pretrain", "xglm"), ("pretrain", "bloom")]
    with pytest.raises(ValueError, match="hub models"):
        world.ensure_world("paper")


def test_the_mini_world_is_its_corpus_alone(tmp_path, monkeypatch, capsys):
    """mini's sections align the pretrained models of params.yaml `models`: its world builds the corpus (the
    probes' held-out text) and nothing else, and asking it for a toy model says what to use instead."""
    import afp_lib.world as world
    from afp_lib.world import steps
    from afp_lib.world.cli import main
    monkeypatch.setenv("AFP_RUNS", str(tmp_path))
    calls = []

    def corpus(profile, cfg):
        calls.append("corpus")
        path = world.world_dir(profile) / "corpus" / "stats.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"fingerprint": world.fingerprints(cfg)["corpus"]}))

    def other(step):
        return lambda *a: calls.append(step)
    monkeypatch.setattr(steps, "corpus", corpus)
    for step in ("tokenizer", "pretrain", "diagnose"):
        monkeypatch.setattr(steps, step, other(step))
    assert world.load_world_config("mini").archs == []
    assert world.ensure_world("mini") == tmp_path / "world" / "mini"
    assert calls == ["corpus"] and sorted(p.name for p in (tmp_path / "world" / "mini").iterdir()) == ["corpus"]
    assert main(["all", "--profile", "mini"]) == 0 and calls == ["corpus"]   # current: nothing rebuilt, no diagnostic
    with pytest.raises(KeyError, match=r"the mini world builds no models .*gemma3-270m.*profile smoke"):
        world.base_model("mini", "xglm")
    for step in ("tokenizer", "pretrain", "diagnose"):
        with pytest.raises(SystemExit):
            main([step, "--profile", "mini"])
        assert "the mini world is its corpus alone" in capsys.readouterr().err
    assert calls == ["corpus"]


def test_cli_paper_steps_only_leave_a_note(tmp_path, monkeypatch):
    from afp_lib.world.cli import main
    monkeypatch.setenv("AFP_RUNS", str(tmp_path))
    assert main(["pretrain", "--profile", "paper"]) == 0
    note = json.loads((tmp_path / "world/paper/xglm/NOTE.json").read_text())
    assert note["models"]["xglm-7.5B"] == "facebook/xglm-7.5B"
    with pytest.raises(SystemExit):
        main(["pretrain", "--profile", "smoke", "--arch", "gpt2"])


def test_checkpoint_of_other_data_is_not_resumed(tmp_path, toy_tokenizer, monkeypatch):
    from afp_lib.world import pretrain as pt
    _write_corpus(tmp_path, {"en": EN, "zh": ZH, "sw": SW})
    toy_tokenizer.save_pretrained(tmp_path / "tok")
    real_save = pt._save_checkpoint

    def save_then_crash(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(pt, "_save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        pt.pretrain(tiny_cfg(), "bloom", tmp_path / "corpus", tmp_path / "tok", tmp_path / "m", tmp_path / "ck")
    monkeypatch.setattr(pt, "_save_checkpoint", real_save)
    _write_corpus(tmp_path, {"en": list(reversed(EN))})  # the corpus was rebuilt differently meanwhile
    report = pt.pretrain(tiny_cfg(), "bloom", tmp_path / "corpus", tmp_path / "tok", tmp_path / "m", tmp_path / "ck")
    assert report["resumed_from"] == 0
