"""Model families as data: everything afp knows about an architecture, in one `Family` entry.

A family is named by its transformers `model_type`. Its entry says how to build a small random model of it
(the mini world and the tests), where its transformer blocks are (the early exit of MCL), whether its logits
are a plain `lm_head(last_hidden_state)` (CIT then runs the head on response tokens only), which rows of the
paper's tables stand for it, and which hub checkpoints the paper profile may train (sizes for the plan).

Adding a family = one entry in `FAMILIES` and one row in the architecture table of tests/test_models.py;
`afp_lib.models.ARCHS`, `hidden.decoder_layers`, `plain_head(config)` (read by `losses.cit_loss`), `plan.facts.HUB_MODELS` and the
paper-name maps of `analysis.paper` are read from here."""
from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class HubCheckpoint:
    """A published checkpoint, as its config.json on the hub states it (the paper plan cannot read it offline).
    `config`: the architecture's hyperparameters in that config.json, as (key, value) pairs of the family's
    transformers config class, depth, width and vocabulary included: enough to build the exact
    architecture with random weights (`afp_lib.trainer.rehearse`); empty where nothing needs it yet."""
    hub_id: str
    params: float     # parameters
    n_layers: int     # transformer blocks: MCL layers 0..n_layers are valid
    d_model: int
    config: tuple[tuple[str, object], ...] = ()

    @property
    def name(self) -> str:
        """The repository name, e.g. "xglm-7.5B" (rehearse's --arch)."""
        return self.hub_id.split("/")[-1]


@dataclass(frozen=True)
class Family:
    name: str                  # transformers' model_type, and afp's `arch` ("xglm")
    tiny_config: Callable      # (ModelShape, special ids) -> a transformers config of that shape
    blocks: str                # the block list's path under `model.base_model` ("layers", "h")
    plain_head: bool = True    # logits == lm_head(last_hidden_state), nothing after the head
    paper_model: str | None = None      # the paper's smallest model of the family: our diff rows stand against it
    paper_model_7b: str | None = None   # its 7B row (Table 6 reports only those)
    hub: tuple[HubCheckpoint, ...] = ()


def _xglm(s, ids):
    from transformers import XGLMConfig
    return XGLMConfig(d_model=s.d_model, num_layers=s.n_layers, attention_heads=s.n_heads, ffn_dim=s.ffn_dim,
                      max_position_embeddings=s.max_positions, dropout=s.dropout, attention_dropout=s.dropout,
                      activation_dropout=s.dropout, layerdrop=0.0, decoder_start_token_id=ids["eos_token_id"], **ids)


def _bloom(s, ids):
    from transformers import BloomConfig
    return BloomConfig(hidden_size=s.d_model, n_layer=s.n_layers, n_head=s.n_heads, hidden_dropout=s.dropout,
                       attention_dropout=s.dropout, **ids)


def _llama(s, ids):
    from transformers import LlamaConfig
    return LlamaConfig(hidden_size=s.d_model, num_hidden_layers=s.n_layers, num_attention_heads=s.n_heads,
                       num_key_value_heads=s.n_heads, intermediate_size=s.ffn_dim,
                       max_position_embeddings=s.max_positions, attention_dropout=s.dropout, **ids)


def _qwen2(s, ids):
    from transformers import Qwen2Config
    return Qwen2Config(hidden_size=s.d_model, num_hidden_layers=s.n_layers, num_attention_heads=s.n_heads,
                       num_key_value_heads=s.n_heads, intermediate_size=s.ffn_dim,
                       max_position_embeddings=s.max_positions, attention_dropout=s.dropout, **ids)


def _gpt2(s, ids):
    from transformers import GPT2Config
    return GPT2Config(n_embd=s.d_model, n_layer=s.n_layers, n_head=s.n_heads, n_inner=s.ffn_dim,
                      n_positions=s.max_positions, resid_pdrop=s.dropout, embd_pdrop=s.dropout,
                      attn_pdrop=s.dropout, **ids)


def _xglm_hub(d_model: int, layers: int, heads: int, ffn: int) -> tuple:
    return (("vocab_size", 256008), ("d_model", d_model), ("num_layers", layers), ("attention_heads", heads),
            ("ffn_dim", ffn), ("max_position_embeddings", 2048), ("dropout", 0.1), ("attention_dropout", 0.1),
            ("activation_dropout", 0.0), ("scale_embedding", True))


def _bloom_hub(hidden: int, layers: int, heads: int) -> tuple:
    return (("vocab_size", 250880), ("hidden_size", hidden), ("n_layer", layers), ("n_head", heads),
            ("hidden_dropout", 0.0), ("attention_dropout", 0.0))


def _gemma3_text(s, ids):
    """Gemma 3's text model (270M: 1 KV head, head_dim 256, tied embeddings, 5 sliding layers per full one).
    Tiny: a sliding window of 8 tokens and every second layer full, so that test prompts run past the window
    and both kinds of layer (and their two RoPE bases) are exercised."""
    from transformers import Gemma3TextConfig
    return Gemma3TextConfig(hidden_size=s.d_model, num_hidden_layers=s.n_layers, num_attention_heads=s.n_heads,
                            num_key_value_heads=1, head_dim=s.d_model // s.n_heads, query_pre_attn_scalar=s.d_model // s.n_heads,
                            intermediate_size=s.ffn_dim, max_position_embeddings=s.max_positions, sliding_window=8,
                            layer_types=["full_attention" if i % 2 else "sliding_attention" for i in range(s.n_layers)],
                            attention_dropout=s.dropout, **ids)


# Hub sizes: num_layers / n_layer / num_hidden_layers and the hidden size of each checkpoint's config.json.
FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("xglm", _xglm, blocks="layers", paper_model="XGLM-564M", paper_model_7b="XGLM-7.5B",
           hub=(HubCheckpoint("facebook/xglm-564M", 564e6, 24, 1024, _xglm_hub(1024, 24, 16, 4096)),
                HubCheckpoint("facebook/xglm-1.7B", 1.7e9, 24, 2048),
                HubCheckpoint("facebook/xglm-7.5B", 7.5e9, 32, 4096, _xglm_hub(4096, 32, 32, 16384)))),
    Family("bloom", _bloom, blocks="h", paper_model="BLOOM-560M", paper_model_7b="BLOOM-7.1B",
           hub=(HubCheckpoint("bigscience/bloom-560m", 559e6, 24, 1024, _bloom_hub(1024, 24, 16)),
                HubCheckpoint("bigscience/bloom-1b7", 1.72e9, 24, 2048),
                HubCheckpoint("bigscience/bloom-7b1", 7.07e9, 30, 4096, _bloom_hub(4096, 30, 32)))),
    Family("llama", _llama, blocks="layers", paper_model="Llama-7B",
           hub=(HubCheckpoint("huggyllama/llama-7b", 6.74e9, 32, 4096, (
               ("vocab_size", 32000), ("hidden_size", 4096), ("intermediate_size", 11008),
               ("num_hidden_layers", 32), ("num_attention_heads", 32), ("num_key_value_heads", 32),
               ("max_position_embeddings", 2048), ("rms_norm_eps", 1e-6), ("tie_word_embeddings", False))),)),
    Family("gpt2", _gpt2, blocks="h"),
    Family("qwen2", _qwen2, blocks="layers"),
    # not a paper model: the real pretrained LM afp can load offline (afp_lib/pretrained.py, params.yaml models)
    Family("gemma3_text", _gemma3_text, blocks="layers"),
)}


def hub_checkpoint(name: str) -> tuple[Family, HubCheckpoint]:
    """(family, checkpoint) of a registered checkpoint named by hub id or repository name (any case)."""
    known = {c.name.lower(): (f, c) for f in FAMILIES.values() for c in f.hub}
    known.update({c.hub_id.lower(): known[c.name.lower()] for f in FAMILIES.values() for c in f.hub})
    if str(name).lower() not in known:
        raise ValueError(f"checkpoint {name!r} is not registered in afp_lib/families.py (registered: "
                         f"{', '.join(c.name for f in FAMILIES.values() for c in f.hub)})")
    return known[str(name).lower()]


def text_config(config):
    """The language model's config: itself, or the `text_config` of a multimodal wrapper (Gemma 3 4B+)."""
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def plain_head(config) -> bool:
    """Logits == lm_head(last_hidden_state) for a model of this config: its family says the architecture
    has nothing after the head, and the config sets no final logit soft-capping (a field Gemma 2/3 have;
    Gemma 3 270M leaves it None, Gemma 2 sets 30.0)."""
    name = getattr(config, "model_type", None)
    return (name in FAMILIES and FAMILIES[name].plain_head
            and getattr(text_config(config), "final_logit_softcapping", None) is None)


def sliding_window(config) -> int | None:
    """The window of the config's sliding-window attention layers, None when every layer attends to the
    whole past (Qwen2 has the field but `layer_types` all full unless `use_sliding_window`)."""
    cfg = text_config(config)
    return getattr(cfg, "sliding_window", None) if "sliding_attention" in (getattr(cfg, "layer_types", None) or ()) else None


def family(name: str) -> Family:
    """The entry of `name` (an arch or a model_type); an unknown name fails with the registered ones."""
    if name not in FAMILIES:
        close = difflib.get_close_matches(str(name), list(FAMILIES), n=1)
        raise ValueError(f"model family {name!r} is not registered in afp_lib/families.py"
                         + (f"; did you mean {close[0]!r}?" if close else "")
                         + f" (registered: {', '.join(FAMILIES)}); add a Family entry to support it")
    return FAMILIES[name]
