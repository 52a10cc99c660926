"""Sentence representations of a list of sentences, and the alignment probes built on them.

`embed` runs the same early-exit forward as the trainer (afp_lib.hidden.sentence_embeddings): blocks
past `layer` are never computed. Sentences are sorted by length so a batch wastes little padding
(longest first: an out-of-memory error happens at once, not at the end), then put back in input order.
`pair_report` gives, per language pair, alignment (Eq. 5), uniformity (Eq. 6) and bitext retrieval."""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import pandas as pd
import torch

from ..hidden import embed  # noqa: F401  (re-exported: the analysis entry point)
from ..metrics import alignment, retrieval_accuracy, uniformity

def pair_metrics(h_src: torch.Tensor, h_tgt: torch.Tensor) -> dict[str, float]:
    """Alignment of the translation pairs, uniformity of all their sentences, retrieval both ways (%)."""
    if h_src.shape != h_tgt.shape:
        raise ValueError(f"pairs need equal shapes, got {tuple(h_src.shape)} and {tuple(h_tgt.shape)}")
    r = retrieval_accuracy(h_src, h_tgt)
    return {"n": h_src.shape[0], "align": alignment(h_src, h_tgt),
            "uniform": uniformity(torch.cat([h_src, h_tgt])),
            "retrieval_src2tgt": 100 * r["x2y"], "retrieval_tgt2src": 100 * r["y2x"],
            "retrieval": 50 * (r["x2y"] + r["y2x"])}


def pair_report(model, tokenizer, pairs: Mapping[str, tuple[Sequence[str], Sequence[str]]], layer: int = 1,
                pooling: str = "mean", batch_size: int = 32, max_length: int = 256) -> pd.DataFrame:
    """One row per language pair ("en-zh" -> (english sentences, chinese translations)) plus a 'mean' row.
    Retrieval is in %, chance is 100/n."""
    rows = []
    for name, (src, tgt) in pairs.items():
        if len(src) != len(tgt):
            raise ValueError(f"pair {name!r}: {len(src)} source sentences but {len(tgt)} targets")
        h_src = embed(model, tokenizer, src, layer, pooling, batch_size, max_length, desc=f"{name} src")
        h_tgt = embed(model, tokenizer, tgt, layer, pooling, batch_size, max_length, desc=f"{name} tgt")
        rows.append({"pair": name, **pair_metrics(h_src, h_tgt)})
    df = pd.DataFrame(rows)
    if len(df) > 1:
        mean = df.drop(columns="pair").mean().to_dict()
        df = pd.concat([df, pd.DataFrame([{"pair": "mean", **mean, "n": int(df.n.sum())}])], ignore_index=True)
    return df.assign(layer=layer, pooling=pooling)


def sample_pairs(lang: str, source: str = "tatoeba", pivot: str = "en", n: int = 1000,
                 seed: int = 0) -> tuple[list[str], list[str]]:
    """(pivot sentences, their `lang` translations) from afp_lib.data.load_parallel: n distinct pairs,
    a seeded sample when the source has more."""
    from ..data import load_parallel

    pairs = {(t[pivot], t[lang]) for t in load_parallel(lang, source=source, pivot=pivot)["translation"]}
    pairs = sorted(p for p in pairs if p[0].strip() and p[1].strip())
    if len(pairs) > n:
        pairs = random.Random(seed).sample(pairs, n)
    return [p[0] for p in pairs], [p[1] for p in pairs]


def language_embeddings(model, tokenizer, sentences: Mapping[str, Sequence[str]], **kw):
    """For t-SNE: all languages' sentences embedded as one (N, H) tensor, with the language of each row."""
    parts, langs = [], []
    for lang, sents in sentences.items():
        parts.append(embed(model, tokenizer, sents, desc=f"embed {lang}", **kw))
        langs += [lang] * len(sents)
    return torch.cat(parts), langs
