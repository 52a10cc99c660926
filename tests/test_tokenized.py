"""Token ids on disk (afp_lib.trainer.tokenized): the same ids and batches as the in-memory path, built once
by rank 0 while the other ranks wait, an unfinished build never read."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from afp_lib.trainer import collate, tokenized

PAIRS = [{"src": "The cat sat on the mat.", "tgt": "猫坐在垫子上。"},
         {"src": "A dog runs in the park.", "tgt": "一只狗在公园里跑。"},
         {"src": "We need at least ten countries to join us. " * 6, "tgt": "我们需要至少十个国家加入我们。"}] * 5
CIT = [{"context": f"{p['src']} Answer in Chinese:", "response": p["tgt"]} for p in PAIRS]


def _build(out, tokenizer, pairs, cit, seq_len, batch_size=1000, pack=False):
    """tokenized.build of a caller's rows (AFP; MCL alone when there are no CIT samples)."""
    from afp_lib.trainer.config import load_train_config, replace
    from afp_lib.trainer.data import TrainData
    cfg = load_train_config("smoke")
    cfg = replace(cfg, seq_len=seq_len, objective="afp" if cit else "mcl", cit=replace(cfg.cit, pack=pack))
    return tokenized.build(out, cfg, tokenizer, TrainData(pairs=list(pairs), cit=list(cit or [])), batch_size)


def test_ids_and_batches_equal_the_in_memory_path(toy_tokenizer, tmp_path):
    seq_len = 24  # the long pair and CIT rows are truncated: the same cuts as collate's
    rec = _build(tmp_path / "tok", toy_tokenizer, PAIRS, CIT, seq_len, batch_size=4)
    assert rec["rows"] == {"pairs": len(PAIRS), "dev": 0, "cit": len(CIT)}
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


def test_rows_read_while_the_map_pages_are_released_every_few_rows_are_the_same(toy_tokenizer, tmp_path):
    """TokenRows drops its map's pages every `release_rows` rows (madvise): the rows read stay the same, and
    the releases happen (how much RssFile that saves is measured by bench/mapped_pages.py)."""
    _build(tmp_path / "tok", toy_tokenizer, PAIRS, CIT, 128, batch_size=4, pack=True)
    rows = tokenized.load(tmp_path / "tok")
    pairs, cit = rows["pairs"], rows["cit"]
    want_pairs, want_packed = [pairs[i] for i in range(len(pairs))], [cit[i] for i in range(len(cit))]
    small = tokenized.TokenRows(pairs.path, "pairs", release_rows=4)
    got = [small[i] for i in [*range(len(PAIRS)), 3, 0]]
    assert got == [*want_pairs, want_pairs[3], want_pairs[0]]
    assert small.releases == (len(PAIRS) + 2 - 1) // 4 > 0
    cit_rows = tokenized.TokenRows(cit.cit.path, "cit", release_rows=3)
    packed = tokenized.PackedRows(tokenized.TokenRows(cit.packed.path, "packed", release_rows=1), cit_rows)
    assert [packed[i] for i in range(len(packed))] == want_packed and len(want_packed) < len(CIT)
    assert cit_rows.releases > 0 and packed.packed.releases == len(packed) - 1
    assert list(small) == want_pairs                                         # read through a plain file


def test_unfinished_build_is_never_read_and_is_redone(toy_tokenizer, tmp_path):
    out = tmp_path / "tok"
    _build(out, toy_tokenizer, PAIRS, None, 32)
    (out / tokenized.DONE).unlink()                                          # as if killed before the end
    with pytest.raises(FileNotFoundError, match="done.json missing"):
        tokenized.load(out)
    calls = []
    rows = tokenized.build_once(out, lambda: calls.append(1) or _build(out, toy_tokenizer, PAIRS, None, 32))
    assert calls == [1] and len(rows["pairs"]) == len(PAIRS)
    tokenized.build_once(out, lambda: calls.append(2))                       # finished: loaded, not rebuilt
    assert calls == [1]


def test_waiting_ranks_load_what_rank_zero_built_or_raise_its_error(toy_tokenizer, tmp_path, monkeypatch):
    """As rank 1 of 2 (the build's wait is distributed.on_main's flag): never builds; loads the folder once rank
    0's flag holds this call's token; raises rank 0's error. Both ranks under torchrun: the two-rank test below."""
    from afp_lib.trainer import distributed
    monkeypatch.setattr(distributed, "multi", lambda: True)
    monkeypatch.setattr(distributed, "is_main", lambda: False)
    monkeypatch.setattr(distributed, "rank_world", lambda: (1, 2))
    monkeypatch.setattr(distributed, "broadcast", lambda obj, src=0: "tok1")
    out = tmp_path / "tok"
    _build(out, toy_tokenizer, PAIRS, CIT, 32)                                 # as rank 0 would have
    distributed._write_flag(tmp_path / ".tok.json", "tok1", None)
    rows = tokenized.build_once(out, lambda: pytest.fail("rank 1 built"), wait_s=5)
    assert len(rows["pairs"]) == len(PAIRS)
    distributed._write_flag(tmp_path / ".tok.json", "tok1", "ValueError: tokenizer exploded")
    with pytest.raises(RuntimeError, match="rank 0 failed while tokenizing tok: ValueError: tokenizer exploded"):
        tokenized.build_once(out, lambda: None, wait_s=5)
    distributed._write_flag(tmp_path / ".tok.json", "tok0", None)              # an earlier call's flag
    with pytest.raises(TimeoutError, match="did not finish tokenizing tok"):
        tokenized.build_once(out, lambda: None, wait_s=0.1)


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


# --- the trainer's data path: train.tokenized arrow against memory, batch by batch ---

def _smoke(**changes):
    from afp_lib.trainer.config import load_train_config, replace
    return replace(load_train_config("smoke"), **changes)


def _batches(cfg, prep, steps: int, rank: int = 0, world: int = 1) -> list:
    """Every micro-batch the training loop would feed this rank for `steps` steps, as plain lists."""
    from afp_lib.trainer.loop import Stream, micro_batches, micro_index
    lm_items = prep.cit if cfg.uses_cit else prep.clm
    pairs = Stream(len(prep.pairs), cfg.seed) if prep.pairs else None
    lm = Stream(len(lm_items), cfg.seed + 1) if lm_items else None
    lm_bs = cfg.cit_batch_size if cfg.uses_cit else cfg.batch_size
    out = []
    for step in range(steps):
        for micro in range(cfg.grad_accum):
            m = micro_index(step, micro, cfg.grad_accum, rank, world)
            p_idx = pairs.take(m * cfg.batch_size, cfg.batch_size) if pairs else None
            l_idx = lm.take(m * lm_bs, lm_bs) if lm and prep.share is None else None
            got = micro_batches(cfg, prep, p_idx, l_idx, 0)
            out.append([{k: v.tolist() for k, v in b.items()} if b else None for b in got])
    return out


@pytest.mark.parametrize("changes", [
    {"seq_len": 512},                                          # AFP: pairs + translation CIT, the shared step
    {"seq_len": 512, "cit": {"pack": True}},                   # packed CIT rows (the paper's default)
    {"objective": "cit"},                                      # CIT alone, unpacked
    {"objective": "clm"},                                      # BPre: CLM blocks of the pairs' and CIT text
], ids=["afp-shared", "afp-packed", "cit", "clm"])
def test_arrow_path_gives_the_memory_path_batches(changes, toy_tokenizer, mirror, tmp_path, monkeypatch):
    _compare_arrow_and_memory(changes, toy_tokenizer, tmp_path, monkeypatch)


BACTRIAN = {  # Bactrian-X rows: ids missing in a language, a repeated id (the last row counts), an empty output
    "en": [{"id": f"i{k}", "instruction": f"Name a colour number {k}.", "input": "" if k % 2 else f"hint {k}",
            "output": "" if k == 3 else f"Blue {k}."} for k in range(8)] + [
           {"id": "i5", "instruction": "Name a colour, again.", "input": "", "output": "Red."}],
    "zh": [{"id": f"i{k}", "instruction": f"说出颜色 {k}。", "input": "", "output": f"蓝色 {k}。"}
           for k in range(8) if k != 6],
    **{lang: [{"id": f"i{k}", "instruction": f"{lang} colour {k}", "input": "" if k % 2 else f"{lang} hint",
               "output": f"{lang} blue {k}"} for k in range(8)] for lang in ("th", "sw")},
}
ALPACA = [{"instruction": f"Say {k}.", "input": "", "output": "" if k == 1 else f"{k}"} for k in range(4)]


@pytest.fixture()
def fake_instructions(monkeypatch):
    """Bactrian-X and Alpaca rows (above) in place of the hub."""
    import datasets

    from afp_lib.trainer import data as train_data

    def fake_split(hub_id, config, split):
        rows = {"MBZUAI/Bactrian-X": BACTRIAN.get(config), "tatsu-lab/alpaca": ALPACA}[hub_id]
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(train_data, "load_split", fake_split)


def _reference_bactrian(by_lang, p_src, seed, policy, pivot="en"):
    """Bactrian-X pairs and samples written plainly over all languages' rows in memory: the definition that
    `streamed_bactrian`'s one-language-at-a-time reading must give."""
    from afp_lib import cit
    index = {lang: {r["id"]: r for r in rows} for lang, rows in by_lang.items()}   # the last row of an id
    common = sorted(set.intersection(*(set(ix) for ix in index.values())))
    groups = [{lang: index[lang][i] for lang in by_lang} for i in common]
    pairs = [{"src": g[x]["instruction"], "tgt": g[y]["instruction"], "src_lang": x, "tgt_lang": y}
             for g in groups for x, y in cit.language_pairs(by_lang, policy, pivot)]
    samples = [{"context": cit._join(g[a]["instruction"], g[a]["input"], cit.answer_prompt(b)),
                "response": g[b]["output"].strip(), "src_lang": a, "tgt_lang": b}
               for g, (a, b) in zip(groups, cit.bactrian_plan(len(groups), sorted(by_lang), p_src, seed, policy, pivot))
               if g[b]["output"].strip()]
    return pairs, samples


@pytest.mark.parametrize("policy", ["bridge", "pairwise"])
def test_streamed_bactrian_gives_the_plain_definition(policy, fake_instructions):
    from afp_lib.trainer.config import load_train_config
    from afp_lib.trainer.data import streamed_bactrian
    cfg = load_train_config("smoke", ["data.langs=[zh, th, sw]", f"data.policy={policy}", "cit.p_src=0.3"])
    want_pairs, want_samples = _reference_bactrian({k: BACTRIAN[k] for k in ("en", "zh", "th", "sw")},
                                                  cfg.p_src, cfg.seed, policy)
    got = streamed_bactrian(cfg)
    assert list(got.pairs()) == want_pairs and len(want_pairs) == 7 * (3 if policy == "bridge" else 6)
    assert list(got.samples()) == want_samples and len(want_samples) >= 6


def test_streamed_build_with_bactrian_and_alpaca_gives_the_memory_path_batches(toy_tokenizer, mirror, tmp_path,
                                                                              monkeypatch, fake_instructions):
    """The paper's sources (Bactrian-X pairs and samples, p_src > 0) and Alpaca, on fake rows."""
    for pack in (False, True):
        changes = {"seq_len": 512, "cit": {"sources": ["bactrian", "translation", "alpaca"], "p_src": 0.5,
                                           "pack": pack}, "data": {"bactrian_pairs": True}}
        mem = _compare_arrow_and_memory(changes, toy_tokenizer, tmp_path / f"pack{pack}", monkeypatch)
        n_pairs, n_cit = (int(part.split()[0]) for part in mem.summary.split(", ")[:2])
        assert n_pairs == len(mem.pairs) and n_pairs > 7           # 7 Bactrian-X pairs (ids in both languages)
        assert n_pairs + 3 < n_cit <= n_pairs + 3 + 7              # + 3 Alpaca samples + Bactrian-X samples


@pytest.mark.parametrize("objective", ["afp", "bit", "clm"])
def test_streamed_build_of_four_languages_gives_the_memory_path_batches(objective, toy_tokenizer, mirror, tmp_path,
                                                                        monkeypatch, fake_instructions):
    """Bridge with four languages: Bactrian-X samples and pairs with English on one side in both builds; BIT
    monolingual; BPre's CLM blocks of the pairs' sentences and the CIT samples' text, id for id."""
    from afp_lib.trainer.config import load_train_config, replace
    from afp_lib.trainer.data import build_train_data
    changes = {"objective": objective, "seq_len": 512, "data": {"bactrian_pairs": True, "langs": ["zh", "th", "sw"]},
               "cit": {"sources": ["bactrian", "translation", "alpaca"], "p_src": 0.5}}
    mem = _compare_arrow_and_memory(changes, toy_tokenizer, tmp_path, monkeypatch)
    cfg = load_train_config("smoke", [f"objective={objective}", "data.bactrian_pairs=true", "data.langs=[zh, th, sw]",
                                      "cit.sources=[bactrian, translation, alpaca]", "cit.p_src=0.5"])
    data = build_train_data(replace(cfg, seq_len=512))
    assert all("en" in (p["src_lang"], p["tgt_lang"]) for p in data.pairs)
    if objective == "clm":
        cit_data = build_train_data(replace(cfg, objective="cit", seq_len=512))
        assert data.cit == [] and len(data.clm_texts) == 2 * len(data.pairs) + len(cit_data.cit)
        assert len(mem.clm) > 0 and mem.summary.split(", ")[1] == "0 CIT samples"
        samples = cit_data.cit
    else:
        samples = data.cit
    bactrian = [s for s in samples if "context_side" not in s and not s["context"].startswith("Say ")]
    assert {s["src_lang"] for s in bactrian} == {"en", "zh", "th", "sw"}
    assert all(s["src_lang"] == s["tgt_lang"] for s in samples) == (objective == "bit")
    cross = [(s["src_lang"], s["tgt_lang"]) for s in bactrian if s["src_lang"] != s["tgt_lang"]]
    assert all("en" in d for d in cross) and bool(cross) == (objective != "bit")  # bridge: English on one side


def test_streamed_translation_samples_are_translation_samples():
    from afp_lib import cit
    pairs = [{"src": f"s{k}", "tgt": f"t{k}", "src_lang": "en", "tgt_lang": "zh"} for k in range(50)]
    for p_src in (0.0, 0.3):
        want = cit.translation_samples(pairs, p_src, "answer", seed=4)
        assert list(cit.iter_translation_samples(iter(pairs), p_src, "answer", seed=4)) == want
        assert {s["context_side"] for s in want} == {"src", "tgt"}


def _compare_arrow_and_memory(changes, toy_tokenizer, tmp_path, monkeypatch):
    """prepare() with train.tokenized memory and arrow: the same rows and the same batches."""
    from afp_lib.config import from_dict, to_dict
    from afp_lib.trainer.config import TrainConfig
    from afp_lib.trainer.loop import prepare
    monkeypatch.setenv("AFP_TOKENIZED", str(tmp_path))
    raw = to_dict(_smoke())
    for k, v in changes.items():
        raw[k] = {**raw[k], **v} if isinstance(v, dict) else v
    raw["grad_accum"] = 2
    mem_cfg = from_dict(TrainConfig, {**raw, "tokenized": "memory"})
    arrow_cfg = from_dict(TrainConfig, {**raw, "tokenized": "arrow"})
    builds, real = [], tokenized.build
    monkeypatch.setattr(tokenized, "build", lambda *a, **k: builds.append(1) or real(*a, **k))
    mem, disk = prepare(mem_cfg, toy_tokenizer), prepare(arrow_cfg, toy_tokenizer)
    for name in ("pairs", "cit", "clm", "dev"):
        want = [(list(a), list(b)) for a, b in getattr(mem, name)]
        assert [(list(a), list(b)) for a, b in getattr(disk, name)] == want, name
    assert disk.share == mem.share and disk.summary == mem.summary
    if changes.get("cit", {}).get("pack"):
        assert 0 < len(disk.cit) < len(disk.pairs)             # rows really were packed
    if changes == {"seq_len": 512}:                            # rows not cut: sentences are prefixes of CIT rows
        assert mem.share is not None                           # the shared-step batches are compared too
    steps = 6                                                  # past one epoch of the smoke pairs: reshuffled order
    assert _batches(arrow_cfg, disk, steps) == _batches(mem_cfg, mem, steps)
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert (folder / tokenized.DONE).is_file() and not list(tmp_path.glob(".tmp-*"))
    assert builds == [1]                                       # built once, from the config's rows
    return mem


def test_arrow_cache_is_keyed_by_tokenizer_data_and_config(toy_tokenizer, mirror, tmp_path, monkeypatch):
    from afp_lib.tokenizer import train_bpe
    from afp_lib.trainer.data import TrainData
    monkeypatch.setenv("AFP_TOKENIZED", str(tmp_path))
    cfg = _smoke(tokenized="arrow")
    calls = []
    real = tokenized.build
    monkeypatch.setattr(tokenized, "build", lambda *a, **k: calls.append(1) or real(*a, **k))
    key = tokenized.cache_key(cfg, toy_tokenizer)
    tokenized.prepare(cfg, toy_tokenizer)
    tokenized.prepare(cfg, toy_tokenizer)                     # the same key: read, not rebuilt
    assert calls == [1]
    other_tok = train_bpe(["something else entirely"] * 20, vocab_size=300, min_frequency=1)
    given = TrainData(pairs=[{"src": p["src"], "tgt": p["tgt"], "src_lang": "en", "tgt_lang": "zh"} for p in PAIRS])
    keys = {key, tokenized.cache_key(_smoke(tokenized="arrow", seq_len=32), toy_tokenizer),
            tokenized.cache_key(cfg, other_tok), tokenized.cache_key(cfg, toy_tokenizer, given)}
    assert len(keys) == 4
    assert tokenized.cache_key(cfg, toy_tokenizer) == key     # deterministic (after the tokenizer was used)


def test_pack_plan_packs_as_pack_and_clm_stream_cuts_as_clm_blocks(toy_tokenizer):
    import random
    rng = random.Random(0)
    examples = [([rng.randrange(9)] * n, [-100] * (n // 2) + [1] * (n - n // 2)) for n in
                (rng.randint(2, 40) for _ in range(300))] + [([5] * 70, [5] * 70)]   # one longer than a row
    rows = collate.pack(examples, 64)
    plan = collate.pack_plan([len(e[0]) for e in examples], 64)
    assert sorted(k for m in plan for k in m) == list(range(len(examples)))       # each example exactly once
    assert rows == [collate.join([examples[k] for k in m]) for m in plan] == _pack_on_rows(examples, 64)
    assert all(len(r[0]) <= 64 for r in rows if len(r[0]) != 70) and len(rows) < 0.6 * len(examples)
    texts = [t for p in PAIRS for t in (p["src"], p["tgt"])]
    for seq_len in (7, 16):
        blocks = collate.clm_blocks(toy_tokenizer, texts, seq_len)
        assert [(b, b) for b in collate.iter_clm_blocks(toy_tokenizer, iter(texts), seq_len, chunk=4)] == blocks


def _pack_on_rows(examples, seq_len):
    """The packing as it was written before `pack_plan` (on the rows themselves): the reference order."""
    rows, by_free = [], {}
    for ids, labels in sorted(examples, key=lambda e: -len(e[0])):
        n = len(ids)
        free = next((f for f in range(n, seq_len + 1) if by_free.get(f)), None) if n <= seq_len else None
        if free is None:
            rows.append((list(ids), list(labels)))
            i = len(rows) - 1
        else:
            i = by_free[free].pop()
            rows[i] = (rows[i][0] + list(ids), rows[i][1] + list(labels))
        if seq_len - len(rows[i][0]) > 0:
            by_free.setdefault(seq_len - len(rows[i][0]), []).append(i)
    return rows


# --- two ranks (torchrun, gloo): rank 0 builds once, rank 1 waits and reads the same rows ---

RANK_SCRIPT = """
import json, os, sys, time
from pathlib import Path
import torch.distributed as dist
from transformers import PreTrainedTokenizerFast
from afp_lib.trainer import tokenized
from afp_lib.trainer.config import load_train_config, replace, CITConfig
from afp_lib.trainer.loop import Stream, micro_batches, micro_index, prepare

tok_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
real = tokenized.build

def build(*a, **k):
    with open(out / "builds.txt", "a") as f:
        f.write(f"rank {rank}\\n")
    time.sleep(1.5)  # rank 1 is waiting by now: it must not read anything before done.json
    return real(*a, **k)

tokenized.build = build
cfg = load_train_config("smoke")
cfg = replace(cfg, tokenized="arrow", grad_accum=2, seq_len=512, cit=replace(cfg.cit, pack=True, batch_size=2))
dist.barrier()
t_start = time.time()
prep = prepare(cfg, PreTrainedTokenizerFast.from_pretrained(tok_dir))
t_ready = time.time()
pairs, lm = Stream(len(prep.pairs), cfg.seed), Stream(len(prep.cit), cfg.seed + 1)
steps = []
for step in range(3):
    for micro in range(cfg.grad_accum):
        m = micro_index(step, micro, cfg.grad_accum, rank, world)
        p_idx, l_idx = pairs.take(m * cfg.batch_size, cfg.batch_size), lm.take(m * 2, 2)
        batches = micro_batches(cfg, prep, p_idx, l_idx, 0)
        steps.append({"step": step, "pairs": p_idx, "lm": l_idx,
                      "batches": [{k: v.tolist() for k, v in b.items()} for b in batches]})
rows = {name: [[list(a), list(b)] for a, b in getattr(prep, name)] for name in ("pairs", "cit", "dev")}
(out / f"rank{rank}.json").write_text(json.dumps({"t_start": t_start, "t_ready": t_ready, "rows": rows,
                                                 "steps": steps}))
dist.barrier()
dist.destroy_process_group()
"""


@pytest.mark.multiprocess
@pytest.mark.slow
def test_two_ranks_build_once_read_the_same_rows_and_take_disjoint_batches(toy_tokenizer, mirror, tmp_path,
                                                                            monkeypatch):
    import json
    import os
    import subprocess
    import sys

    from afp_lib.trainer.loop import micro_index, prepare
    from conftest import ROOT
    toy_tokenizer.save_pretrained(tmp_path / "tok")
    script = tmp_path / "ranks.py"
    script.write_text(RANK_SCRIPT)
    env = {**os.environ, "AFP_TOKENIZED": str(tmp_path / "cache"), "AFP_DATA_MIRROR": str(mirror),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(tmp_path / "tok"), str(tmp_path)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "builds.txt").read_text() == "rank 0\n"               # built once, by rank 0
    (folder,) = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    done_at = (folder / tokenized.DONE).stat().st_mtime
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r1["t_start"] < done_at <= r1["t_ready"]                           # rank 1 waited for the build
    assert r0["rows"] == r1["rows"] and len(r0["rows"]["pairs"]) >= 8         # the same rows on both ranks
    n_pairs, n_lm = len(r0["rows"]["pairs"]), len(r0["rows"]["cit"])
    for j, (a, b) in enumerate(zip(r0["steps"], r1["steps"])):                # disjoint data per rank
        step, micro = divmod(j, 2)
        assert a["step"] == b["step"] == step
        for key, bs, n in (("pairs", 4, n_pairs), ("lm", 2, n_lm)):
            first, last = micro_index(step, micro, 2, 0, 2) * bs, (micro_index(step, micro, 2, 1, 2) + 1) * bs - 1
            if first // n == last // n:                                        # both ranks' rows in one epoch
                assert not set(a[key]) & set(b[key]), (j, key)
    assert not set(r0["steps"][0]["lm"]) & set(r1["steps"][0]["lm"])          # (checked at least once)
    # the batches are those of the in-memory path at the same ranks (lists in this process)
    monkeypatch.setenv("AFP_TOKENIZED", str(tmp_path / "cache"))
    from afp_lib.trainer.config import replace
    cfg = _smoke(grad_accum=2, seq_len=512)
    cfg = replace(cfg, cit=replace(cfg.cit, pack=True, batch_size=2))
    mem = prepare(cfg, toy_tokenizer)
    assert len(mem.cit) < len(mem.pairs)                                      # rows really were packed
    for rank, got in ((0, r0), (1, r1)):
        assert [s["batches"] for s in got["steps"]] == _batches(cfg, mem, 3, rank, world=2)
