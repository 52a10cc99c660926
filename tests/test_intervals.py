"""Bootstrap intervals (items, then training seeds), their use in tables and findings, and the neighbour
share printed on the t-SNE figures."""
import numpy as np
import pandas as pd
import pytest
import torch

from afp_lib.analysis import intervals as I
from afp_lib.analysis import tables
from afp_lib.metrics import other_language_neighbours, retrieval_accuracy, retrieval_hits


def test_bernoulli_keeps_the_count_and_refuses_impossible_counts():
    items = I.bernoulli(25.0, 16)
    assert items.sum() == 4 and len(items) == 16
    with pytest.raises(ValueError, match="not a count"):
        I.bernoulli(150.0, 10)


def test_item_interval_matches_the_binomial_spread():
    est, lo, hi = I.accuracy_interval([[(50.0, 400)]])
    assert est == 50.0
    assert 3.5 < (hi - lo) / 2 < 6.5          # normal approximation: 1.96 * sqrt(.25 / 400) = 4.9 points
    assert I.accuracy_interval([[(100.0, 30)]])[1:] == (100.0, 100.0)   # no item varies: no width


def test_seed_spread_widens_the_interval():
    # items alone leave no doubt within each seed (0% and 100%), but the two training seeds disagree
    est, lo, hi = I.accuracy_interval([[(0.0, 50)], [(100.0, 50)]])
    assert est == 50.0 and lo == 0.0 and hi == 100.0
    # the same numbers as two cells of one seed: only items vary, and they do not
    assert I.accuracy_interval([[(0.0, 50), (100.0, 50)]])[1:] == (50.0, 50.0)


def test_a_fixed_seed_gives_the_same_interval():
    cells = [[(40.0, 30), (70.0, 20)]]
    assert I.accuracy_interval(cells, seed=0) == I.accuracy_interval(cells, seed=0)


def test_compare_uses_words_of_order_only_when_intervals_exclude():
    assert I.compare((5.0, 4.0, 6.0), (2.0, 1.0, 3.0)) == "above"
    assert I.compare((2.0, 1.0, 3.0), (5.0, 4.0, 6.0)) == "below"
    assert I.compare((5.0, 2.5, 6.0), (2.0, 1.0, 3.0)) == "indistinguishable from"
    assert I.compare((0.1, 0.0, 0.2), (1.0, 0.9, 1.1), lower_better=True) == "better than"


def test_retrieval_hits_are_the_items_of_retrieval_accuracy():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 8, generator=g), torch.randn(20, 8, generator=g)
    y[:10] = x[:10] + 0.01                                   # half the pairs are near-copies
    hits = retrieval_hits(x, y)
    r = retrieval_accuracy(x, y)
    assert hits.shape == (40,)
    assert hits.mean().item() == pytest.approx(0.5 * (r["x2y"] + r["y2x"]))


def _records(model, value, n, task="xcopa", shots=(0,), seeds=(0,), train_seeds=(0,)):
    return [dict(model=model, task=task, language=lang, shots=k, seed=s, metric="acc", value=value, n_items=n,
                 train_seed=t)
            for lang in ("en", "zh") for k in shots for s in seeds for t in train_seeds]


def test_resampled_records_share_a_draw_for_the_same_zero_shot_prompts():
    rec = pd.DataFrame(_records("m", 50.0, 16, seeds=(0, 1, 2)))
    reps = I.resample_records(rec, n_boot=50)
    assert len(reps) == 50 * len(rec)
    per = reps.groupby(["model", "language"])["value"].nunique()
    assert (per == 1).all()                     # the three eval seeds of one 0-shot cell: one draw
    assert reps["value"].between(0, 100).all() and reps["value"].nunique() > 1


def test_table_cells_carry_intervals_and_chance_marks():
    recs = _records("near-chance", 50.0, 16) + _records("far", 100.0, 16)
    df = tables.table5(pd.DataFrame(recs), paper=False, tasks=("xcopa",), languages=("en", "zh"), shots=(0,))
    md = tables.to_markdown(df)
    row = {line.split("|")[2].strip(): line for line in md.splitlines() if line.startswith("| ours")}
    assert "†" in row["near-chance"]                   # 50% of 16 items: the interval holds chance (50%)
    assert "100.0 [100.0, 100.0]" in row["far"] and "†" not in row["far"]
    lo = pd.DataFrame(df.attrs["ci"]["lo"]).loc[("ours", "near-chance")]
    hi = pd.DataFrame(df.attrs["ci"]["hi"]).loc[("ours", "near-chance")]
    assert (lo < 50).all() and (hi > 50).all()


def test_other_language_neighbours_separated_and_mixed():
    g = torch.Generator().manual_seed(0)
    en = torch.randn(30, 16, generator=g)
    langs = ["en"] * 30 + ["zh"] * 30
    apart = other_language_neighbours(torch.cat([en + 5.0, -en - 5.0]), langs, k=5)
    same = other_language_neighbours(torch.cat([en, en + 1e-4]), langs, k=1)   # each pair's nearest: its translation
    assert apart["share"] == 0.0 and same["share"] == 100.0
    assert apart["mixed"] == pytest.approx(100 * 30 / 59)
    with pytest.raises(ValueError, match="language labels"):
        other_language_neighbours(en, langs)


def test_bleu_statistics_give_corpus_bleu_and_its_interval():
    import sacrebleu

    from afp_lib.eval.translation import sentence_bleu_stats
    hyps = ["the cat sat on a mat", "hello world", "we need ten countries", "a b c d e f"] * 5
    refs = ["the cat sat on the mat", "hello there world", "we need at least ten countries", "a b c d"] * 5
    stats = np.array(sentence_bleu_stats(hyps, refs, "13a"))
    assert I.corpus_bleu(stats) == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs], tokenize="13a").score)
    reps = I.bleu_replicates(stats, 200, np.random.default_rng(0))
    assert reps.min() < I.corpus_bleu(stats) < reps.max()
    rec = pd.DataFrame([dict(model="m", task="flores", language="en-zh", shots=0, seed=0, metric="bleu",
                             value=I.corpus_bleu(stats), n_items=len(hyps), bleu_stats=stats.tolist()),
                        dict(model="m", task="flores", language="en-zh", shots=0, seed=0, metric="chrf",
                             value=50.0, n_items=len(hyps))])
    out = I.resample_records(rec, n_boot=100)
    assert out.loc[out.metric == "bleu", "value"].nunique() > 1 and out.loc[out.metric == "chrf", "value"].isna().all()
