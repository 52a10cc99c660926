"""Shared fixtures: a toy tokenizer trained on a few mirror-like lines and tiny random models of each
architecture. No download ever happens in tests."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # 2-core machines; tests are tiny and deterministic

ROOT = Path(__file__).resolve().parent.parent
SHARED_MIRROR = ROOT.parent / "shared" / "afp-data"

TOY_TEXT = [
    "The cat sat on the mat.", "A dog runs in the park.", "We need at least ten countries to join us.",
    "猫坐在垫子上。", "一只狗在公园里跑。", "我们需要至少十个国家加入我们。",
    "Kedi paspasın üzerine oturdu.", "Bir köpek parkta koşuyor.",
    "แมวนั่งบนเสื่อ", "สุนัขวิ่งในสวน", "Paka alikaa juu ya mkeka.", "Mbwa anakimbia bustanini.",
] * 20


@pytest.fixture(scope="session")
def toy_tokenizer():
    from afp_lib.tokenizer import train_bpe
    return train_bpe(TOY_TEXT, vocab_size=400, min_frequency=1)


@pytest.fixture(scope="session")
def tiny_shape():
    from afp_lib.models import ModelShape
    return ModelShape(d_model=32, n_layers=3, n_heads=2, ffn_dim=64, max_positions=128)


@pytest.fixture(scope="session")
def tiny_models(toy_tokenizer, tiny_shape):
    """One tiny random model per supported architecture, in eval mode."""
    from afp_lib.models import ARCHS, build_model
    return {arch: build_model(arch, tiny_shape, toy_tokenizer, seed=0).eval() for arch in ARCHS}


@pytest.fixture()
def mirror(monkeypatch):
    """Point $AFP_DATA_MIRROR at ../shared/afp-data (skip where it is absent)."""
    if not SHARED_MIRROR.is_dir():
        pytest.skip("../shared/afp-data is not beside the checkout")
    monkeypatch.setenv("AFP_DATA_MIRROR", str(SHARED_MIRROR))
    return SHARED_MIRROR


@pytest.fixture()
def fake_mirror(tmp_path, monkeypatch):
    """An empty mirror directory that a test fills with the files it needs."""
    monkeypatch.setenv("AFP_DATA_MIRROR", str(tmp_path))
    return tmp_path
