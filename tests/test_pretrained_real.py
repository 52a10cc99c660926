"""The converted real models in runs/models/ (dvc.yaml models_convert; skipped where they are absent, as
in CI): they load with afp's `load_model`, are registered families with plain heads, their tokenizers add
what afp expects, the early exit and the cached scorer agree with the plain forward on them (Gemma: past
its 512-token sliding window), and SmolLM2's logits equal the GGUF-loaded model's where its package is
installed (Gemma's took 1.5 minutes to load from GGUF: docs/pretrained-models.md has that comparison)."""
from __future__ import annotations

import importlib.util
import json
import tempfile
from pathlib import Path

import pytest
import torch

from afp_lib import pretrained
from afp_lib.eval.requests import Request, start_ids
from afp_lib.eval.scorer import loglikelihood, loglikelihood_reference
from afp_lib.families import plain_head, sliding_window
from afp_lib.hidden import decoder_layers, hidden_at_layer, n_layers
from afp_lib.models import load_model

SHAPES = {"gemma3-270m": ("gemma3_text", 18, 640), "smollm2-135m": ("llama", 30, 576)}
TEXTS = ["The cat sat on the mat.", "猫坐在垫子上。", "Mbwa anakimbia bustanini, na paka pia."]


@pytest.fixture(scope="module", params=list(SHAPES))
def converted(request):
    folder = pretrained.model_dir(request.param)
    if not (folder / "source.json").is_file():
        pytest.skip(f"{folder} is not converted (dvc repro models_convert)")
    model, tok = load_model(str(folder))
    return request.param, folder, model.eval(), tok


def test_folder_and_source(converted):
    name, folder, model, _ = converted
    arch, layers, width = SHAPES[name]
    src = pretrained.model_sources()[name]
    source = json.loads((folder / "source.json").read_text())
    assert (source["package"], source["version"], source["gguf"]) == (src.package, src.version, src.gguf)
    assert src.sha256 is None or source["gguf_sha256"] == src.sha256
    assert model.config.model_type == arch and n_layers(model) == len(decoder_layers(model)) == layers
    assert model.config.hidden_size == width and plain_head(model.config)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_tokenizer_specials(converted):
    name, _, _, tok = converted
    if name == "gemma3-270m":
        assert tok("The cat").input_ids[0] == tok.bos_token_id == 2 and tok.padding_side == "left"
        assert (tok.eos_token, tok.pad_token) == ("<eos>", "<pad>")
        assert len(tok("<start_of_turn>user", add_special_tokens=False).input_ids) == 2
    else:  # ChatML specials; nothing added, so prompts start with its BOS
        assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|im_start|>", "<|im_end|>", "<|im_end|>")
        assert tok("The cat").input_ids[0] not in tok.all_special_ids and start_ids(tok) == [tok.bos_token_id]


def test_early_exit_equals_the_full_forward(converted):
    _, _, model, tok = converted
    enc = tok(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        full = model.base_model(**enc, output_hidden_states=True).hidden_states
        for layer in (1, 9):
            real = enc["attention_mask"].bool()
            torch.testing.assert_close(hidden_at_layer(model, enc["input_ids"], enc["attention_mask"], layer)[real],
                                       full[layer][real], rtol=1e-4, atol=1e-4)


def test_cached_scorer_past_the_sliding_window(converted):
    _, _, model, tok = converted
    text = " ".join(["The cat sat on the mat while a dog ran in the park and we watched them."] * 40)
    ids = tok(text)["input_ids"]
    window = sliding_window(model.config) or 256
    assert len(ids) > window + 20
    prefix = tuple(ids[:window + 8])  # the items' tokens start past the window
    reqs = [Request(prefix, tuple(ids[window + 8:window + 8 + n]), 1, i, 0) for i, n in enumerate((6, 12))]
    got, ref = loglikelihood(model, reqs, batch_size=2), loglikelihood_reference(model, reqs)
    assert max(abs(a - b) for a, b in zip(got, ref)) < 1e-3


def test_smollm2_logits_equal_the_gguf_models(converted):
    name, _, model, tok = converted
    src = pretrained.model_sources()[name]
    if name != "smollm2-135m" or importlib.util.find_spec(src.module) is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("SmolLM2 only, with its GGUF package and `gguf` installed (make setup-models)")
    with tempfile.TemporaryDirectory() as tmp:
        ref, ref_tok = pretrained.load_gguf(pretrained.locate_gguf(src, Path(tmp)))
    for text in TEXTS:
        ids = tok(text)["input_ids"]
        assert ids == ref_tok(text)["input_ids"]
        with torch.no_grad():
            torch.testing.assert_close(model(input_ids=torch.tensor([ids])).logits,
                                       ref(input_ids=torch.tensor([ids])).logits, rtol=1e-5, atol=1e-5)
