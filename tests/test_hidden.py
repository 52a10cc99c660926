import pytest
import torch

from afp_lib.hidden import decoder_layers, pooling_mask, hidden_at_layer, pool, right_padded, sentence_embeddings
from afp_lib.models import ARCHS


def batch(tokenizer, texts, side="right"):
    tokenizer.padding_side = side
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    tokenizer.padding_side = "right"
    return enc["input_ids"], enc["attention_mask"]


@pytest.mark.parametrize("arch", ARCHS)
def test_early_exit_equals_full_forward_every_layer(arch, tiny_models, toy_tokenizer):
    model = tiny_models[arch]
    ids, mask = batch(toy_tokenizer, ["The cat sat on the mat.", "猫坐在垫子上。", "Mbwa"])
    with torch.no_grad():
        full = model.base_model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        for layer in range(model.config.num_hidden_layers + 1):
            early = hidden_at_layer(model, ids, mask, layer)
            torch.testing.assert_close(early, full[layer], rtol=0, atol=1e-6)


@pytest.mark.parametrize("arch", ["xglm", "llama"])
def test_early_exit_runs_no_later_block(arch, tiny_models, toy_tokenizer):
    model = tiny_models[arch]
    calls = []
    hooks = [b.register_forward_hook(lambda m, a, o, i=i: calls.append(i)) for i, b in enumerate(decoder_layers(model))]
    ids, mask = batch(toy_tokenizer, ["The cat sat."])
    try:
        hidden_at_layer(model, ids, mask, 1)
    finally:
        for h in hooks:
            h.remove()
    assert calls == [0]


@pytest.mark.parametrize("arch", ARCHS)
def test_length_groups_give_the_same_vectors_and_gradients(arch, tiny_models, toy_tokenizer):
    """Grouping rows by length only drops padding: vectors (every pooling) and gradients are unchanged."""
    model = tiny_models[arch]
    texts = ["The cat sat on the mat and looked at the dog for a long time.", "猫坐在垫子上。", "Mbwa", "Kedi",
             "Tom is here.", "ทอมอยู่ที่นี่", "A much longer sentence than the others, with many words in it."]
    ids, mask = batch(toy_tokenizer, texts)
    widths = []  # the width of every early-exit call: three groups, each as wide as its longest row
    hook = decoder_layers(model)[0].register_forward_pre_hook(
        lambda m, a, kw: widths.append((a[0] if a else kw["hidden_states"]).size(1)), with_kwargs=True)
    try:
        for pooling in ("mean", "max", "last"):
            one = sentence_embeddings(model, ids, mask, 1, pooling)
            three = sentence_embeddings(model, ids, mask, 1, pooling, length_groups=3)
            torch.testing.assert_close(three, one, rtol=1e-5, atol=1e-6)
    finally:
        hook.remove()
    assert len(widths) == 12 and widths[1] < widths[2] < widths[3] == widths[0] == ids.size(1)
    grads = []
    for groups in (1, 3):
        model.zero_grad()
        sentence_embeddings(model, ids, mask, 1, "mean", length_groups=groups).square().sum().backward()
        grads.append(next(model.get_input_embeddings().parameters()).grad.clone())
    model.zero_grad()
    # Summation order changes with the group widths, so equal means equal up to fp32 rounding at the gradient's
    # scale (CI once saw one of 12,800 entries off by 1.4e-5 of a 0.13 entry); a padding leak would be of order 1.
    scale = grads[0].abs().max().item()
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-4 * scale)


def test_length_groups_leave_left_padded_rows_to_one_call(tiny_models, toy_tokenizer):
    model = tiny_models["xglm"]
    ids, mask = batch(toy_tokenizer, ["The cat sat on the mat.", "Mbwa", "Kedi", "Tom is here."], side="left")
    assert not right_padded(mask) and right_padded(batch(toy_tokenizer, ["The cat sat.", "Mbwa"])[1])
    calls = []
    hook = decoder_layers(model)[0].register_forward_pre_hook(lambda m, a, kw: calls.append(1), with_kwargs=True)
    try:
        left = sentence_embeddings(model, ids, mask, 1, "mean", length_groups=2)
    finally:
        hook.remove()
    assert len(calls) == 1
    torch.testing.assert_close(left, sentence_embeddings(model, ids, mask, 1, "mean"))


def test_layer_out_of_range(tiny_models, toy_tokenizer):
    ids, mask = batch(toy_tokenizer, ["x"])
    with pytest.raises(ValueError, match="layer=4 is out of range for a 3-block model"):
        hidden_at_layer(tiny_models["xglm"], ids, mask, 4)


def test_pooling_ignores_padding_left_and_right():
    torch.manual_seed(0)
    h = torch.randn(2, 5, 4)
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    for how in ("mean", "max", "last"):
        a = pool(h[:, :3], right[:, :3], how)[0]
        b = pool(h, right, how)[0]
        torch.testing.assert_close(a, b)
    # left padding: the same three tokens shifted right
    left_h = torch.cat([torch.zeros(1, 2, 4), h[:1, :3]], 1)
    left = torch.tensor([[0, 0, 1, 1, 1]])
    for how in ("mean", "max", "last"):
        torch.testing.assert_close(pool(left_h, left, how)[0], pool(h[:1, :3], right[:1, :3], how)[0])
    torch.testing.assert_close(pool(h, right, "last")[0], h[0, 2])
    torch.testing.assert_close(pool(h, right, "mean")[0], h[0, :3].mean(0))


def test_mean_skip_bos_leaves_out_the_bos_only(tiny_models, toy_tokenizer):
    """The BOS state is the same for every sentence (causal attention): mean_skip_bos averages the others,
    left or right padded, and equals the plain mean where the model's BOS id does not occur (SmolLM2)."""
    model = tiny_models["xglm"]
    bos = model.config.bos_token_id
    ids, mask = batch(toy_tokenizer, ["a b c d", "x"])
    assert (ids[:, 0] == bos).all()
    h = hidden_at_layer(model, ids, mask, 1)
    got = sentence_embeddings(model, ids, mask, 1, "mean_skip_bos")
    n = int(mask[0].sum())
    torch.testing.assert_close(got[0], h[0, 1:n].mean(0))
    left_ids, left_mask = ids.flip(1), mask.flip(1)   # reversed rows: only the masks' positions matter to pool
    pm = pooling_mask(model, left_ids, left_mask, "mean_skip_bos")
    assert pm.sum() == mask.sum() - 2 and (pm * (left_ids == bos)).sum() == 0
    plain = ids.masked_fill(ids == bos, bos + 1)
    assert torch.equal(pooling_mask(model, plain, mask, "mean_skip_bos"), mask)


@pytest.mark.parametrize("how", ["mean", "max", "last", "mean_skip_bos"])
def test_pooling_a_bf16_model_gives_float32_vectors(how):
    """A bf16 model's vectors are pooled in float32: the mean of 64 bf16 states is not rounded back to bf16."""
    torch.manual_seed(0)
    hidden = torch.randn(3, 64, 16).to(torch.bfloat16)
    mask = torch.ones(3, 64, dtype=torch.long)
    mask[1, 40:] = 0
    got = pool(hidden, mask, how)
    assert got.dtype == torch.float32
    assert torch.equal(got, pool(hidden.float(), mask, how))
