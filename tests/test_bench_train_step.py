"""The trainer benchmark's arithmetic: the RATIO line is made of the table's medians, as the issue defines it."""
import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("bench_train_step",
                                               Path(__file__).resolve().parent.parent / "bench" / "train_step.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_ratios_are_ratios_of_the_median_step_times():
    # the lead's inconsistent case in shape: per-round paired ratios a/c are 0.64, 1.22, 1.50 (median 1.22),
    # but the medians of a and c are equal, so cit_vs_afp must be 1.00 like the table
    times = {"a_ours": [9.0, 12.8, 10.482], "b_full_forward": [19.484, 25.0, 15.0], "c_cit_only": [14.0, 10.487, 7.0]}
    r = bench.summarize(times)
    assert r["a_ours"] == 10.482 and r["b_full_forward"] == 19.484 and r["c_cit_only"] == 10.487
    assert r["afp_vs_full_forward"] == pytest.approx(19.484 / 10.482)  # b/a: our speed-up over the full forward
    assert r["cit_vs_afp"] == pytest.approx(10.482 / 10.487)  # a/c: AFP's cost over a CIT-only step
    assert r["ceiling"] == pytest.approx(19.484 / 10.487)  # b/c: the speed-up of a free MCL
    # the ceiling bounds the speed-up exactly when AFP costs at least a CIT step
    assert r["afp_vs_full_forward"] * r["cit_vs_afp"] == pytest.approx(r["ceiling"])


def test_ratios_direction():
    # AFP twice as fast as the full forward and 10% dearer than CIT alone
    r = bench.summarize({"a_ours": [1.1, 1.1], "b_full_forward": [2.2, 2.2], "c_cit_only": [1.0, 1.0]})
    assert r["afp_vs_full_forward"] == pytest.approx(2.0)
    assert r["cit_vs_afp"] == pytest.approx(1.1)
    assert r["ceiling"] == pytest.approx(2.2)
