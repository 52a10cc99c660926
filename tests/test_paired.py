"""Paired bootstrap differences on the same items (analysis.intervals.paired_difference, tables.paired_table)."""
import numpy as np
import pandas as pd
import pytest

from afp_lib.analysis import intervals as I
from afp_lib.analysis import tables


def bits(x):
    return "".join("1" if v else "0" for v in x)


def test_a_model_equal_to_the_reference_differs_by_exactly_zero():
    a = bits(np.random.default_rng(0).random(150) < 0.6)
    assert I.paired_difference([(a, a)]) == (0.0, 0.0, 0.0)


def test_pairing_narrows_the_interval_of_a_small_consistent_gain():
    """b = a with 10 of 160 wrong items made right: +6.25 points. Two independent 160-item intervals overlap;
    the paired one excludes 0."""
    rng = np.random.default_rng(1)
    a = rng.random(160) < 0.5
    b = a.copy()
    b[np.nonzero(~a)[0][:10]] = True
    est, lo, hi = I.paired_difference([(bits(b), bits(a))])
    assert est == pytest.approx(6.25)
    assert 0 < lo < est < hi
    ia, ib = I.accuracy_interval([[(100 * a.mean(), 160)]]), I.accuracy_interval([[(100 * b.mean(), 160)]])
    assert not I.excludes(ia[1:], ib[1:])   # unpaired: indistinguishable


def test_mismatched_items_are_refused():
    with pytest.raises(ValueError, match="same items"):
        I.paired_difference([("0101", "010")])


def test_paired_table_pairs_each_aligned_model_with_its_arch_reference():
    rng = np.random.default_rng(2)
    rows = []
    ref = {("xnli", l): rng.random(20) < 0.5 for l in ("en", "zh")}
    for arch in ("g", "s"):
        for label in ("vanilla", "AFP"):
            for (task, lang), r in ref.items():
                x = r if label == "vanilla" else np.ones(20, bool)    # AFP gets every item right
                for seed in (0, 1):   # a 0-shot cell is recorded once per eval seed: counted once
                    rows.append({"model": f"{arch}+{label}", "arch": arch, "label": label, "train_seed": 0,
                                 "task": task, "language": lang, "shots": 0, "seed": seed, "metric": "acc",
                                 "value": 100 * x.mean(), "correct": bits(x)})
    t = tables.paired_table(pd.DataFrame(rows), tasks=["xnli"])
    assert list(t.index) == ["g+AFP", "s+AFP"]
    gain = [100 * (1 - ref[("xnli", l)].mean()) for l in ("en", "zh")]
    assert t.loc["g+AFP", "xnli en 0-shot"].startswith(f"{gain[0]:+.1f} [")
    assert t.loc["g+AFP", "Avg"].startswith(f"{np.mean(gain):+.1f} [")
    assert t.loc["g+AFP", "n cells"] == 2
