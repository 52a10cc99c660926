"""CIT samples (Eq. 3), pair policies (§3.3.1) and their token encodings."""
import pytest

from afp_lib import cit
from afp_lib.losses import IGNORE
from afp_lib.trainer import collate

PAIRS = [{"src": f"English sentence {i}.", "tgt": f"中文句子{i}。", "src_lang": "en", "tgt_lang": "zh"}
         for i in range(400)]


def test_language_names_and_prompts():
    assert cit.answer_prompt("zh") == "Answer in Chinese:"
    assert cit.translate_prompt("sw") == "Translate into Swahili:"
    with pytest.raises(KeyError, match="no language name for code 'xx'"):
        cit.answer_prompt("xx")


@pytest.mark.parametrize("p_src", [0.0, 0.3, 1.0])
def test_translation_samples_follow_p_src(p_src):
    samples = cit.translation_samples(PAIRS, p_src, seed=1)
    assert len(samples) == len(PAIRS)  # one sample per pair, nothing dropped
    same = 0
    for s, p in zip(samples, PAIRS):
        assert s["context"].endswith(cit.answer_prompt(s["tgt_lang"]))
        assert s["response"] == (p["src"] if s["tgt_lang"] == "en" else p["tgt"])  # answer is in its language
        assert s["context"].startswith(p["src"] if s["src_lang"] == "en" else p["tgt"])
        same += s["src_lang"] == s["tgt_lang"]
    assert same / len(samples) == pytest.approx(p_src, abs=0.07)
    if 0 < p_src < 1:  # both directions occur among the cross-lingual samples
        assert {s["src_lang"] for s in samples if s["src_lang"] != s["tgt_lang"]} == {"en", "zh"}


def test_translate_prompt_mode():
    s = cit.translation_samples(PAIRS[:1], 0.0, prompt="translate", seed=0)[0]
    assert "Translate into" in s["context"]


def test_alpaca_samples_skip_empty_outputs():
    rows = [{"instruction": "Name a colour.", "input": "", "output": "Blue."},
            {"instruction": "Add.", "input": "2 and 3", "output": "5"},
            {"instruction": "Empty.", "input": "", "output": "  "}]
    out = cit.alpaca_samples(rows)
    assert [s["context"] for s in out] == ["Name a colour. Answer in English:", "Add. 2 and 3 Answer in English:"]
    assert [s["response"] for s in out] == ["Blue.", "5"]
    assert len(cit.alpaca_samples(rows, limit=1)) == 1


def test_bactrian_samples_match_by_id():
    by_lang = {"en": [{"id": "a", "instruction": "Say hi", "input": "", "output": "Hi"},
                      {"id": "b", "instruction": "Count", "input": "to 2", "output": "1 2"}],
               "zh": [{"id": "b", "instruction": "数数", "input": "到2", "output": "一 二"},
                      {"id": "a", "instruction": "打招呼", "input": "", "output": "你好"},
                      {"id": "c", "instruction": "only zh", "input": "", "output": "x"}]}
    assert len(cit.match_by_id(by_lang)) == 2  # "c" has no English twin
    text = {("en", "a"): ("Say hi", "Hi"), ("zh", "a"): ("打招呼", "你好"),
            ("en", "b"): ("Count to 2", "1 2"), ("zh", "b"): ("数数 到2", "一 二")}
    for p_src in (0.0, 1.0):
        for s in cit.bactrian_samples(by_lang, p_src, seed=0):
            assert (s["src_lang"] == s["tgt_lang"]) == (p_src == 1.0)
            key = next(k for k in ("a", "b") if s["context"].startswith(text[(s["src_lang"], k)][0]))
            assert s["response"] == text[(s["tgt_lang"], key)][1]  # same id on both sides
            assert s["context"].endswith(cit.answer_prompt(s["tgt_lang"]))
    pairs = cit.bactrian_pairs(by_lang)
    assert {(p["src"], p["tgt"]) for p in pairs} == {("Say hi", "打招呼"), ("Count", "数数")}


def test_bridge_and_pairwise_policies():
    pivot = {"zh": [("Hello.", "你好。"), ("Cat.", "猫。")], "th": [("Hello.", "สวัสดี"), ("Dog.", "หมา")],
             "sw": [("Cat.", "Paka."), ("Hello.", "Habari.")]}
    bridge = cit.bridge_pairs(pivot)
    assert len(bridge) == 6 and all(p["src_lang"] == "en" for p in bridge)
    pairwise = cit.pairwise_pairs(pivot)
    extra = {(p["src_lang"], p["tgt_lang"], p["src"], p["tgt"]) for p in pairwise if p["src_lang"] != "en"}
    assert extra == {("sw", "th", "Habari.", "สวัสดี"), ("sw", "zh", "Paka.", "猫。"),
                     ("sw", "zh", "Habari.", "你好。"), ("th", "zh", "สวัสดี", "你好。")}


def test_encode_cit_masks_the_prompt(toy_tokenizer):
    samples = [{"context": "The cat sat. Answer in Chinese:", "response": "猫坐在垫子上。"}]
    (ids, labels), = collate.encode_cit(toy_tokenizer, samples, seq_len=128)
    ctx = toy_tokenizer(samples[0]["context"])["input_ids"]
    assert ids[:len(ctx)] == ctx and ids[0] == toy_tokenizer.bos_token_id
    assert labels[:len(ctx)] == [IGNORE] * len(ctx)
    assert labels[len(ctx):] == ids[len(ctx):] and ids[-1] == toy_tokenizer.eos_token_id
    assert toy_tokenizer.decode(ids[len(ctx):-1]) == " 猫坐在垫子上。"


def test_encode_cit_truncates_the_context_not_the_answer(toy_tokenizer, caplog):
    samples = [{"context": "The cat sat on the mat. " * 10 + "Answer in Chinese:", "response": "猫坐在垫子上。"}]
    with caplog.at_level("WARNING"):
        (ids, labels), = collate.encode_cit(toy_tokenizer, samples, seq_len=24)
    assert len(ids) == 24 and "1 contexts cut" in caplog.text
    resp = toy_tokenizer(" 猫坐在垫子上。", add_special_tokens=False)["input_ids"] + [toy_tokenizer.eos_token_id]
    assert ids[-len(resp):] == resp and labels[-len(resp):] == resp
    assert ids[0] == toy_tokenizer.bos_token_id


def test_clm_blocks_keep_the_remainder(toy_tokenizer):
    texts = ["The cat sat on the mat.", "A dog runs in the park.", "猫坐在垫子上。"]
    blocks = collate.clm_blocks(toy_tokenizer, texts, seq_len=8)
    stream = [t for ids in toy_tokenizer(texts)["input_ids"] for t in ids + [toy_tokenizer.eos_token_id]]
    assert [t for ids, _ in blocks for t in ids] == stream  # nothing dropped, EOS between documents
    assert all(len(ids) == 8 for ids, _ in blocks[:-1]) and 1 < len(blocks[-1][0]) <= 8


def test_pack_keeps_every_sample_whole():
    examples = [([1] * n, [IGNORE] * (n // 2) + [5] * (n - n // 2)) for n in (7, 3, 5, 2, 6, 4)]
    rows = collate.pack(examples, seq_len=10)
    assert all(len(ids) <= 10 for ids, _ in rows) and len(rows) < len(examples)
    assert sum(len(ids) for ids, _ in rows) == sum(len(ids) for ids, _ in examples)
    assert sum(l != IGNORE for _, labels in rows for l in labels) == sum(l != IGNORE for _, ls in examples for l in ls)


def test_pair_batch_stacks_sources_then_targets(toy_tokenizer):
    enc = collate.encode_pairs(toy_tokenizer, PAIRS[:3], seq_len=64)
    batch = collate.pair_batch(enc, [2, 0], pad_id=toy_tokenizer.pad_token_id)
    assert batch["input_ids"].shape[0] == 4
    assert batch["input_ids"][0, :len(enc[2][0])].tolist() == enc[2][0]
    assert batch["input_ids"][3, :len(enc[0][1])].tolist() == enc[0][1]
    assert batch["attention_mask"].sum().item() == sum(len(enc[i][0]) + len(enc[i][1]) for i in (0, 2))


# --- p_src semantics: the authors' (paper) and the offline stand-in (smoke, mini) ----------------------------

N_FAKE = 600


@pytest.fixture()
def fake_sources(monkeypatch):
    """OPUS-like EN-ZH pairs and Bactrian-X-like rows (matched ids) in place of the hub."""
    from afp_lib.trainer import data as tdata
    rows = [{"en": f"English sentence number {i}.", "zh": f"中文句子第{i}号。"} for i in range(N_FAKE)]
    monkeypatch.setattr(tdata, "load_parallel", lambda lang, source, pivot="en": {"translation": rows})
    bact = {lang: [{"id": str(i), "instruction": f"{lang} instruction {i}", "input": "", "output": f"{lang} output {i}"}
                   for i in range(N_FAKE)] for lang in ("en", "zh")}
    monkeypatch.setattr(tdata, "bactrian_by_lang", lambda langs: {lang: bact[lang] for lang in langs})


def _split(samples):
    """(translation samples, instruction samples): only translation samples carry `context_side`."""
    return [s for s in samples if "context_side" in s], [s for s in samples if "context_side" not in s]


@pytest.mark.parametrize("p_src", [0.5, 0.9])
def test_paper_translation_samples_always_translate(fake_sources, p_src):
    from afp_lib.trainer import build_train_data, load_train_config
    cfg = load_train_config("paper", [f"cit.p_src={p_src}", "data.dev_pairs=20"])
    assert cfg.translation_p_src == 0.0 and "bactrian" in cfg.cit.sources
    trans, instr = _split(build_train_data(cfg).cit)
    assert trans and instr
    assert all(s["src_lang"] != s["tgt_lang"] for s in trans)                    # no copy task
    assert not any(s["context"].startswith(s["response"]) for s in trans)
    en_first = sum(s["src_lang"] == "en" for s in trans if s["tgt_lang"] != "en") / len(trans)
    assert en_first == pytest.approx(0.5, abs=0.06)                             # direction swapped with prob. 0.5
    same = sum(s["src_lang"] == s["tgt_lang"] for s in instr) / len(instr)
    assert same == pytest.approx(p_src, abs=0.06)                               # p_src on instruction rows


def test_mini_keeps_p_src_on_translation_as_a_stand_in(fake_sources):
    from afp_lib.trainer import build_train_data, load_train_config
    for objective, p_src in (("afp", 0.5), ("bit", 1.0)):
        cfg = load_train_config("mini", [f"objective={objective}", "data.langs=[zh]", "cit.sources=[translation]"])
        assert cfg.cit.p_src_on_translation and cfg.translation_p_src == p_src
        data = build_train_data(cfg)
        # the same samples as before the semantics were split: mini numbers do not move
        assert data.cit == cit.translation_samples(data.pairs, cfg.p_src, cfg.cit.prompt, seed=cfg.seed)
        copies = sum(s["src_lang"] == s["tgt_lang"] for s in data.cit) / len(data.cit)
        assert copies == pytest.approx(p_src, abs=0.06)


def test_p_src_without_instruction_data_is_logged(fake_sources, caplog):
    from afp_lib.trainer import build_train_data, load_train_config
    cfg = load_train_config("paper", ["cit.sources=[translation]", "data.bactrian_pairs=false", "data.dev_pairs=20"])
    with caplog.at_level("WARNING"):
        data = build_train_data(cfg)
    assert "p_src=0.5 has no effect" in caplog.text
    assert all(s["src_lang"] != s["tgt_lang"] for s in data.cit)


# --- packing (the paper default) ------------------------------------------------------------------------------

def test_paper_packs_cit():
    from afp_lib.trainer import load_train_config
    assert load_train_config("paper").cit.pack and not load_train_config("mini").cit.pack


def test_packing_keeps_every_response_label_and_no_loss_crosses_samples(toy_tokenizer):
    samples = [{"context": f"{s} Answer in Chinese:", "response": r}
               for s, r in zip(["The cat sat.", "A dog runs in the park.", "We need ten."] * 7,
                               ["猫坐在垫子上。", "一只狗在公园里跑。", "我们需要十个。"] * 7)]
    encoded = collate.encode_cit(toy_tokenizer, samples, seq_len=64)
    rows = collate.pack(encoded, seq_len=64)
    assert len(rows) < len(encoded) and all(len(ids) <= 64 for ids, _ in rows)
    bos = toy_tokenizer.bos_token_id
    assert all(ids[0] == bos and ids.count(bos) == 1 for ids, _ in encoded)
    segments = []
    for ids, labels in rows:
        starts = [i for i, t in enumerate(ids) if t == bos] + [len(ids)]
        assert starts[0] == 0
        for a, b in zip(starts, starts[1:]):
            segments.append((ids[a:b], labels[a:b]))
            # the token after a boundary is the next sample's BOS, never a target: the loss of the previous
            # sample's last position (EOS -> BOS) is ignored, as nothing predicts one sample from another
            assert labels[a] == IGNORE
    # every sample appears whole, with exactly its labels (so every response token keeps its label)
    assert sorted(map(repr, segments)) == sorted(map(repr, encoded))
