"""The two AFP losses, SimCSE-small.

`mcl_loss` is Eq. 2: InfoNCE over cosine similarities / tau with in-batch negatives. The authors' code
uses one direction only (src -> tgt); `symmetric=True` averages both directions, so neither language is
only ever the anchor. In multi-process runs the negatives are gathered from every rank. `gather="grad"`
(default) gathers with autograd: each rank's vectors also get the gradient that other ranks' losses send
them, so with gradients averaged over ranks one W-rank step equals one step on the joined batch.
`gather="local_grad"` is the authors' variant (other ranks' vectors are constants; each rank only sees
the gradient of its own loss); `gather="off"` uses local negatives only.

`lm_loss` is Eq. 3 (and plain CLM): next-token cross-entropy on the positions whose label is not -100,
so a CIT batch whose prompt tokens are labelled -100 trains on the response only."""
from __future__ import annotations

from functools import partial

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .families import plain_head

IGNORE = -100  # label of positions that carry no loss (prompt, padding)


class _AllGather(torch.autograd.Function):
    """all_gather whose backward returns this rank's slice of the gradient summed over ranks: the rows this
    rank contributed are used by every rank's loss, so their gradient is the sum of those losses' gradients.
    (An all-reduce, not a reduce-scatter, so that it runs on gloo as well as nccl.)"""

    @staticmethod
    def forward(ctx, x):
        world, rank = dist.get_world_size(), dist.get_rank()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.rows = rank, x.size(0)
        return torch.cat(parts, 0)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def _multi() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_rows(x: torch.Tensor, mode: str = "grad") -> tuple[torch.Tensor, int]:
    """(B, H) on each rank -> ((world*B, H), offset of this rank's rows). Identity in one process.
    mode "grad": autograd all-gather (exact); "local_grad": other ranks' rows detached (the authors' code).
    Assumes the same B on every rank (the loop's endless sample stream never yields a partial batch)."""
    if mode == "off" or not _multi():
        return x, 0
    rank = dist.get_rank()
    if mode == "grad":
        return _AllGather.apply(x), rank * x.size(0)
    if mode != "local_grad":
        raise ValueError(f"gather mode {mode!r}: use 'grad', 'local_grad' or 'off'")
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    parts[rank] = x  # keep the autograd graph of the local part only
    return torch.cat(parts, 0), rank * x.size(0)


def token_mean(total: torch.Tensor, n: int, across_ranks: bool = False) -> torch.Tensor:
    """total / n, where with `across_ranks` n is the mean count over ranks: the mean over ranks of the result
    is then the joined batch's token mean (ranks whose batches hold different numbers of response tokens
    weigh each token alike, as one process on the joined batch would)."""
    if across_ranks and _multi():
        count = torch.tensor([float(n)], dtype=torch.float64, device=total.device)
        dist.all_reduce(count)
        return total * (dist.get_world_size() / count.item())
    return total / n


def mcl_loss(h_src: torch.Tensor, h_tgt: torch.Tensor, temperature: float = 0.05, symmetric: bool = True,
             gather: str = "grad") -> torch.Tensor:
    """InfoNCE of Eq. 2. h_src, h_tgt: (B, H), row i of each is a translation pair.

    sim[i, j] = cos(h_src_i, h_tgt_j) / tau; the positive of row i is column i, the other columns (from
    every rank unless gather="off") are negatives; the loss is the mean over this rank's rows. Symmetric: mean of the src->tgt and tgt->src losses."""
    if h_src.shape != h_tgt.shape or h_src.dim() != 2:
        raise ValueError(f"mcl_loss needs two (B, H) tensors of one shape, got {tuple(h_src.shape)} and {tuple(h_tgt.shape)}")
    z_src = F.normalize(h_src.float(), dim=-1)  # (B, H)
    z_tgt = F.normalize(h_tgt.float(), dim=-1)  # (B, H)
    all_src, offset = gather_rows(z_src, gather)  # (W*B, H)
    all_tgt, _ = gather_rows(z_tgt, gather)
    labels = torch.arange(z_src.size(0), device=z_src.device) + offset  # (B,) positives on the diagonal
    loss = F.cross_entropy(z_src @ all_tgt.T / temperature, labels)  # (B, W*B) src -> tgt
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(z_tgt @ all_src.T / temperature, labels))  # tgt -> src
    return loss


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over labelled positions. logits (B, T, V), labels (B, T) with -100
    where no loss is taken; label t is predicted from position t-1 (the shift happens here)."""
    shift_logits = logits[:, :-1].float()  # (B, T-1, V)
    shift_labels = labels[:, 1:]  # (B, T-1)
    if not (shift_labels != IGNORE).any():
        raise ValueError("lm_loss got a batch with no labelled token (every response was masked or truncated)")
    return F.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
                           ignore_index=IGNORE)


# Response tokens per LM-head chunk: the head and the cross-entropy run on at most this many tokens at once and
# each chunk's logits are recomputed in the backward pass (torch.utils.checkpoint), so the (N, V) logits (bf16,
# their fp32 copy, the log-softmax output kept for backward) never exist for all N tokens: with a 256k vocabulary
# 1024 tokens cost ~4 GB at their peak instead of ~14-16 bytes x N x V (~21 GB for 6k tokens). A batch of at most
# this many tokens takes the one-shot path (the same ops as before, so small-profile results are unchanged).
# Not in TrainConfig: chunking changes only the order of a float sum, and a config field would enter the run key.
HEAD_CHUNK = 1024


def _head_ce_sum(head, h: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(head(h).float(), target, reduction="sum")


def response_logits_loss(model, hidden: torch.Tensor, labels: torch.Tensor,
                         chunk: int | None = None) -> tuple[torch.Tensor, int]:
    """(summed CE, number of labelled tokens) from final hidden states (B, T, H): the LM head runs only
    where a label is predicted, so prompt tokens cost no (B, T, V) logits; over more than `chunk` such
    tokens (default HEAD_CHUNK) it runs chunk by chunk, each chunk's logits recomputed in backward (0 = one shot)."""
    keep = labels[:, 1:] != IGNORE  # (B, T-1): position t predicts label t+1
    h = hidden[:, :-1][keep]  # (N, H)
    target = labels[:, 1:][keep]  # (N,)
    head, n = model.get_output_embeddings(), int(keep.sum())
    chunk = HEAD_CHUNK if chunk is None else chunk
    if chunk <= 0 or n <= chunk:
        return _head_ce_sum(head, h, target), n
    run = _head_ce_sum if not torch.is_grad_enabled() else partial(checkpoint, _head_ce_sum, use_reentrant=False)
    return sum(run(head, h[i:i + chunk], target[i:i + chunk]) for i in range(0, n, chunk)), n


def cit_loss(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
             across_ranks: bool = False, chunk: int | None = None) -> torch.Tensor:
    """Eq. 3: the causal LM loss of `model` on response tokens only (prompt and padding labelled -100).
    `across_ranks` (training, every rank calls it): normalised by the mean token count over ranks, see
    `token_mean`. `chunk`: LM-head chunk of plain-head models (`response_logits_loss`)."""
    if plain_head(model.config) and model.get_output_embeddings() is not None:
        hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        total, n = response_logits_loss(model, hidden, labels, chunk)
        if n == 0:
            raise ValueError("cit_loss got a batch with no labelled token (every response was masked or truncated)")
        return token_mean(total, n, across_ranks)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits  # (B, T, V)
    loss = lm_loss(logits, labels)
    if not across_ranks:
        return loss
    n = int((labels[:, 1:] != IGNORE).sum())
    return token_mean(loss * n, n, across_ranks)
