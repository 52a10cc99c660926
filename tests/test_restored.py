"""Where a perplexity cost lives: one part of the vanilla model put back into an aligned one
(`analysis.probes.restore_part`), and the table and sentences the bilingual notebook prints from it."""
from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch

from afp_lib.analysis.findings import describe_restored, restored_table
from afp_lib.analysis.probes import model_parts, restore_part
from afp_lib.hidden import decoder_layers
from conftest import PAPER_ARCHS


def _perturbed(model, seed=0):
    """A copy of `model` with every embedding and block weight moved (what alignment does), norms included."""
    out = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in [out.get_input_embeddings(), *decoder_layers(out)]:
            for p in module.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    return out


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("arch", PAPER_ARCHS)
def test_restore_part_puts_back_exactly_one_part_and_leaves_the_model_alone(tiny_models, arch):
    vanilla = tiny_models[arch]
    aligned = _perturbed(vanilla)
    before = copy.deepcopy(aligned)
    assert model_parts(aligned) == ["embeddings", "block 1", "block 2", "block 3"]
    fixed = restore_part(aligned, vanilla, "block 2")
    assert _same(aligned, before)   # the aligned model itself is untouched
    blocks, van_blocks, old_blocks = decoder_layers(fixed), decoder_layers(vanilla), decoder_layers(aligned)
    assert _same(blocks[1], van_blocks[1])
    assert _same(blocks[0], old_blocks[0]) and _same(blocks[2], old_blocks[2])
    assert _same(fixed.get_input_embeddings(), aligned.get_input_embeddings())

    emb = restore_part(aligned, vanilla, "embeddings")
    assert _same(emb.get_input_embeddings(), vanilla.get_input_embeddings())
    assert all(_same(x, y) for x, y in zip(decoder_layers(emb), old_blocks))
    if emb.config.tie_word_embeddings:   # XGLM and BLOOM: the output layer is the same matrix and comes back too
        assert emb.get_output_embeddings().weight.data_ptr() == emb.get_input_embeddings().weight.data_ptr()


@pytest.mark.parametrize("arch", ["xglm", "bloom"])
def test_putting_back_every_part_gives_the_vanilla_models_predictions(tiny_models, toy_tokenizer, arch):
    vanilla = tiny_models[arch]
    model = _perturbed(vanilla)
    ids = toy_tokenizer(["The cat sat on the mat.", "猫坐在垫子上。"], return_tensors="pt", padding=True)
    with torch.no_grad():
        want = vanilla(**ids).logits
        assert not torch.allclose(model(**ids).logits, want)
        for part in model_parts(model):
            model = restore_part(model, vanilla, part)
        assert torch.equal(model(**ids).logits, want)


def test_restore_part_names_the_parts_it_knows(tiny_models):
    with pytest.raises(ValueError, match="block 4.*'embeddings', 'block 1'"):
        restore_part(tiny_models["xglm"], tiny_models["xglm"], "block 4")


def _rows(label, lang, values):
    return [{"label": label, "language": lang, "restored": part, "perplexity": p} for part, p in values.items()]


def test_restored_table_orders_parts_and_methods_and_adds_the_vanilla_column():
    restored = pd.DataFrame(
        _rows("AFP", "zh", {"block 2": 200.0, "(none)": 200.0, "block 1": 110.0, "embeddings": 180.0})
        + _rows("MCL", "zh", {"block 2": 400.0, "(none)": 400.0, "block 1": 100.0, "embeddings": 390.0})
        + _rows("AFP", "en", {"block 2": 90.0, "(none)": 90.0, "block 1": 95.0, "embeddings": 90.0}))
    ppl = pd.DataFrame([{"label": "vanilla", "language": "zh", "perplexity": 100.0},
                        {"label": "vanilla", "language": "en", "perplexity": 95.0},
                        {"label": "AFP", "language": "zh", "perplexity": 200.0}])
    t = restored_table(restored, ppl)
    assert list(t.columns) == ["language", "(none)", "embeddings", "block 1", "block 2", "vanilla"]
    assert list(zip(t.index, t["language"])) == [("MCL", "zh"), ("AFP", "en"), ("AFP", "zh")]   # findings' order
    assert list(t["vanilla"]) == [100.0, 95.0, 100.0]
    text = describe_restored(t)
    # AFP zh: cost 100; block 1 recovers 90 of it, the embeddings 20, block 2 nothing; largest first
    assert "**AFP, zh**: 200 as trained, vanilla 100; with the vanilla model's part put back (share of the " \
           "cost recovered): block 1 110 (90%), embeddings 180 (20%), block 2 200 (0%)." in text
    assert "**MCL, zh**: 400 as trained, vanilla 100" in text and "block 1 100 (100%)" in text
    assert "**AFP, en**: 90 as trained, vanilla 95: no cost to locate." in text
