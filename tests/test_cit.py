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


def _bactrian(by_lang, p_src=0.5, seed=0, policy="bridge", pivot="en"):
    """(pairs, samples) of Bactrian-X rows `by_lang` through the reader the trainer uses (streamed_bactrian)."""
    from unittest import mock

    import datasets

    from afp_lib.trainer import data as D
    from afp_lib.trainer.config import load_train_config, replace
    cfg = load_train_config("smoke")
    cfg = replace(cfg, seed=seed, cit=replace(cfg.cit, p_src=p_src),
                  data=replace(cfg.data, pivot=pivot, policy=policy, langs=[x for x in by_lang if x != pivot]))
    with mock.patch.object(D, "load_split", lambda hub_id, lang, split: datasets.Dataset.from_list(by_lang[lang])):
        reader = D.streamed_bactrian(cfg)
        return list(reader.pairs()), list(reader.samples())


def test_bactrian_samples_match_by_id():
    by_lang = {"en": [{"id": "a", "instruction": "Say hi", "input": "", "output": "Hi"},
                      {"id": "b", "instruction": "Count", "input": "to 2", "output": "1 2"}],
               "zh": [{"id": "b", "instruction": "数数", "input": "到2", "output": "一 二"},
                      {"id": "a", "instruction": "打招呼", "input": "", "output": "你好"},
                      {"id": "c", "instruction": "only zh", "input": "", "output": "x"}]}
    assert len(_bactrian(by_lang)[0]) == 2  # one en-zh pair per id: "c" has no English twin
    text = {("en", "a"): ("Say hi", "Hi"), ("zh", "a"): ("打招呼", "你好"),
            ("en", "b"): ("Count to 2", "1 2"), ("zh", "b"): ("数数 到2", "一 二")}
    for p_src in (0.0, 1.0):
        for s in _bactrian(by_lang, p_src, seed=0)[1]:
            assert (s["src_lang"] == s["tgt_lang"]) == (p_src == 1.0)
            key = next(k for k in ("a", "b") if s["context"].startswith(text[(s["src_lang"], k)][0]))
            assert s["response"] == text[(s["tgt_lang"], key)][1]  # same id on both sides
            assert s["context"].endswith(cit.answer_prompt(s["tgt_lang"]))
    pairs = _bactrian(by_lang)[0]
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


# --- Bactrian-X samples follow data.policy (§3.3.1) --------------------------------------------------------

LANGS5 = ["en", "sw", "th", "tr", "zh"]


def fake_bactrian(langs, n):
    """Bactrian-X-shaped rows (instruction/input/id/output) per language, ids shuffled per language, one
    empty output (id 7, in zh) and one id missing in th."""
    import random
    out = {}
    for lang in langs:
        rows = [{"id": f"id{i}", "instruction": f"{lang} instruction {i}", "input": f"{lang} input {i}" if i % 3 else "",
                 "output": "" if (lang, i) == ("zh", 7) else f"{lang} output {i}"} for i in range(n)
                if (lang, i) != ("th", 5)]
        random.Random(lang).shuffle(rows)
        out[lang] = rows
    return out


def test_language_pairs_of_each_policy():
    assert cit.language_pairs(["zh", "en", "th"], "bridge") == [("en", "th"), ("en", "zh")]
    assert cit.language_pairs(["zh", "en", "th"], "pairwise") == [("en", "th"), ("en", "zh"), ("th", "zh")]
    with pytest.raises(ValueError, match="data.policy='star' is invalid"):
        cit.language_pairs(["en", "zh"], "star")


def _check_sample_text(s, by_lang):
    """The context is language a's instruction (+ input) of some id, the response language b's output of the same id."""
    i = s["context"].split(f"{s['src_lang']} instruction ")[1].split()[0]
    assert s["context"].endswith(cit.answer_prompt(s["tgt_lang"]))
    assert s["response"] == f"{s['tgt_lang']} output {i}"
    assert any(r["id"] == f"id{i}" for r in by_lang[s["tgt_lang"]])


@pytest.mark.parametrize("policy", ["bridge", "pairwise"])
def test_bactrian_samples_follow_the_policy(policy):
    by_lang = fake_bactrian(LANGS5, 800)
    samples = _bactrian(by_lang, 0.5, seed=3, policy=policy)[1]
    ids = [s["context"].split(" instruction ")[1].split()[0] for s in samples]
    assert "5" not in ids and len(ids) == len(set(ids)) >= 800 - 2          # id 5 has no th row: not matched
    assert all(s["tgt_lang"] != "zh" for s, i in zip(samples, ids) if i == "7")  # id 7's zh output is empty
    assert len(ids) == 799 - ("7" not in ids)
    for s in samples:
        _check_sample_text(s, by_lang)
    cross = [(s["src_lang"], s["tgt_lang"]) for s in samples if s["src_lang"] != s["tgt_lang"]]
    assert len(cross) / len(samples) == pytest.approx(0.5, abs=0.05)
    with_en = sum("en" in d for d in cross) / len(cross)
    if policy == "bridge":                                  # English on one side of every cross-lingual sample
        assert with_en == 1.0
        assert {d for d in cross} == {(x, y) for x in LANGS5 for y in LANGS5 if x != y and "en" in (x, y)}
    else:                                                   # any two languages: 4 of the 10 pairs have English
        assert with_en == pytest.approx(0.4, abs=0.06)
        assert {d for d in cross} == {(x, y) for x in LANGS5 for y in LANGS5 if x != y}
    en_context = sum(a == "en" for a, _ in cross) / len(cross)
    assert en_context == pytest.approx(0.5 if policy == "bridge" else 0.2, abs=0.06)  # each pair's direction at 0.5


def test_bactrian_plan_p_src_changes_only_the_answer_language():
    """The pair and direction draws do not depend on p_src: a sweep over p_src varies only b."""
    plans = {p: cit.bactrian_plan(500, LANGS5, p, seed=1) for p in (0.0, 0.5, 1.0)}
    assert [a for a, _ in plans[0.0]] == [a for a, _ in plans[0.5]] == [a for a, _ in plans[1.0]]
    assert all(a == b for a, b in plans[1.0]) and all(a != b for a, b in plans[0.0])
    assert all(b in (a, b0) for (a, b), (_, b0) in zip(plans[0.5], plans[0.0]))
    assert cit.bactrian_plan(3, ["en"], 0.0) == [("en", "en")] * 3
    with pytest.raises(ValueError, match="lack the pivot 'en'"):
        cit.bactrian_plan(3, ["th", "zh"], 0.5)


def test_bactrian_pairs_follow_the_policy():
    by_lang = fake_bactrian(["en", "th", "zh"], 10)
    bridge, pairwise = _bactrian(by_lang)[0], _bactrian(by_lang, policy="pairwise")[0]
    assert len(bridge) == 2 * 9 and {(p["src_lang"], p["tgt_lang"]) for p in bridge} == {("en", "th"), ("en", "zh")}
    assert pairwise[:2] == bridge[:2] and len(pairwise) == 3 * 9
    th_zh = [p for p in pairwise if p["src_lang"] == "th"]
    assert all(p["tgt"] == p["src"].replace("th", "zh") for p in th_zh) and len(th_zh) == 9   # same id


# --- p_src: one rule for every multilingual sample, in every profile (docs/cit-data.md) -----------------------

N_FAKE = 600


@pytest.fixture()
def fake_sources(monkeypatch):
    """OPUS-like EN-XX pairs, Bactrian-X-like rows (matched ids) and Alpaca rows in place of the hub."""
    from afp_lib.trainer import data as tdata

    def parallel(lang, source, pivot="en"):
        return {"translation": [{"en": f"English sentence number {i}.", lang: f"{lang} sentence {i}."}
                                for i in range(N_FAKE)]}

    import datasets
    alpaca = [{"instruction": f"Say {k}.", "input": "", "output": f"{k}"} for k in range(50)]

    def split(hub_id, config, split):
        if hub_id == "MBZUAI/Bactrian-X":
            return datasets.Dataset.from_list(fake_bactrian([config], N_FAKE)[config])
        return alpaca

    monkeypatch.setattr(tdata, "load_parallel", parallel)
    monkeypatch.setattr(tdata, "load_split", split)


def _split(samples):
    """(translation samples, instruction samples): only translation samples carry `context_side`."""
    return [s for s in samples if "context_side" in s], [s for s in samples if "context_side" not in s]


def _is_copy(s):
    return s["context"].startswith(s["response"])


@pytest.mark.parametrize("profile", ["mini", "paper"])
@pytest.mark.parametrize("p_src", [0.0, 0.5, 1.0])
def test_p_src_acts_on_every_multilingual_sample(fake_sources, profile, p_src):
    from afp_lib.trainer import build_train_data, load_train_config
    cfg = load_train_config(profile, [f"cit.p_src={p_src}", "data.dev_pairs=20", "data.langs=[zh]",
                                      "cit.sources=[translation, bactrian, alpaca]", "cit.alpaca=50"])
    trans, instr = _split(build_train_data(cfg).cit)
    bactrian = [s for s in instr if s["src_lang"] != "en" or s["context"].startswith("en instruction")]
    assert trans and bactrian and len(instr) > len(bactrian)     # Alpaca rows are the others
    for group in (trans, bactrian):
        same = sum(s["src_lang"] == s["tgt_lang"] for s in group) / len(group)
        assert same == pytest.approx(p_src, abs=0.06)
    assert all(_is_copy(s) == (s["src_lang"] == s["tgt_lang"]) for s in trans)  # b = a: the answer repeats a
    cross = [s for s in trans if s["src_lang"] != s["tgt_lang"]]
    if cross:                                                    # direction swapped with probability 0.5
        assert sum(s["src_lang"] == "en" for s in cross) / len(cross) == pytest.approx(0.5, abs=0.07)


@pytest.mark.parametrize("profile", ["smoke", "mini", "paper"])
def test_bit_is_monolingual_in_every_profile(fake_sources, profile):
    """BIT (Table 8, Fig. 3c) and p_src = 1 (Fig. 4b): every sample answers in its context's language."""
    from afp_lib.trainer import build_train_data, load_train_config
    cfg = load_train_config(profile, ["objective=bit", "data.dev_pairs=4", "cit.p_src=0.5"])
    assert cfg.p_src == 1.0
    data = build_train_data(cfg)
    assert data.cit and all(s["src_lang"] == s["tgt_lang"] for s in data.cit)
    trans, _ = _split(data.cit)
    assert trans and all(_is_copy(s) for s in trans)
    assert {s["src_lang"] for s in trans} == {"en", *cfg.data.langs}   # both sides of the pairs appear


def test_mini_translation_samples_are_unchanged_by_the_one_rule(fake_sources):
    """mini's translation samples are those its former stand-in flag made (p_src on them): its AFP, CIT
    and BIT data do not move."""
    from afp_lib.trainer import build_train_data, load_train_config
    for objective in ("afp", "bit"):
        cfg = load_train_config("mini", [f"objective={objective}", "data.langs=[zh]", "cit.sources=[translation]"])
        data = build_train_data(cfg)
        assert data.cit == cit.translation_samples(data.pairs, cfg.p_src, cfg.cit.prompt, seed=cfg.seed)


def test_p_src_without_multilingual_samples_is_logged(fake_sources, caplog):
    from afp_lib.trainer import build_train_data, load_train_config
    cfg = load_train_config("paper", ["cit.sources=[alpaca]", "data.bactrian_pairs=false", "data.dev_pairs=20"])
    with caplog.at_level("WARNING"):
        data = build_train_data(cfg)
    assert "p_src=0.5 has no effect" in caplog.text
    assert data.cit and all(s["src_lang"] == s["tgt_lang"] == "en" for s in data.cit)
    caplog.clear()
    with caplog.at_level("WARNING"):
        build_train_data(load_train_config("paper", ["cit.sources=[translation]", "data.dev_pairs=20"]))
    assert "no effect" not in caplog.text


# --- BPre (objective clm) trains on the same text as CIT (Table 8) --------------------------------------------

@pytest.mark.parametrize("profile", ["mini", "paper"])
def test_bpre_trains_on_the_pairs_and_the_cit_samples_text(fake_sources, profile):
    from afp_lib.trainer import build_train_data, load_train_config
    over = ["data.dev_pairs=20", "data.langs=[zh, th]"]
    bpre = build_train_data(load_train_config(profile, ["objective=clm", *over]))
    cit_run = build_train_data(load_train_config(profile, ["objective=cit", *over]))
    assert bpre.pairs == cit_run.pairs and bpre.cit == [] and cit_run.cit
    want = [p[k] for p in bpre.pairs for k in ("src", "tgt")] + [cit.sample_text(s) for s in cit_run.cit]
    assert sorted(bpre.clm_texts) == sorted(want) and bpre.clm_texts != want      # the same text, shuffled
    assert any(" output " in t for t in bpre.clm_texts) == (profile == "paper")   # Bactrian-X answers (paper)
    assert all(t.count("Answer in ") == 1 for t in want[2 * len(bpre.pairs):])    # each sample's prompt kept


def test_a_callers_pairs_give_bpre_their_translation_text():
    from afp_lib.trainer import TrainData, load_train_config
    from afp_lib.trainer.data import build_train_data as complete
    cfg = load_train_config("mini", ["objective=clm"])
    given = TrainData(pairs=PAIRS[:50])
    done = complete(cfg, given)
    assert given.cit == [] and given.clm_texts == []                         # the caller's data is left as it was
    samples = cit.translation_samples(PAIRS[:50], cfg.p_src, seed=cfg.seed)
    want = [p[k] for p in PAIRS[:50] for k in ("src", "tgt")] + [cit.sample_text(s) for s in samples]
    assert sorted(done.clm_texts) == sorted(want) and done.cit == []
    assert complete(cfg, done) == done                                       # completing twice changes nothing
    own = TrainData(pairs=PAIRS[:5], clm_texts=["a document"])
    assert complete(cfg, own).clm_texts == ["a document"]                   # a caller's own CLM texts are kept
    cit_cfg = load_train_config("mini", ["objective=cit"])
    assert complete(cit_cfg, given).cit == samples and complete(cit_cfg, given).clm_texts == []


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
