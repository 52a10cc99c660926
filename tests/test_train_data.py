"""trainer.data.lang_pivot_pairs: the dedup that holds digests and row numbers gives the pairs of deduplicating
the text itself (same rows, same shuffled order, same cap)."""
from __future__ import annotations

import random

import datasets
import pytest

from afp_lib.data import DatasetNotFound
from afp_lib.trainer import data as data_mod
from afp_lib.trainer.config import load_train_config, replace


def _by_text(sources: list[list[tuple[str, str]]], seed: int, lang: str, min_chars: int, max_chars: int, cap: int):
    """The pairs as deduplicating the stripped text in a set gives them, shuffled and capped."""
    seen, rows = set(), []
    for records in sources:
        for e, x in records:
            e, x = e.strip(), x.strip()
            if min(len(e), len(x)) < min_chars or (e, x) in seen or (max_chars and max(len(e), len(x)) > max_chars):
                continue
            seen.add((e, x))
            rows.append((e, x))
    random.Random(f"{seed}-{lang}").shuffle(rows)
    return rows[:cap] if cap else rows


@pytest.mark.parametrize("cap,max_chars", [(0, 0), (7, 0), (0, 12), (25, 12)])
def test_dedup_by_digest_gives_the_text_dedup(cap, max_chars, monkeypatch):
    rng = random.Random(1)
    words = ["a", "bb", "ccc", "猫", "dog", "x y", " pad ", "longer words here"]
    make = lambda n: [(" ".join(rng.choices(words, k=rng.randint(1, 4))), rng.choice(words)) for _ in range(n)]  # noqa: E731
    sources = {"s1": make(60), "s2": make(40) + [(" a ", "bb"), ("a", " bb ")]}  # repeats within and across sources
    monkeypatch.setattr(data_mod, "load_parallel", lambda lang, source, pivot: datasets.Dataset.from_list(
        [{"translation": {pivot: e, lang: x}} for e, x in sources[source]]) if source in sources
        else (_ for _ in ()).throw(DatasetNotFound(source)))
    cfg = load_train_config("smoke")
    cfg = replace(cfg, seed=3, data=replace(cfg.data, sources=["s1", "missing", "s2"], min_chars=2,
                                            max_chars=max_chars, max_pairs_per_lang=cap))
    got = data_mod.lang_pivot_pairs(cfg, "zh")
    want = _by_text([sources["s1"], sources["s2"]], 3, "zh", 2, max_chars, cap)
    assert got == want and len(got) >= 5
    assert len(set(got)) == len(got) and (cap == 0 or len(got) == cap)
