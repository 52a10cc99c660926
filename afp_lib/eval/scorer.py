"""Log-likelihood of requests with a shared-prefix key/value cache.

The k demonstrations of a seed are the same for every test item, so their keys/values are computed once
per prefix and reused for every item and candidate: each batch row runs only its own item tokens. Rows are
right-padded; with causal attention a real token never sees the padding after it, so no attention mask is
needed. Only the positions that are scored go through the LM head (`logits_to_keep`).

`loglikelihood_reference` is the brute force (one full forward per filled sequence) the tests compare with."""
from __future__ import annotations

import contextlib
import inspect
from collections import defaultdict

import torch
from transformers import DynamicCache

from .requests import Request


def cache_kwarg(model) -> str:
    """transformers 5 names the cache argument `cache` (`past_key_values` is deprecated; older versions)."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def returned_cache(out):
    return getattr(out, "cache", None) if getattr(out, "cache", None) is not None else out.past_key_values


def kv_tensors(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-layer (keys, values), each (1, heads, P, head_dim)."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return [(k, v) for k, v in zip(cache.key_cache, cache.value_cache)]  # transformers 4.x


def expand_cache(kv: list[tuple[torch.Tensor, torch.Tensor]], batch: int) -> DynamicCache:
    """A fresh cache holding the prefix for `batch` rows. `expand` is a view; the copy happens once, when
    the forward appends the rows' own keys (the prefix cache itself is never modified)."""
    return DynamicCache([(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in kv])


def prefix_cache(kv: list[tuple[torch.Tensor, torch.Tensor]], batch: int) -> DynamicCache:
    """The prefix for `batch` rows in a cache that never stores the rows' own keys: each layer hands its
    attention the prefix (a broadcast view) joined with the rows' keys, and that joined copy is freed with
    the layer's activations, so a forward holds one layer's (rows x (prefix + tokens)) keys at a time
    instead of every layer's. Scoring needs no cache after the forward; generation uses `expand_cache`."""
    cache = expand_cache(kv, batch)
    if hasattr(cache, "layers"):
        for layer in cache.layers:
            layer.__class__ = _PrefixLayer
    return cache


if hasattr(__import__("transformers").cache_utils, "DynamicLayer"):
    from transformers.cache_utils import DynamicLayer

    class _PrefixLayer(DynamicLayer):
        def update(self, key_states, value_states, *args, **kwargs):
            return torch.cat([self.keys, key_states], dim=-2), torch.cat([self.values, value_states], dim=-2)


def autocast(model, bf16: bool):
    device = next(model.parameters()).device
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


@torch.no_grad()
def prefix_forward(model, prefix: tuple[int, ...], bf16: bool = False):
    """(per-layer kv, log-probs (V,) of the token after the prefix)."""
    device = next(model.parameters()).device
    ids = torch.tensor([prefix], device=device)
    with autocast(model, bf16):
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1, **{cache_kwarg(model): full_cache()})
    return kv_tensors(returned_cache(out)), torch.log_softmax(out.logits[0, -1].float(), -1)


def full_cache() -> DynamicCache:
    """An empty cache that keeps every position in every layer. The model's own cache would keep only the
    last `sliding_window` keys of a sliding-window layer (Gemma 3: 5 of 6 layers), which cannot be joined
    with the rows' keys; with all keys kept, the model's sliding-window mask does the windowing."""
    return DynamicCache()


@torch.no_grad()
def _score_batch(model, kw: str, kv, prefix_lp: torch.Tensor, reqs: list[Request], bf16: bool):
    """Summed log-probs of the scored tokens of `reqs`, all sharing one prefix (kv)."""
    device = prefix_lp.device
    B, T = len(reqs), max(len(r.tokens) for r in reqs)
    ids = torch.empty((B, T), dtype=torch.long)
    for b, r in enumerate(reqs):  # pad by repeating the row's last token: never attended to (causal), never scored
        ids[b] = torch.tensor(r.tokens + r.tokens[-1:] * (T - len(r.tokens)))
    ids = ids.to(device)
    lens = torch.tensor([len(r.tokens) for r in reqs], device=device)
    starts = torch.tensor([r.start for r in reqs], device=device)
    # logits at item position p predict token p+1: we need p from min(start)-1 (at least 0) to T-2
    first = max(int(starts.min()) - 1, 0)
    keep = T - first
    with autocast(model, bf16):
        out = model(input_ids=ids, use_cache=True, logits_to_keep=keep, **{kw: prefix_cache(kv, B)})
    logits = out.logits.float()                                   # (B, keep, V), positions first..T-1
    pos = torch.arange(first, T, device=device)                   # (keep,)
    target = torch.cat([ids, ids[:, -1:]], 1)[:, first + 1:T + 1]   # (B, keep): token p+1
    token_lp = logits.gather(-1, target.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, -1)  # (B, keep)
    scored = (pos[None] + 1 >= starts[:, None]) & (pos[None] + 1 < lens[:, None])               # (B, keep)
    total = (token_lp.double() * scored).sum(1)   # float64 sum: ~100 terms of ~-10 lose 1e-4 in float32
    # a request scored from its very first item token is predicted by the prefix's last position
    at_zero = starts == 0
    if at_zero.any():
        total = total + torch.where(at_zero, prefix_lp[ids[:, 0]].double(), torch.zeros_like(total))
    return total.tolist()


def batches(lengths: list[int], prefix_len: int, batch_size: int, max_tokens: int | None) -> list[list[int]]:
    """Positions of `lengths` (sorted longest first) cut into batches of at most `batch_size` rows and, when
    `max_tokens` is set, at most `max_tokens` attended positions (rows x (prefix + longest row)): a long
    5-shot prompt gets fewer rows per batch, a short 0-shot one more; one row always goes."""
    out, s = [], 0
    while s < len(lengths):
        rows = batch_size
        if max_tokens is not None:
            rows = max(1, min(rows, max_tokens // (prefix_len + lengths[s])))
        out.append(list(range(s, min(s + rows, len(lengths)))))
        s += rows
    return out


def loglikelihood(model, requests: list[Request], batch_size: int = 32, bf16: bool = False,
                  progress=None, max_tokens: int | None = None) -> list[float]:
    """Summed log-probability of tokens[start:] of every request given its prefix and tokens[:start].

    Requests are grouped by prefix (one group per seed for random demonstrations); within a group they are
    sorted longest first, so padding is small and any out-of-memory error happens in the first batch.
    Batches hold at most `batch_size` rows and, with `max_tokens`, at most that many attended positions."""
    model.eval()
    kw = cache_kwarg(model)
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, r in enumerate(requests):
        groups[r.prefix].append(i)
    result = [0.0] * len(requests)
    for prefix, idx in groups.items():
        kv, prefix_lp = prefix_forward(model, prefix, bf16)
        idx.sort(key=lambda i: -len(requests[i].tokens))
        for b in batches([len(requests[i].tokens) for i in idx], len(prefix), batch_size, max_tokens):
            chunk = [idx[j] for j in b]
            for i, v in zip(chunk, _score_batch(model, kw, kv, prefix_lp, [requests[i] for i in chunk], bf16)):
                result[i] = v
            if progress is not None:
                progress.update(len(chunk))
        del kv
    return result


@torch.no_grad()
def loglikelihood_reference(model, requests: list[Request]) -> list[float]:
    """Brute force: one full forward of prefix + tokens per request, no cache, no padding."""
    device = next(model.parameters()).device
    out = []
    for r in requests:
        ids = torch.tensor([list(r.prefix) + list(r.tokens)], device=device)
        logp = torch.log_softmax(model(input_ids=ids, use_cache=False).logits[0].float(), -1)  # (L, V)
        P = len(r.prefix)
        out.append(sum(logp[P + t - 1, r.tokens[t]].item() for t in range(r.start, len(r.tokens))))
    return out
