"""Token ids on disk (afp_lib.trainer.tokenized): the same ids and batches as the in-memory path, built once
by rank 0 while the other ranks wait, an unfinished build never read."""
from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest
import torch

from afp_lib.trainer import collate, tokenized

PAIRS = [{"src": "The cat sat on the mat.", "tgt": "猫坐在垫子上。"},
         {"src": "A dog runs in the park.", "tgt": "一只狗在公园里跑。"},
         {"src": "We need at least ten countries to join us. " * 6, "tgt": "我们需要至少十个国家加入我们。"}] * 5
CIT = [{"context": f"{p['src']} Answer in Chinese:", "response": p["tgt"]} for p in PAIRS]


def test_ids_and_batches_equal_the_in_memory_path(toy_tokenizer, tmp_path):
    seq_len = 24  # the long pair and CIT rows are truncated: the same cuts as collate's
    rec = tokenized.build(tmp_path / "tok", toy_tokenizer, PAIRS, CIT, seq_len, batch_size=4)
    assert rec["rows"] == {"pairs": len(PAIRS), "cit": len(CIT)}
    rows = tokenized.load(tmp_path / "tok")
    want_pairs = collate.encode_pairs(toy_tokenizer, PAIRS, seq_len)
    want_cit = collate.encode_cit(toy_tokenizer, CIT, seq_len)
    assert list(rows["pairs"]) == [(list(s), list(t)) for s, t in want_pairs]
    assert [rows["cit"][i] for i in range(len(CIT))] == [(list(a), list(b)) for a, b in want_cit]
    idx = [3, 0, 14, 7]
    for got, want in [(collate.pair_batch(rows["pairs"], idx, 0), collate.pair_batch(want_pairs, idx, 0)),
                      (collate.lm_batch(rows["cit"], idx, 0), collate.lm_batch(want_cit, idx, 0))]:
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)
    arrow = tmp_path / "tok" / "pairs.arrow"
    assert arrow.is_file() and not (tmp_path / "tok" / "cache").exists()   # ids kept, the text dropped


def test_unfinished_build_is_never_read_and_is_redone(toy_tokenizer, tmp_path):
    out = tmp_path / "tok"
    tokenized.build(out, toy_tokenizer, PAIRS, None, 32)
    (out / tokenized.DONE).unlink()                                          # as if killed before the end
    with pytest.raises(FileNotFoundError, match="done.json missing"):
        tokenized.load(out)
    calls = []
    rows = tokenized.build_once(out, lambda: calls.append(1) or tokenized.build(out, toy_tokenizer, PAIRS, None, 32))
    assert calls == [1] and len(rows["pairs"]) == len(PAIRS)
    tokenized.build_once(out, lambda: calls.append(2))                       # finished: loaded, not rebuilt
    assert calls == [1]


def _rank(rank: int, out: str, log: str, fail: bool):
    from afp_lib.tokenizer import train_bpe

    def make():
        Path(log).write_text("built by rank 0\n")
        if fail:
            raise ValueError("tokenizer exploded")
        tok = train_bpe([p[k] for p in PAIRS for k in ("src", "tgt")], vocab_size=300, min_frequency=1)
        tokenized.build(Path(out), tok, PAIRS, CIT, 32)

    try:
        rows = tokenized.build_once(Path(out), make, rank=rank, poll_s=0.05, timeout_s=60)
        return ("ok", len(rows["pairs"]), rows["cit"][2][0])
    except Exception as e:  # returned to the parent, which checks every rank's outcome
        return ("error", type(e).__name__, str(e))


def test_rank_zero_builds_while_the_others_wait(tmp_path):
    ctx = mp.get_context("fork")
    for fail in (False, True):
        out, log = tmp_path / f"tok-{fail}", tmp_path / f"log-{fail}"
        with ctx.Pool(2) as pool:
            waiting = pool.apply_async(_rank, (1, str(out), str(log), fail))  # starts first: must wait
            res0 = pool.apply_async(_rank, (0, str(out), str(log), fail)).get(60)
            res1 = waiting.get(60)
        if not fail:
            assert res0 == res1 and res0[:2] == ("ok", len(PAIRS))
        else:
            assert res0 == ("error", "ValueError", "tokenizer exploded")
            assert res1[0] == "error" and "rank 0 failed" in res1[2] and "tokenizer exploded" in res1[2]
        assert log.read_text() == "built by rank 0\n"


def test_sample_order_is_a_compact_array_with_the_list_shuffle_order():
    import random
    from array import array

    from afp_lib.trainer.loop import Stream
    s = Stream(1000, seed=3)
    got = s.take(990, 20)                                   # crosses into epoch 1
    want = []
    for epoch in (0, 1):
        perm = list(range(1000))
        random.Random(f"3-{epoch}").shuffle(perm)
        want.append(perm)
    assert got == want[0][990:] + want[1][:10]
    assert isinstance(s._perms[1], array) and s._perms[1].itemsize == 8
