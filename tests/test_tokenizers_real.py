"""The real tokenizer classes of the paper's models, built from small vocabularies trained here, through every
place that tokenizes: CIT collation, MCL pair encoding (and the shared AFP step), the ICL scorer,
translation and the answer-language probe.

- XGLM: `XGLMTokenizer`, a SentencePiece unigram vocabulary in fairseq order (<s> 0, <pad> 1, </s> 2,
  <unk> 3); it puts `</s>` in front of every text.
- Llama: `LlamaTokenizer` (= `LlamaTokenizerFast` in transformers 5), SentencePiece BPE with byte fallback,
  <unk> 0, <s> 1, </s> 2, no pad token; it puts `<s>` in front of every text.
- BLOOM: byte-level BPE (<unk> 0, <s> 1, </s> 2, <pad> 3) saved with `tokenizer_class: BloomTokenizerFast`
  as on the hub; it adds no special token at all.
- Gemma 3: `GemmaTokenizer`, BPE with byte fallback over "▁"-joined text, <pad> 0, <eos> 1, <bos> 2, <unk> 3,
  <mask> 4, <start_of_turn>, <end_of_turn>; it puts `<bos>` in front of every text and pads on the left.
- SmolLM2: byte-level BPE with the ChatML specials <|endoftext|> 0, <|im_start|> 1 (its BOS), <|im_end|> 2
  (its EOS and pad), as the GGUF's tokenizer converts (`TokenizersBackend`); it adds no special token.
Each is saved with a tiny random model of its architecture in the layout the hub publishes (XGLM and
Llama as fp16 `pytorch_model.bin`, the others as safetensors, as runs/models/ holds the converted GGUF
models) and loaded back through `load_model`. Gemma's tiny model has a sliding window of 8 tokens, so every
prompt here runs past it."""
from __future__ import annotations

import io
import json
import pickle

import pytest
import torch
from conftest import TOY_TEXT

from afp_lib.cit import translation_samples
from afp_lib.eval.prompts import Example, flores
from afp_lib.eval.requests import build_prefix, build_requests, encode, encode_examples, start_ids
from afp_lib.eval.scorer import loglikelihood, loglikelihood_reference
from afp_lib.eval.translation import greedy_generate, greedy_reference, stop_ids
from afp_lib.experiment import greedy_answers
from afp_lib.hidden import sentence_embeddings
from afp_lib.models import ModelShape, build_model, load_model
from afp_lib.trainer import collate
from afp_lib.trainer.shared import share_plan, shared_batches, shared_forward

spm = pytest.importorskip("sentencepiece")

ARCHS = ("xglm", "llama", "bloom", "gemma3", "smollm2")  # tokenizers; their models' family: FAMILY_OF
FAMILY_OF = {"xglm": "xglm", "llama": "llama", "bloom": "bloom", "gemma3": "gemma3_text", "smollm2": "llama"}
SHAPE = ModelShape(d_model=32, n_layers=2, n_heads=2, ffn_dim=64, max_positions=256)
CORPUS = list(dict.fromkeys(TOY_TEXT)) + [
    "Answer in Chinese:", "Answer in English:", "Answer in Turkish:", "Translate into Chinese:",
    "English: The cat sat on the mat. = Chinese: 猫坐在垫子上。", "Question: True, False or Neither? Yes, No, Also",
    "I knew that the answer was right,\nbecause the dog ran home.",
]
PAIRS = [{"src": "The cat sat on the mat.", "tgt": "猫坐在垫子上。", "src_lang": "en", "tgt_lang": "zh"},
         {"src": "A dog runs in the park.", "tgt": "一只狗在公园里跑。", "src_lang": "en", "tgt_lang": "zh"},
         {"src": "We need at least ten countries to join us.", "tgt": "我们需要至少十个国家加入我们。",
          "src_lang": "en", "tgt_lang": "zh"},
         {"src": "Kedi paspasın üzerine oturdu.", "tgt": "猫坐在垫子上。", "src_lang": "tr", "tgt_lang": "zh"}]


def _sentencepiece(model_type: str, vocab_size: int, **ids) -> bytes:
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS * 5), model_writer=buf, model_type=model_type,
                                   vocab_size=vocab_size, character_coverage=1.0, hard_vocab_limit=False,
                                   normalization_rule_name="identity", minloglevel=2, **ids)
    return buf.getvalue()


def xglm_tokenizer():
    from transformers import XGLMTokenizer
    sp = spm.SentencePieceProcessor(model_proto=_sentencepiece("unigram", 300, bos_id=0, pad_id=1, eos_id=2, unk_id=3))
    return XGLMTokenizer(vocab=[(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())])


def llama_tokenizer():
    """The merges of a SentencePiece BPE model: every split of a piece into two pieces, in the order of the
    merged piece (SentencePiece numbers BPE pieces by merge order), as transformers' converter does."""
    from transformers import LlamaTokenizer
    sp = spm.SentencePieceProcessor(model_proto=_sentencepiece("bpe", 700, byte_fallback=True, unk_id=0, bos_id=1,
                                                               eos_id=2, pad_id=-1))
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    normal = [p for p, i in vocab.items() if not (sp.is_control(i) or sp.is_byte(i) or sp.is_unknown(i))]
    merges = sorted(((p[:k], p[k:]) for p in normal for k in range(1, len(p)) if p[:k] in vocab and p[k:] in vocab),
                    key=lambda m: (vocab[m[0] + m[1]], vocab[m[0]], vocab[m[1]]))
    return LlamaTokenizer(vocab=vocab, merges=merges, add_bos_token=True)


def bloom_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS * 5, trainers.BpeTrainer(
        vocab_size=500, special_tokens=["<unk>", "<s>", "</s>", "<pad>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", padding_side="left")


def gemma_tokenizer():
    """Gemma's class on a vocabulary trained here: specials in Gemma's order, the 256 byte pieces, then BPE
    pieces with the "▁" in front of a word, as SentencePiece makes them."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GemmaTokenizer
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    tok.train_from_iterator(CORPUS * 5, trainers.BpeTrainer(
        vocab_size=700, special_tokens=specials + [f"<0x{b:02X}>" for b in range(256)], show_progress=False))
    state = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
    return GemmaTokenizer(vocab=state["vocab"], merges=merges, add_bos_token=True,
                          extra_special_tokens=["<start_of_turn>", "<end_of_turn>"])


def smollm2_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS * 5, trainers.BpeTrainer(
        vocab_size=500, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|im_end|>", unk_token="<|endoftext|>")


MAKERS = {"xglm": xglm_tokenizer, "llama": llama_tokenizer, "bloom": bloom_tokenizer, "gemma3": gemma_tokenizer,
          "smollm2": smollm2_tokenizer}


@pytest.fixture(scope="session")
def published(tmp_path_factory):
    """{arch: folder}: tokenizer + tiny random model saved as the hub publishes them, and the built model."""
    root = tmp_path_factory.mktemp("real_tokenizers")
    out = {}
    for arch in ARCHS:
        tok = MAKERS[arch]()
        folder = root / arch
        tok.save_pretrained(folder)
        model = build_model(FAMILY_OF[arch], SHAPE, tok, seed=0)
        if arch not in ("xglm", "llama"):
            model.save_pretrained(folder)
        if arch == "bloom":
            cfg = json.loads((folder / "tokenizer_config.json").read_text())
            (folder / "tokenizer_config.json").write_text(json.dumps({**cfg, "tokenizer_class": "BloomTokenizerFast"}))
        elif arch in ("xglm", "llama"):  # fp16 pickled weights only, like the XGLM repos' main branch and Llama-7B
            model.config.dtype = torch.float16
            model.config.save_pretrained(folder)
            torch.save({k: v.half() for k, v in model.state_dict().items()}, folder / "pytorch_model.bin")
        out[arch] = (folder, model)
    return out


@pytest.fixture(scope="session")
def loaded(published):
    return {arch: load_model(str(folder)) for arch, (folder, _) in published.items()}


def test_tokenizer_classes_and_special_tokens(loaded):
    xglm, llama, bloom = (loaded[a][1] for a in ("xglm", "llama", "bloom"))
    assert type(xglm).__name__ == "XGLMTokenizer" and type(llama).__name__ == "LlamaTokenizer"
    assert xglm("The cat").input_ids[0] == xglm.eos_token_id == 2           # XGLM: </s> first
    assert llama("The cat").input_ids[0] == llama.bos_token_id == 1         # Llama: <s> first
    assert bloom("The cat").input_ids[0] not in bloom.all_special_ids       # BLOOM: nothing added
    assert llama.pad_token == llama.eos_token                               # none shipped: load_model sets EOS
    assert start_ids(xglm) == [2] and start_ids(llama) == [1] and start_ids(bloom) == [bloom.bos_token_id]


def test_gemma_and_smollm2_special_tokens(loaded):
    """Gemma: `<bos>` first, left padding, its own pad; ChatML turn markers are single tokens. SmolLM2: nothing
    added, so every prompt starts with its BOS `<|im_start|>` (start_ids); EOS `<|im_end|>` doubles as pad,
    which padding masks and CIT labels never confuse (labels are padded with -100, not read off the ids)."""
    gemma, smol = loaded["gemma3"][1], loaded["smollm2"][1]
    assert type(gemma).__name__ == "GemmaTokenizer" and gemma.padding_side == "left"
    assert (gemma.pad_token_id, gemma.eos_token_id, gemma.bos_token_id) == (0, 1, 2)
    assert gemma("The cat").input_ids[0] == 2 and start_ids(gemma) == [2]
    assert gemma("<start_of_turn>user", add_special_tokens=False).input_ids[0] == gemma.convert_tokens_to_ids("<start_of_turn>")
    assert (smol.bos_token_id, smol.eos_token_id, smol.pad_token_id) == (1, 2, 2)
    assert smol("The cat").input_ids[0] not in smol.all_special_ids and start_ids(smol) == [1]
    (ids, labels), = collate.encode_cit(smol, [{"context": "Answer in English:", "response": "The cat"}], 64)
    batch = collate.lm_batch([(ids, labels), (ids[:3], [-100] * 3)], [0, 1], smol.pad_token_id)
    assert batch["labels"][0, -1] == smol.eos_token_id and (batch["labels"][1] == -100).all()
    assert batch["attention_mask"][1].tolist() == [1] * 3 + [0] * (len(ids) - 3)


@pytest.mark.parametrize("arch", ARCHS)
def test_load_model_reads_the_published_weights_as_fp32(arch, published, loaded):
    """XGLM/Llama: fp16 pytorch_model.bin only (weights-only unpickling); loaded as fp32 master weights."""
    _, built = published[arch]
    model, _ = loaded[arch]
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    for name, value in built.state_dict().items():
        expect = value.half().float() if arch in ("xglm", "llama") else value
        torch.testing.assert_close(model.state_dict()[name], expect, rtol=0, atol=0)


def test_load_model_refuses_pickled_code(tmp_path, published):
    """Weights-only loading: a .bin that would run code when unpickled is refused, not executed."""
    folder, built = published["llama"]
    for f in folder.iterdir():
        if f.name != "pytorch_model.bin":
            (tmp_path / f.name).write_bytes(f.read_bytes())
    torch.save({"weights": built.state_dict(), "payload": _Payload()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_model(str(tmp_path))


class _Payload:
    """An arbitrary class: only weights-only unpickling refuses it."""


@pytest.mark.parametrize("arch", ARCHS)
def test_cit_rows_are_the_joined_text(arch, loaded):
    """A CIT row is the tokenization of `context + " " + response` (+ EOS): the response starts as it does
    in running text, never with a piece the joined text does not have (a lone "▁" with SentencePiece)."""
    _, tok = loaded[arch]
    samples = translation_samples(PAIRS, p_src=0.5, seed=3) + [
        {"context": "Answer in Chinese:", "response": "猫坐在垫子上。"},
        {"context": "The cat sat on the mat. Answer in English:", "response": "The cat sat on the mat."}]
    rows = collate.encode_cit(tok, samples, seq_len=256)
    for s, (ids, labels) in zip(samples, rows):
        joined = tok(s["context"] + " " + s["response"])["input_ids"]
        assert ids == joined + [tok.eos_token_id]
        n_ctx = labels.count(-100)
        assert ids[:n_ctx] == tok(s["context"])["input_ids"] and labels[n_ctx:] == ids[n_ctx:]
        assert tok.decode(ids[n_ctx:], skip_special_tokens=True).strip() == s["response"]


def legacy_llama_tokenizer():
    """The pipeline of huggyllama/llama-7b's tokenizer.json as transformers 4 runs it (normalizer: prepend "▁",
    spaces to "▁"; transformers 5's LlamaTokenizer rebuilds it with a Metaspace pre-tokenizer instead). Here
    " " + text encodes as "▁▁text": a lone "▁" piece."""
    from tokenizers import Tokenizer, decoders, models, normalizers, processors
    from transformers import PreTrainedTokenizerFast
    state = json.loads(llama_tokenizer().backend_tokenizer.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
    tok = Tokenizer(models.BPE(vocab=state["vocab"], merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def test_cit_response_has_no_lone_metaspace_with_the_legacy_llama_pipeline():
    tok = legacy_llama_tokenizer()
    alone = tok.convert_ids_to_tokens(tok(" The cat", add_special_tokens=False)["input_ids"])
    assert alone[0] == "▁"  # what encoding the response alone gave
    (ids, labels), = collate.encode_cit(tok, [{"context": "Answer in English:", "response": "The cat"}], 64)
    assert ids == tok("Answer in English: The cat")["input_ids"] + [tok.eos_token_id]
    assert tok.convert_ids_to_tokens(ids[labels.count(-100):])[:2] == ["▁The", "▁cat"]


@pytest.mark.parametrize("arch", ARCHS)
def test_pairs_and_the_shared_afp_step(arch, loaded):
    """Pairs are encoded like any text (the start token first); every pair's context side is found as a
    token prefix of its CIT row, and the shared step's vectors equal separate early-exit vectors."""
    model, tok = loaded[arch]
    pairs = collate.encode_pairs(tok, PAIRS, seq_len=128)
    for (src, tgt), p in zip(pairs, PAIRS):
        assert src == tok(p["src"])["input_ids"] and tgt == tok(p["tgt"])["input_ids"]
    samples = translation_samples(PAIRS, p_src=0.5, seed=0)
    cit = collate.encode_cit(tok, samples, seq_len=128)

    class Cfg:  # the fields share_plan reads
        objective, batch_size, cit_batch_size = "afp", len(PAIRS), len(PAIRS)

        class cit:
            pack = False
    plan = share_plan(Cfg, pairs, cit, samples)
    assert plan is not None and all(s >= 0 for s in plan)
    idx = list(range(len(PAIRS)))
    pad_id = tok.pad_token_id
    batch, lm = shared_batches(pairs, cit, plan, idx, len(PAIRS), pad_id)
    z_src, z_tgt, _ = shared_forward(model, 1, "mean", batch, lm)
    full = collate.pair_batch(pairs, idx, pad_id)
    z = sentence_embeddings(model, full["input_ids"], full["attention_mask"], 1, "mean")
    torch.testing.assert_close(torch.cat([z_src, z_tgt]), z, rtol=1e-5, atol=1e-5)


EXAMPLES = [Example(tuple(f"The cat sat on the mat, right? {w}, a dog runs." for w in ("Yes", "Also", "No")), 0),
            Example(("猫坐在垫子上。", "一只狗在公园里跑。"), 1), Example(("A dog runs", "A dog runs in the park."), 1)]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("shots", [0, 2])
def test_icl_scorer(arch, shots, loaded):
    """Demonstrations are encoded each as a text of its own after the start token, joined by EOS; the cached
    scorer equals brute force with every tokenizer."""
    model, tok = loaded[arch]
    demos = ["The cat sat on the mat, right? Yes, a dog runs.", "猫坐在垫子上。 Mbwa anakimbia."][:shots]
    prefix = build_prefix(tok, demos)
    expect = list(start_ids(tok))
    for d in demos:
        expect += tok(d, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert list(prefix) == expect
    reqs = build_requests(encode_examples(tok, EXAMPLES), prefix)
    if arch == "gemma3":  # prompts longer than the sliding window: the cache holds every position (full_cache)
        assert max(len(r.prefix) + len(r.tokens) for r in reqs) > 2 * model.config.sliding_window
    got, ref = loglikelihood(model, reqs, batch_size=4), loglikelihood_reference(model, reqs)
    assert max(abs(a - b) for a, b in zip(got, ref)) < 1e-4


def test_xglm_segments_equal_the_joined_prompt(loaded):
    """With XGLM's tokenizer the segment-wise prompt is exactly the tokenization of the joined text."""
    _, tok = loaded["xglm"]
    demos, item = ["The cat sat on the mat, right? Yes, a dog runs.", "猫坐在垫子上。"], "A dog runs in the park."
    joined = tok("".join(d + tok.eos_token for d in demos) + item)["input_ids"]
    assert joined == list(build_prefix(tok, demos)) + encode(tok, [item])[0]


@pytest.mark.parametrize("arch", ARCHS)
def test_translation_generation(arch, loaded):
    """Stop tokens hold EOS and the newline pieces (Llama's is the byte <0x0A>); cached, batched greedy
    decoding equals the uncached reference."""
    model, tok = loaded[arch]
    stop = stop_ids(tok)
    assert tok.eos_token_id in stop
    newline = [i for i in tok("a\nb", add_special_tokens=False)["input_ids"] if "\n" in tok.decode([i])]
    assert newline and set(newline) <= stop
    prefix = build_prefix(tok, [flores("The cat sat on the mat.", "English", "Chinese", "猫坐在垫子上。")])
    prompts = encode(tok, [flores(s, "English", "Chinese") for s in ("A dog runs in the park.", "We need ten.")])
    got = greedy_generate(model, prefix, prompts, stop, max_new_tokens=6, batch_size=2)
    assert got == [greedy_reference(model, list(prefix) + p, stop, max_new_tokens=6) for p in prompts]


@pytest.mark.parametrize("arch", ARCHS)
def test_answer_language_probe_batches_like_single_prompts(arch, loaded):
    """The probe's left-padded batch gives every prompt the continuation it gets alone (Llama pads with EOS)."""
    model, tok = loaded[arch]
    prompts = ["The cat sat on the mat. Answer in Chinese:", "Mbwa anakimbia. Answer in Chinese:", "猫 Answer in English:"]
    side = tok.padding_side
    batched = greedy_answers(model, tok, prompts, max_new_tokens=5)
    assert tok.padding_side == side
    assert batched == [greedy_answers(model, tok, [p], max_new_tokens=5)[0] for p in prompts]
