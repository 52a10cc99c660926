"""Representation metrics on L2-normalised sentence vectors.

alignment (paper Eq. 5) and uniformity (Eq. 6) follow Wang & Isola (2020); lower is better for both.
Bitext retrieval accuracy is our extra probe: nearest neighbour by cosine, which stays meaningful for
small models whose ICL accuracy sits at chance."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def alignment(x: torch.Tensor, y: torch.Tensor) -> float:
    """E ||f(x) - f(x+)||^2 over positive pairs (rows of x and y), on normalised vectors."""
    x, y = F.normalize(x.float(), dim=-1), F.normalize(y.float(), dim=-1)
    return (x - y).pow(2).sum(-1).mean().item()


def uniformity(x: torch.Tensor, t: float = 2.0) -> float:
    """log E exp(-t ||f(a) - f(b)||^2) over distinct pairs of rows, on normalised vectors."""
    x = F.normalize(x.float(), dim=-1)
    sq = torch.pdist(x, p=2).pow(2)  # (N(N-1)/2,)
    return sq.mul(-t).exp().mean().log().item()


def retrieval_accuracy(x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Share of rows i whose nearest neighbour (cosine) on the other side is row i, in both directions."""
    sim = F.normalize(x.float(), dim=-1) @ F.normalize(y.float(), dim=-1).T  # (N, N)
    gold = torch.arange(sim.size(0))
    return {"x2y": (sim.argmax(1) == gold).float().mean().item(),
            "y2x": (sim.argmax(0) == gold).float().mean().item()}


def retrieval_hits(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(2N,) 0/1: whether query i finds its pair, x -> y for the first N, y -> x for the last N (the items
    that retrieval intervals resample; their mean is the mean of `retrieval_accuracy`'s two directions)."""
    sim = F.normalize(x.float(), dim=-1) @ F.normalize(y.float(), dim=-1).T
    gold = torch.arange(sim.size(0))
    return torch.cat([sim.argmax(1) == gold, sim.argmax(0) == gold]).float()


def other_language_neighbours(x: torch.Tensor, langs, k: int = 10) -> dict[str, float]:
    """How mixed the languages are, in the representation space itself (cosine, not the t-SNE map): the
    mean share of each point's k nearest neighbours that are in another language (`share`), and the same
    share were the languages perfectly mixed (`mixed`: the other languages' share of the other points)."""
    langs = list(langs)
    n = len(langs)
    if n != x.size(0) or n < 2:
        raise ValueError(f"{x.size(0)} vectors and {n} language labels: need the same number, at least 2")
    k = min(k, n - 1)
    x = F.normalize(x.float(), dim=-1)
    sim = x @ x.T
    sim.fill_diagonal_(-float("inf"))
    nearest = sim.topk(k, dim=1).indices                                # (N, k)
    codes = {lang: i for i, lang in enumerate(dict.fromkeys(langs))}
    lab = torch.tensor([codes[lang] for lang in langs])
    share = (lab[nearest] != lab[:, None]).float().mean().item()
    counts = torch.bincount(lab).float()
    mixed = ((n - counts[lab]) / (n - 1)).mean().item()
    return {"share": 100 * share, "mixed": 100 * mixed, "k": k}
