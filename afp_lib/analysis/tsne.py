"""2-D t-SNE of sentence representations with openTSNE (Figs. 1a/b, 3a/b, 6).

Barnes-Hut below BH_LIMIT points (exact enough and fast for ~1k pairs), FFT-accelerated interpolation
above it (Barnes-Hut grows as N log N with a large constant). Fixed seed and PCA initialisation, so the
same vectors always give the same picture."""
from __future__ import annotations

import logging

import numpy as np
import torch

logger = logging.getLogger(__name__)
BH_LIMIT = 5000


def tsne_2d(x, *, perplexity: float = 30.0, seed: int = 0, normalize: bool = True, n_jobs: int = 1,
            n_iter: int = 500) -> np.ndarray:
    """(N, H) vectors -> (N, 2) t-SNE coordinates. With normalize=True rows are L2-normalised first, so
    distances follow cosine similarity, the geometry MCL trains."""
    from openTSNE import TSNE  # imported here: numba compilation costs seconds at first import

    x = x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or len(x) < 4:
        raise ValueError(f"t-SNE needs an (N, H) array with N >= 4, got shape {x.shape}")
    if normalize:
        x = x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)
    max_perplexity = (len(x) - 1) / 3  # openTSNE needs 3 * perplexity < N
    if perplexity > max_perplexity:
        logger.warning("perplexity %.1f is too large for %d points; using %.1f", perplexity, len(x), max_perplexity)
        perplexity = max_perplexity
    method = "bh" if len(x) < BH_LIMIT else "fft"
    tsne = TSNE(n_components=2, perplexity=perplexity, random_state=seed, initialization="pca",
                negative_gradient_method=method, n_jobs=n_jobs, n_iter=n_iter, verbose=False)
    return np.asarray(tsne.fit(x.astype(np.float64)))  # (N, 2)
