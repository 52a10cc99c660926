"""Choosing demonstrations: k random pool items per seed (the paper), or the k pool items nearest to each
test item by sentence-representation similarity ("semantically aligned demos", Table 6, after Tanwar et
al. 2023). The pool comes from `tasks.load_task_data`, which keeps it disjoint from the scored items."""
from __future__ import annotations

import random

import torch

from ..hidden import sentence_embeddings
from .tasks import Task


def sample_demos(pool: tuple[dict, ...], k: int, seed: int) -> list[dict]:
    """k distinct pool items for `seed`, shared by every test item (so their cache is computed once)."""
    if k > len(pool):
        raise ValueError(f"{k}-shot needs {k} demonstrations but the pool has only {len(pool)}")
    return random.Random(seed).sample(list(pool), k)


def embed_text(task: Task, doc: dict) -> str:
    return " ".join(str(doc[f]) for f in task.embed)


@torch.no_grad()
def embed(model, tokenizer, texts: list[str], layer: int = 1, pooling: str = "mean",
          batch_size: int = 64, max_length: int = 256) -> torch.Tensor:
    """(N, H) L2-normalised sentence vectors from the evaluated model itself (afp_lib.hidden)."""
    device = next(model.parameters()).device
    out = []
    for s in range(0, len(texts), batch_size):
        enc = tokenizer(texts[s:s + batch_size], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt").to(device)
        vec = sentence_embeddings(model, enc["input_ids"], enc["attention_mask"], layer, pooling)  # (b, H)
        out.append(torch.nn.functional.normalize(vec.float(), dim=-1))
    return torch.cat(out)


def semantic_demos(model, tokenizer, task: Task, test: tuple[dict, ...], pool: tuple[dict, ...], k: int,
                   layer: int = 1, pooling: str = "mean") -> list[list[dict]]:
    """Per test item, its k most similar pool items (cosine), least similar first so the nearest sits right
    before the query. Deterministic: it does not depend on the seed."""
    if not task.embed:
        raise ValueError(f"task {task.name!r} declares no `embed` fields in {task.source}")
    if k > len(pool):
        raise ValueError(f"{k}-shot needs {k} demonstrations but the pool has only {len(pool)}")
    q = embed(model, tokenizer, [embed_text(task, d) for d in test], layer, pooling)   # (N, H)
    p = embed(model, tokenizer, [embed_text(task, d) for d in pool], layer, pooling)   # (M, H)
    nearest = (q @ p.T).topk(k, dim=-1).indices.flip(-1)                               # (N, k)
    return [[pool[j] for j in row] for row in nearest.tolist()]
