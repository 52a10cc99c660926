"""The AFP step: the reference `afp_step` is Eq. 4 computed by hand; its optimisation `shared_afp_step` (MCL
vectors read from the CIT forward, trainer.shared) has its losses and gradients; the vectors equal standalone
early-exit embeddings; the fallback when CIT rows are not the pairs' own; the objective -> losses table."""
import pytest
import torch

from afp_lib import cit
from afp_lib.hidden import sentence_embeddings
from afp_lib.trainer import TrainData
from afp_lib.trainer import collate
from afp_lib.losses import lm_loss, mcl_loss
from afp_lib.hidden import pool
from afp_lib.trainer.config import OBJECTIVE_LOSSES
from afp_lib.trainer.loop import afp_step, prepare, shared_afp_step, step_losses
from afp_lib.trainer.shared import NONE, share_plan, shared_batches, shared_forward
from conftest import PAPER_ARCHS
from test_trainer import PAIRS, tiny_cfg

ROWS = [4, 0, 7, 2, 8, 5]  # a micro-batch of pair indices; sentences of different lengths, so both batches pad


def encoded(tokenizer, p_src=0.5, seq_len=64, seed=3):
    samples = cit.translation_samples(PAIRS, p_src, seed=seed)
    return collate.encode_pairs(tokenizer, PAIRS, seq_len), collate.encode_cit(tokenizer, samples, seq_len), samples


@pytest.mark.parametrize("arch", PAPER_ARCHS)
@pytest.mark.parametrize("pooling", ["mean", "max", "last", "mean_skip_bos"])
def test_cit_prefix_vectors_equal_standalone_embeddings(arch, pooling, tiny_models, toy_tokenizer):
    model, pad = tiny_models[arch], toy_tokenizer.pad_token_id
    pairs, rows, samples = encoded(toy_tokenizer)
    plan = share_plan(tiny_cfg(), pairs, rows, samples)
    assert plan is not None and NONE not in plan  # every context starts with its pair's sentence
    chosen = [samples[i] for i in ROWS]
    assert {s["context_side"] for s in chosen} == {"src", "tgt"}  # both sides get read from CIT rows
    assert any(s["src_lang"] == s["tgt_lang"] for s in chosen)  # b = a: the response repeats the sentence
    assert len({len(rows[i][0]) for i in ROWS}) > 1  # the CIT batch is right-padded
    batch, lm = shared_batches(pairs, rows, plan, ROWS, n_cit=4, pad_id=pad)  # rows 4, 5: no CIT row
    assert batch["input_ids"].size(0) == len(ROWS) + 2  # one early-exit side per shared pair, two otherwise
    whole = collate.pair_batch(pairs, ROWS, pad)
    for layer in (0, 1, model.config.num_hidden_layers):
        with torch.no_grad():
            z_src, z_tgt, _ = shared_forward(model, layer, pooling, batch, lm)
            want = sentence_embeddings(model, whole["input_ids"], whole["attention_mask"], layer, pooling)
        assert torch.allclose(torch.cat([z_src, z_tgt]), want, atol=1e-5), (layer, (torch.cat([z_src, z_tgt]) - want).abs().max())


@pytest.mark.parametrize("arch, pooling", [("xglm", "mean"), ("bloom", "last")])
def test_afp_step_is_eq4_computed_by_hand(arch, pooling, tiny_models, toy_tokenizer):
    """L = MCL(pool(h_l(src)), pool(h_l(tgt))) + alpha * CIT, each side through a whole-model forward with
    every hidden state (as the authors' code), CIT from the full logits: the same numbers as `afp_step`."""
    model, pad = tiny_models[arch], toy_tokenizer.pad_token_id
    cfg = tiny_cfg(batch_size=6, alpha=0.7, mcl={"pooling": pooling, "layer": 2})
    pairs, rows, _ = encoded(toy_tokenizer)
    with torch.no_grad():
        parts = afp_step(model, cfg, collate.pair_batch(pairs, ROWS, pad), collate.lm_batch(rows, ROWS, pad))
        h = []
        for side in (0, 1):
            one = collate.pair_batch([(pairs[i][side], pairs[i][side]) for i in ROWS], list(range(len(ROWS))), pad)
            ids, mask = one["input_ids"][:len(ROWS)], one["attention_mask"][:len(ROWS)]
            out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            h.append(pool(out.hidden_states[cfg.mcl.layer], mask, pooling))
        mcl = mcl_loss(h[0], h[1], cfg.mcl.temperature, cfg.mcl.symmetric)
        lm = collate.lm_batch(rows, ROWS, pad)
        cit = lm_loss(model(input_ids=lm["input_ids"], attention_mask=lm["attention_mask"]).logits, lm["labels"])
    assert parts["mcl"].item() == pytest.approx(mcl.item(), rel=1e-5)
    assert parts["cit"].item() == pytest.approx(cit.item(), rel=1e-5)
    assert parts["loss"].item() == pytest.approx(mcl.item() + 0.7 * cit.item(), rel=1e-5)


@pytest.mark.parametrize("arch, pooling", [("xglm", "mean"), ("llama", "last")])
def test_shared_afp_step_has_the_losses_and_gradients_of_afp_step(arch, pooling, tiny_models, toy_tokenizer):
    """Same MCL (same pairs, in-batch negatives, symmetric) and same CIT loss; gradients match too."""
    model, pad = tiny_models[arch], toy_tokenizer.pad_token_id
    cfg = tiny_cfg(batch_size=6, mcl={"pooling": pooling})
    pairs, rows, samples = encoded(toy_tokenizer)
    shared = shared_batches(pairs, rows, share_plan(cfg, pairs, rows, samples), ROWS, cfg.cit_batch_size, pad)
    separate = collate.pair_batch(pairs, ROWS, pad), collate.lm_batch(rows, ROWS, pad)
    results = []
    for step, (p, lm) in ((shared_afp_step, shared), (afp_step, separate)):
        model.zero_grad(set_to_none=True)
        parts = step(model, cfg, p, lm)
        parts["loss"].backward()
        results.append((parts, {n: q.grad.clone() for n, q in model.named_parameters() if q.grad is not None}))
    (got, got_grad), (want, want_grad) = results
    model.zero_grad(set_to_none=True)
    assert set(got) == set(want) == {"mcl", "cit", "loss"}
    for k in want:
        assert got[k].item() == pytest.approx(want[k].item(), rel=1e-5, abs=1e-6), k
    assert got_grad.keys() == want_grad.keys()
    for n in want_grad:
        assert torch.allclose(got_grad[n], want_grad[n], rtol=1e-4, atol=1e-6), n
    with torch.no_grad():  # step_losses dispatches on the explicit flag, not on the batch's keys
        assert step_losses(model, cfg, *shared, shared=True)["loss"].item() == got["loss"].item()
        assert step_losses(model, cfg, *separate)["loss"].item() == want["loss"].item()


@pytest.mark.parametrize("objective", sorted(OBJECTIVE_LOSSES))
def test_each_objective_computes_the_parts_of_its_table_row(objective, tiny_models, toy_tokenizer):
    model, pad = tiny_models["xglm"], toy_tokenizer.pad_token_id
    cfg = tiny_cfg(objective=objective, batch_size=6)
    pairs, rows, _ = encoded(toy_tokenizer)
    names = OBJECTIVE_LOSSES[objective]
    pb = collate.pair_batch(pairs, ROWS, pad) if "mcl" in names else None
    lm = collate.lm_batch(rows, ROWS, pad) if {"cit", "clm"} & set(names) else None
    with torch.no_grad():
        parts = step_losses(model, cfg, pb, lm)
    assert set(parts) == {*names, "loss"}
    want = parts["mcl"] + 1.5 * parts["cit"] if objective == "afp" else parts[names[0]]
    assert parts["loss"].item() == want.item()
    assert cfg.uses_mcl == ("mcl" in names) and cfg.uses_cit == ("cit" in names)


def test_plan_rows_and_fallbacks(toy_tokenizer):
    pairs, rows, samples = encoded(toy_tokenizer)
    cfg = tiny_cfg()
    assert share_plan(cfg, pairs, rows, samples) == [0 if s["context_side"] == "src" else 1 for s in samples]
    alpaca = cit.alpaca_samples([{"instruction": "Name a colour.", "input": "", "output": "Blue."}])
    more = samples + alpaca  # CIT samples that are not one per pair
    assert share_plan(cfg, pairs, collate.encode_cit(toy_tokenizer, more, 64), more) is None
    assert share_plan(tiny_cfg(cit={"pack": True}), pairs, rows, samples) is None
    assert share_plan(tiny_cfg(cit={"batch_size": 8}), pairs, rows, samples) is None  # more CIT rows than pairs
    assert share_plan(tiny_cfg(objective="bit"), pairs, rows, samples) is None
    cut = collate.encode_cit(toy_tokenizer, samples, seq_len=40)  # the longest contexts are cut from the left
    plan = share_plan(cfg, pairs, cut, samples)
    for i, side in enumerate(plan):
        sent = pairs[i][0 if samples[i]["context_side"] == "src" else 1]
        assert (side != NONE) == (cut[i][0][:len(sent)] == sent and len(sent) < len(cut[i][0]))
    assert NONE in plan and any(s != NONE for s in plan)


@pytest.mark.parametrize("objective, cit_sources, shared", [
    ("afp", None, True), ("mcl", None, False), ("cit", None, False), ("afp", "alpaca", False)])
def test_prepare_shares_only_translation_samples_of_the_pairs(objective, cit_sources, shared, toy_tokenizer):
    data = TrainData(pairs=list(PAIRS), dev_pairs=list(PAIRS[:2]))
    if cit_sources == "alpaca":
        data.cit = cit.translation_samples(PAIRS, 0.5) + cit.alpaca_samples(
            [{"instruction": "Name a colour.", "input": "", "output": "Blue."}])
    prep = prepare(tiny_cfg(objective=objective, seq_len=64), toy_tokenizer, data)
    assert (prep.share is not None) == shared
