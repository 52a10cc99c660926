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
