import math

import torch

from afp_lib.metrics import alignment, retrieval_accuracy, uniformity


def test_alignment_of_identical_pairs_is_zero_and_of_opposites_is_four():
    x = torch.randn(10, 8)
    assert alignment(x, x) == 0.0
    assert math.isclose(alignment(x, -x), 4.0, rel_tol=1e-6)


def test_uniformity_by_hand():
    # two orthogonal unit vectors: squared distance 2, so log exp(-2*2) = -4
    x = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    assert math.isclose(uniformity(x), -4.0, rel_tol=1e-6)
    # three vectors: two identical, one opposite: distances^2 = 0, 4, 4 -> log((1 + 2e^-8)/3)
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    assert math.isclose(uniformity(y), math.log((1 + 2 * math.exp(-8)) / 3), rel_tol=1e-6)


def test_retrieval_of_identical_sets_is_perfect_and_of_a_shuffle_is_not():
    torch.manual_seed(0)
    x = torch.randn(50, 16)
    assert retrieval_accuracy(x, x) == {"x2y": 1.0, "y2x": 1.0}
    shuffled = retrieval_accuracy(x, x[torch.randperm(50)])
    assert shuffled["x2y"] < 0.2
