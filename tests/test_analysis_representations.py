"""embed / pair_report on tiny random models: batching and order restoration change nothing, metrics match
afp_lib.metrics on the same vectors, identical sentence sets retrieve perfectly."""
import pytest
import torch

from afp_lib.analysis.representations import embed, pair_metrics, pair_report
from afp_lib.hidden import sentence_embeddings

SENTS = ["The cat sat on the mat.", "猫坐在垫子上。", "A dog runs in the park.", "Mbwa anakimbia bustanini.",
         "We need at least ten countries to join us.", "แมวนั่งบนเสื่อ", "Bir köpek parkta koşuyor."]


@pytest.mark.parametrize("arch", ["xglm", "llama"])
@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_embed_matches_one_sentence_at_a_time_in_input_order(tiny_models, toy_tokenizer, arch, pooling):
    model = tiny_models[arch]
    batched = embed(model, toy_tokenizer, SENTS, layer=2, pooling=pooling, batch_size=3)
    assert batched.shape == (len(SENTS), model.config.hidden_size) and batched.dtype == torch.float32
    for i, s in enumerate(SENTS):
        ids = torch.tensor([toy_tokenizer(s)["input_ids"]])
        with torch.no_grad():
            single = sentence_embeddings(model, ids, torch.ones_like(ids), 2, pooling)[0]
        torch.testing.assert_close(batched[i], single, atol=1e-5, rtol=1e-4)


def test_embed_restores_training_mode_and_checks_arguments(tiny_models, toy_tokenizer):
    model = tiny_models["gpt2"]
    model.train()
    try:
        embed(model, toy_tokenizer, SENTS[:2], layer=1)
        assert model.training
    finally:
        model.eval()
    with pytest.raises(ValueError, match="pooling='cls'"):
        embed(model, toy_tokenizer, SENTS, pooling="cls")
    with pytest.raises(ValueError, match="out of range"):
        embed(model, toy_tokenizer, SENTS, layer=9)


def test_pair_metrics_on_known_vectors():
    x = torch.eye(4)
    m = pair_metrics(x, x)
    assert m["align"] == 0.0 and m["retrieval"] == 100.0
    # 8 unit vectors, 4 distinct orthogonal ones each twice: pairs at distance^2 0 (4 of 28) or 2 (24 of 28)
    assert m["uniform"] == pytest.approx(torch.log(torch.tensor((4 + 24 * torch.exp(torch.tensor(-4.0)).item()) / 28)).item())
    flipped = pair_metrics(x, x[[1, 0, 3, 2]])
    assert flipped["retrieval"] == 0.0 and flipped["align"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="equal shapes"):
        pair_metrics(x, x[:3])


def test_pair_report_identical_sides_and_mean_row(tiny_models, toy_tokenizer):
    model = tiny_models["bloom"]
    pairs = {"en-en": (SENTS, SENTS), "en-xx": (SENTS[:4], SENTS[3:7])}
    df = pair_report(model, toy_tokenizer, pairs, layer=1, batch_size=4)
    assert list(df.pair) == ["en-en", "en-xx", "mean"]
    same = df.set_index("pair").loc["en-en"]
    assert same["align"] == pytest.approx(0.0, abs=1e-6) and same["retrieval"] == 100.0
    assert df.set_index("pair").loc["mean", "n"] == 11
    with pytest.raises(ValueError, match="4 source sentences but 3"):
        pair_report(model, toy_tokenizer, {"bad": (SENTS[:4], SENTS[:3])})
