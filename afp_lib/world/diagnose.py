"""Is the vanilla model biased the way XGLM and BLOOM are? Two measurements:

1. held-out perplexity per language. Perplexity is per token, and a token covers a different amount of
   text in each script, so we also report bits per byte and per character: the fair comparison.
2. the cross-language gap inside the model: layer-`l` mean-pooled vectors of Tatoeba en-xx pairs
   (alignment, uniformity, bitext retrieval). A randomly initialised twin is measured the same way,
   because shared tokens (names, numbers) let Latin-script pairs find each other without any learning."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from ..data import load_parallel
from ..hidden import embed as embed_sentences
from ..metrics import alignment, retrieval_accuracy, uniformity
from ..models import build_model
from .config import WorldConfig

SCRIPTS = {"en": "Latin", "tr": "Latin", "sw": "Latin", "de": "Latin", "fr": "Latin", "es": "Latin",
           "vi": "Latin", "id": "Latin", "zh": "Han", "ja": "Han+Kana", "th": "Thai", "ru": "Cyrillic",
           "ar": "Arabic", "hi": "Devanagari", "ko": "Hangul"}


def fit_text(tokenizer, text: str, max_tokens: int) -> list[int]:
    """Token ids (BOS first) of the longest character prefix of `text` that fits in `max_tokens`; cutting
    characters, not tokens, keeps the byte count of what is scored exact."""
    ids = tokenizer(text, verbose=False)["input_ids"]
    while len(ids) > max_tokens:
        text = text[: max(1, int(len(text) * max_tokens / len(ids) * 0.95))]
        ids = tokenizer(text, verbose=False)["input_ids"]
    return ids, text


# fp32 logits one forward may hold (512 MiB). 32 lines of 128 tokens over Gemma 3's 262,144-token vocabulary
# would be 4.3 GB, twice over with the log-softmax; a world model's 8k vocabulary keeps 32 lines per forward.
LOGITS_BYTES = 2 ** 29


def _chunks(fitted: list, batch_size: int, positions: int):
    """The fitted lines shortest first, as many per forward as `batch_size` and `positions` (rows x width) allow."""
    chunk = []
    for item in sorted(fitted, key=lambda f: len(f[0])):
        if chunk and (len(chunk) == batch_size or (len(chunk) + 1) * len(item[0]) > positions):
            yield chunk
            chunk = []
        chunk.append(item)
    if chunk:
        yield chunk


@torch.no_grad()
def heldout_perplexity(model, tokenizer, lines: list[str], max_tokens: int = 128, batch_size: int = 32,
                       logits_bytes: int = LOGITS_BYTES) -> dict:
    """Per-token perplexity, bits per byte and bits per character of `lines` (each scored after BOS). At most
    `batch_size` lines per forward, fewer where their logits would pass `logits_bytes` (large vocabularies)."""
    model.eval()
    device = next(model.parameters()).device
    nll, n_tok, n_bytes, n_chars = 0.0, 0, 0, 0
    fitted = [fit_text(tokenizer, line, max_tokens) for line in lines]
    positions = logits_bytes // (4 * model.get_output_embeddings().weight.shape[0])
    for chunk in _chunks(fitted, batch_size, positions):
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), tokenizer.pad_token_id)
        mask = torch.zeros_like(ids)
        for r, (seq, _) in enumerate(chunk):
            ids[r, :len(seq)], mask[r, :len(seq)] = torch.tensor(seq), 1
        ids, mask = ids.to(device), mask.to(device)
        logits = model(input_ids=ids, attention_mask=mask).logits.float()  # (B, T, V)
        logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, T-1)
        nll -= (logp * mask[:, 1:]).sum().item()
        n_tok += int(mask[:, 1:].sum())
        n_bytes += sum(len(t.encode("utf-8")) for _, t in chunk)
        n_chars += sum(len(t) for _, t in chunk)
    return {"perplexity": math.exp(nll / n_tok), "bits_per_byte": nll / math.log(2) / n_bytes,
            "bits_per_char": nll / math.log(2) / n_chars, "tokens": n_tok, "bytes": n_bytes, "lines": len(lines)}


def embed(model, tokenizer, texts: list[str], layer: int, pooling: str, batch_size: int, max_tokens: int):
    """(N, H) sentence vectors after block `layer` (the analysis layer's batched early-exit embedding)."""
    return embed_sentences(model, tokenizer, texts, layer=layer, pooling=pooling, batch_size=batch_size,
                           max_length=max_tokens)


def bitext_gap(model, tokenizer, pairs: list[tuple[str, str]], layer: int, pooling: str, batch_size: int,
               max_tokens: int) -> dict:
    """Alignment/uniformity/retrieval of en-xx pairs; `cos_gap` = mean cosine of true pairs minus that of
    all other pairs (0: the model cannot tell a translation from any other sentence)."""
    en = embed(model, tokenizer, [a for a, _ in pairs], layer, pooling, batch_size, max_tokens)
    xx = embed(model, tokenizer, [b for _, b in pairs], layer, pooling, batch_size, max_tokens)
    r = retrieval_accuracy(xx, en)
    cos = torch.nn.functional.normalize(xx, dim=-1) @ torch.nn.functional.normalize(en, dim=-1).T  # (N, N)
    n = cos.size(0)
    off = (cos.sum() - cos.diag().sum()) / (n * n - n)
    return {"retrieval_xx2en": r["x2y"], "retrieval_en2xx": r["y2x"], "alignment": alignment(xx, en),
            "uniformity": uniformity(torch.cat([xx, en])), "cos_parallel": cos.diag().mean().item(),
            "cos_gap": (cos.diag().mean() - off).item(), "pairs": n}


def tatoeba_pairs(lang: str, n: int) -> list[tuple[str, str]]:
    ds = load_parallel(lang, source="tatoeba")
    return [(t["en"], t[lang]) for t in ds.select(range(min(n, len(ds))))["translation"]]


def diagnose_model(model, tokenizer, cfg: WorldConfig, heldout: dict[str, list[str]],
                   pairs: dict[str, list[tuple[str, str]]]) -> dict:
    d = cfg.diagnose
    ppl = {lang: heldout_perplexity(model, tokenizer, lines, d.max_tokens, d.batch_size) for lang, lines in heldout.items()}
    gap = {lang: bitext_gap(model, tokenizer, p, d.layer, d.pooling, d.batch_size, d.max_tokens)
           for lang, p in pairs.items()}
    return {"heldout": ppl, "tatoeba": gap, "tatoeba_by_script": by_script(gap)}


def by_script(gap: dict[str, dict]) -> dict[str, dict]:
    groups: dict[str, list[str]] = {}
    for lang in gap:
        groups.setdefault(SCRIPTS.get(lang, "other"), []).append(lang)
    keys = ("retrieval_xx2en", "retrieval_en2xx", "alignment", "cos_gap")
    return {script: {"langs": langs, **{k: sum(gap[l][k] for l in langs) / len(langs) for k in keys}}
            for script, langs in groups.items()}


def random_twin(model, tokenizer, cfg: WorldConfig, arch: str):
    """The same architecture and shape, untrained: the floor that learning must beat."""
    return build_model(arch, cfg.shape, tokenizer, seed=cfg.seed + 1).eval()


def figure(results: dict, path: Path) -> None:
    """Bits per byte per language and layer-l retrieval, vanilla vs untrained, one bar group per model."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    rows_ppl, rows_ret = [], []
    for arch, r in results["models"].items():
        rows_ppl += [{"model": arch, "lang": l, "bits per byte": v["bits_per_byte"]} for l, v in r["heldout"].items()]
        rows_ret += [{"model": f"{arch} vanilla", "lang": l, "xx→en retrieval": v["retrieval_xx2en"]}
                     for l, v in r["tatoeba"].items()]
        rows_ret += [{"model": f"{arch} untrained", "lang": l, "xx→en retrieval": v["retrieval_xx2en"]}
                     for l, v in r["random_init"]["tatoeba"].items()]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    sns.barplot(pd.DataFrame(rows_ppl), x="lang", y="bits per byte", hue="model", ax=axes[0])
    axes[0].set_title("held-out bits per byte (lower = better)")
    sns.barplot(pd.DataFrame(rows_ret), x="lang", y="xx→en retrieval", hue="model", ax=axes[1])
    axes[1].set_title(f"Tatoeba retrieval, layer {results['layer']} {results['pooling']} pooling")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
