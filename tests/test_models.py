"""Loading policy (dtype, attention), SDPA against eager attention, and activation checkpointing: the early
exit and the shared AFP step give the values and gradients of the plain forward with it switched on."""
import pytest
import torch

from afp_lib.families import FAMILIES, family, plain_head, sliding_window, text_config
from afp_lib.hidden import check_layer, decoder_layers, hidden_at_layer, n_layers
from afp_lib.losses import cit_loss, lm_loss
from afp_lib.models import ARCHS, attention_for, build_model, load_model, set_gradient_checkpointing
from afp_lib.plan.facts import HUB_MODELS, HubModel
from afp_lib.trainer import collate
from afp_lib.trainer.loop import step_losses
from afp_lib.trainer.shared import share_plan, shared_batches
from conftest import PAPER_ARCHS
from test_trainer import tiny_cfg
from test_trainer_shared import ROWS, encoded

TEXTS = ["The cat sat on the mat.", "猫坐在垫子上。", "Mbwa anakimbia bustanini, na paka pia.", "Kedi"]


def batch(tokenizer):
    enc = tokenizer(TEXTS, return_tensors="pt", padding=True)
    return enc["input_ids"], enc["attention_mask"]


# The architecture table: one row per family of afp_lib.families (adding a family = its entry + a row here):
# the attention transformers gives it (XGLM and BLOOM have eager attention only) and the name of its blocks.
ARCH_TABLE = {
    "xglm": ("eager", "XGLMDecoderLayer"),
    "bloom": ("eager", "BloomBlock"),
    "llama": ("sdpa", "LlamaDecoderLayer"),
    "gpt2": ("sdpa", "GPT2Block"),
    "qwen2": ("sdpa", "Qwen2DecoderLayer"),
    "gemma3_text": ("sdpa", "Gemma3DecoderLayer"),
}


def test_every_family_has_a_row_of_the_architecture_table():
    missing = [name for name in FAMILIES if name not in ARCH_TABLE]
    assert not missing, f"families without a row in ARCH_TABLE (add their attention and block class): {missing}"


@pytest.mark.parametrize("arch", ARCHS)
def test_family_entry_builds_its_model(arch, tiny_models, tiny_shape):
    """The entry's config has the asked shape, its `blocks` are the model's blocks, and the family name is
    the config's model_type (decoder_layers and plain_head look families up by it)."""
    attention, block = ARCH_TABLE[arch]
    model = tiny_models[arch]
    assert model.config.model_type == arch and attention_for(model.config) == attention
    blocks = decoder_layers(model)
    assert len(blocks) == tiny_shape.n_layers and {type(b).__name__ for b in blocks} == {block}
    assert model.config.hidden_size == tiny_shape.d_model


def _capped(model, cap: float):
    """`model` with the same weights and a final logit soft-capping of `cap` (a Gemma 2 config field)."""
    from transformers import AutoModelForCausalLM
    capped = AutoModelForCausalLM.from_config(type(model.config).from_dict(
        model.config.to_dict() | {"final_logit_softcapping": cap})).eval()
    capped.load_state_dict(model.state_dict())
    return capped


@pytest.mark.parametrize("arch, cap", [(a, None) for a in ARCHS] + [("gemma3_text", 0.5)])
def test_plain_head_says_whether_logits_are_the_head_of_the_last_hidden_state(arch, cap, tiny_models, toy_tokenizer):
    """plain_head(config) holds exactly when logits == lm_head(last hidden state), which CIT relies on to run
    the head on response positions only; a soft-capped config's logits are something else."""
    model = tiny_models[arch] if cap is None else _capped(tiny_models[arch], cap)
    ids, mask = batch(toy_tokenizer)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
        head = model.get_output_embeddings()(model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state)
    real = mask.bool()
    assert logits[real].abs().max() > 1e-3   # a head that outputs ~0 would match anything
    plain = torch.allclose(head[real], logits[real], rtol=1e-5, atol=1e-5)
    assert plain_head(model.config) == plain, (f"{arch} (soft cap {cap}): logits {'==' if plain else '!='} "
                                               "lm_head(last hidden), but plain_head says otherwise")


def test_plain_head_comes_from_the_config(tiny_models, toy_tokenizer):
    """Gemma 3 has a `final_logit_softcapping` field (None for 270M, 30.0 for Gemma 2): with it set, the
    logits are tanh-capped after the head, so CIT must take the full forward; the loss is then the capped one."""
    plain = tiny_models["gemma3_text"]
    assert plain_head(plain.config) and plain.config.final_logit_softcapping is None
    capped = _capped(plain, 0.5)
    assert not plain_head(capped.config)
    ids, mask = batch(toy_tokenizer)
    labels = ids.masked_fill(mask == 0, -100)
    with torch.no_grad():
        logits = capped(input_ids=ids, attention_mask=mask).logits
        assert logits.abs().max() <= 0.5  # capped: not lm_head(h)
        torch.testing.assert_close(cit_loss(capped, ids, mask, labels), lm_loss(logits, labels))
        torch.testing.assert_close(cit_loss(plain, ids, mask, labels),
                                   lm_loss(plain(input_ids=ids, attention_mask=mask).logits, labels))
    assert not plain_head(type("C", (), {"model_type": "gemma3"})())  # an unregistered family: the full forward


def test_layer_count_of_a_multimodal_config():
    """Gemma 3 4B+ nest the language model's config in `text_config`; the layer count is read there."""
    from transformers import Gemma3Config
    config = Gemma3Config(text_config={"num_hidden_layers": 5, "hidden_size": 32, "intermediate_size": 64,
                                       "num_attention_heads": 2, "head_dim": 16, "num_key_value_heads": 1},
                          vision_config={"num_hidden_layers": 2, "hidden_size": 32, "intermediate_size": 64,
                                         "num_attention_heads": 2})
    model = type("M", (), {"config": config})()
    assert n_layers(model) == 5
    check_layer(model, 5)
    with pytest.raises(ValueError, match="out of range for a 5-block model"):
        check_layer(model, 6)
    assert sliding_window(config) == config.text_config.sliding_window


def test_sliding_window_only_where_layers_use_it(tiny_models):
    assert sliding_window(tiny_models["gemma3_text"].config) == 8
    assert {sliding_window(tiny_models[a].config) for a in ARCHS if a != "gemma3_text"} == {None}  # qwen2 has the field


def test_unregistered_family_is_named():
    with pytest.raises(ValueError, match="not registered in afp_lib/families.py.*'xglm'"):
        family("xglmm")


def test_hub_models_come_from_the_families():
    assert HUB_MODELS["facebook/xglm-564M"] == HubModel("xglm", 564e6, 24, 1024)
    assert {m.family for m in HUB_MODELS.values()} == {f.name for f in FAMILIES.values() if f.hub}
    assert len(HUB_MODELS) == sum(len(f.hub) for f in FAMILIES.values())  # no hub id registered twice


def test_published_configs_agree_with_the_checkpoint_sizes():
    """A checkpoint's published config (what rehearse and the benches build) has its registered depth and width."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    configs = [(f, c) for f in FAMILIES.values() for c in f.hub if c.config]
    assert configs
    for f, c in configs:
        config = text_config(CONFIG_MAPPING[f.name](**dict(c.config)))
        assert (config.num_hidden_layers, config.hidden_size) == (c.n_layers, c.d_model), c.hub_id


@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen2"])
def test_sdpa_equals_eager(arch, toy_tokenizer, tiny_shape):
    eager = build_model(arch, tiny_shape, toy_tokenizer, seed=0).eval()
    sdpa = build_model(arch, tiny_shape, toy_tokenizer, seed=0, attn_implementation="sdpa").eval()
    assert sdpa.config._attn_implementation == "sdpa" and eager.config._attn_implementation == "eager"
    ids, mask = batch(toy_tokenizer)
    with torch.no_grad():
        a = eager(input_ids=ids, attention_mask=mask).logits
        b = sdpa(input_ids=ids, attention_mask=mask).logits
    real = mask.bool()
    torch.testing.assert_close(b[real], a[real], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch, attention", [("xglm", "eager"), ("llama", "sdpa")])
def test_load_model_fp32_by_default_and_its_attention(arch, attention, toy_tokenizer, tiny_shape, tmp_path):
    """A bf16 checkpoint comes back as fp32 master weights unless a dtype is asked for."""
    model = build_model(arch, tiny_shape, toy_tokenizer, seed=0).to(torch.bfloat16)
    model.save_pretrained(tmp_path)
    toy_tokenizer.save_pretrained(tmp_path)
    loaded, _ = load_model(str(tmp_path))
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    assert loaded.config._attn_implementation == attention
    torch.testing.assert_close(loaded.state_dict()[next(iter(model.state_dict()))],
                               next(iter(model.state_dict().values())).float(), rtol=0, atol=0)
    half, _ = load_model(str(tmp_path), dtype=torch.bfloat16, device="cpu")
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _pair(arch, toy_tokenizer, tiny_shape):
    plain = build_model(arch, tiny_shape, toy_tokenizer, seed=0).train()
    ckpt = build_model(arch, tiny_shape, toy_tokenizer, seed=0).train()
    set_gradient_checkpointing(ckpt, True)
    return plain, ckpt


@pytest.mark.parametrize("arch", PAPER_ARCHS)
def test_checkpointing_recomputes_blocks(arch, toy_tokenizer, tiny_shape):
    """Switched on, the inside of block 0 runs twice per training step (forward, then again in backward)."""
    calls = {}
    for name, model in zip(("plain", "ckpt"), _pair(arch, toy_tokenizer, tiny_shape)):
        n = []
        inner = next(m for m in decoder_layers(model)[0].modules() if isinstance(m, torch.nn.Linear))
        hook = inner.register_forward_hook(lambda *_: n.append(1))
        ids, mask = batch(toy_tokenizer)
        model(input_ids=ids, attention_mask=mask, labels=ids).loss.backward()
        hook.remove()
        calls[name] = len(n)
    assert calls == {"plain": 1, "ckpt": 2}


@pytest.mark.parametrize("arch", PAPER_ARCHS)
def test_early_exit_with_checkpointing_equals_full_forward(arch, toy_tokenizer, tiny_shape):
    plain, ckpt = _pair(arch, toy_tokenizer, tiny_shape)
    ids, mask = batch(toy_tokenizer)
    for layer in (1, 2):
        plain.zero_grad(set_to_none=True)
        ckpt.zero_grad(set_to_none=True)
        full = plain.base_model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[layer]
        early = hidden_at_layer(ckpt, ids, mask, layer)
        torch.testing.assert_close(early, full, rtol=1e-5, atol=1e-6)
        weight = torch.randn(full.shape, generator=torch.Generator().manual_seed(layer))
        (full * weight).sum().backward()
        (early * weight).sum().backward()
        want, got = _grads(plain), _grads(ckpt)
        assert want.keys() == got.keys() and want
        for n in want:
            torch.testing.assert_close(got[n], want[n], rtol=1e-4, atol=1e-6, msg=n)


@pytest.mark.parametrize("arch", ["xglm", "llama"])
def test_shared_afp_step_with_checkpointing(arch, toy_tokenizer, tiny_shape):
    """The shared AFP step (MCL read from the CIT forward) under checkpointing has the losses and gradients
    of the two-batch step without it."""
    plain, ckpt = _pair(arch, toy_tokenizer, tiny_shape)
    cfg, pad = tiny_cfg(batch_size=6), toy_tokenizer.pad_token_id
    pairs, rows, samples = encoded(toy_tokenizer)
    shared = shared_batches(pairs, rows, share_plan(cfg, pairs, rows, samples), ROWS, cfg.cit_batch_size, pad)
    separate = collate.pair_batch(pairs, ROWS, pad), collate.lm_batch(rows, ROWS, pad)
    got = step_losses(ckpt, cfg, *shared, shared=True)
    want = step_losses(plain, cfg, *separate)
    got["loss"].backward()
    want["loss"].backward()
    for k in ("mcl", "cit", "loss"):
        assert got[k].item() == pytest.approx(want[k].item(), rel=1e-5, abs=1e-6), k
    g, w = _grads(ckpt), _grads(plain)
    assert g.keys() == w.keys()
    for n in w:
        torch.testing.assert_close(g[n], w[n], rtol=1e-4, atol=1e-6, msg=n)


def test_paper_world_names_only_registered_checkpoints():
    """params.yaml picks which checkpoints the paper profile aligns; their sizes come from the families."""
    from afp_lib.world import load_world_config
    models = load_world_config("paper").models
    assert models and set(models.values()) <= set(HUB_MODELS)
    assert {HUB_MODELS[m].family for m in models.values()} <= set(FAMILIES)
