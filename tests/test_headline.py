"""The compact per-section metrics DVC prints: the same keys for every section, computed from the records."""
import pandas as pd

from afp_lib.analysis.headline import KEYS, headline_metrics


def test_headline_means_by_kind_and_best_label():
    rows = [("vanilla", "xnli", "acc", 40.0), ("vanilla", "xcopa", "acc", 50.0),
            ("layer 0", "xnli", "acc", 44.0), ("layer 0", "xcopa", "acc", 56.0),
            ("layer 1", "xnli", "acc", 30.0), ("layer 1", "xcopa", "acc", 34.0),
            ("layer 1", "xnli", "acc_se", 99.0),                        # not an accuracy: ignored
            ("vanilla", "flores", "bleu", 2.0), ("layer 0", "flores", "bleu", 5.0)]
    df = pd.DataFrame(rows, columns=["label", "task", "metric", "value"])
    out = headline_metrics(df)
    assert tuple(out) == KEYS
    assert out == {"acc_vanilla": 45.0, "acc_aligned": 41.0, "acc_best": 50.0, "acc_worst": 32.0,
                   "bleu_vanilla": 2.0, "bleu_aligned": 5.0}


def test_headline_without_vanilla_or_translation_is_null():
    df = pd.DataFrame([("alpha 1.0", "xnli", "acc", 40.0)], columns=["label", "task", "metric", "value"])
    out = headline_metrics(df)
    assert out["acc_vanilla"] is None and out["bleu_aligned"] is None and out["acc_best"] == 40.0
