"""evaluate / translate_eval / CLI end to end on a tiny fake mirror: tidy records, resume, demonstrations
only from the demonstration split."""
import json

import pytest

import afp_lib.eval.icl as icl
from afp_lib.eval import evaluate, read_records, summarize, translate_eval
from afp_lib.eval.tasks import _RESOLVED, _rows

REQUIRED = {"model", "task", "language", "shots", "seed", "metric", "value", "n_items"}


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture()
def small_mirror(fake_mirror):
    _rows.cache_clear()
    _RESOLVED.clear()
    hub = fake_mirror / "hub"
    for config, lang_word in (("translation-zh", "The cat"), ("zh", "猫")):
        for split, tag, n in (("validation", "DEMO", 6), ("test", "TEST", 10)):
            _write(hub / "cambridgeltl/xcopa" / config / f"{split}.jsonl", [
                {"premise": f"{lang_word} {tag} {i} sat.", "choice1": "It was tired.", "choice2": "A dog runs.",
                 "question": ("cause", "effect")[i % 2], "label": i % 2, "idx": i, "changed": False} for i in range(n)])
    for config, text in (("eng", "The cat sat on the mat"), ("zho_simpl", "猫坐在垫子上")):
        for split in ("dev", "devtest"):
            _write(hub / "gsarti/flores_101" / config / f"{split}.jsonl", [
                {"id": i + 1, "URL": "u", "domain": "d", "topic": "t", "has_image": 0, "has_hyperlink": 0,
                 "sentence": f"{text} {split} {i}."} for i in range(5)])
    yield fake_mirror
    _rows.cache_clear()
    _RESOLVED.clear()


def test_records_resume_and_demonstrations(small_mirror, tiny_models, toy_tokenizer, tmp_path, monkeypatch):
    model, tok = tiny_models["xglm"], toy_tokenizer
    out = tmp_path / "res" / "eval.jsonl"
    prefixes = []
    real_build = icl.build_prefix
    monkeypatch.setattr(icl, "build_prefix", lambda t, texts: prefixes.append(list(texts)) or real_build(t, texts))
    recs = evaluate(model, tok, ["xcopa"], ["en", "zh"], shots=[0, 3], seeds=[0, 1], max_items=8, model_name="tiny",
                    out_file=out, progress=False)
    assert len(recs) == 2 * 2 * 2 * 3                      # langs x shots x seeds x metrics
    for r in recs:
        assert REQUIRED <= r.keys() and 0 <= r["value"] <= 100 and r["n_items"] == 8
    assert {r["metric"] for r in recs} == {"acc", "acc_norm", "acc_tok"}
    zero = {(r["language"], r["metric"], r["seed"]): r["value"] for r in recs if r["shots"] == 0}
    assert all(zero[(lang, m, 0)] == zero[(lang, m, 1)] for lang, m, _ in zero)   # 0-shot has no randomness
    demos = [t for p in prefixes for t in p]
    assert demos and all("DEMO" in t and "TEST" not in t for t in demos)   # validation only, never test
    assert any(p != q for p in prefixes for q in prefixes if p and q)      # each seed draws its own
    assert read_records(out) == recs

    # a finished grid is read back, not recomputed; a larger grid computes only what is missing
    monkeypatch.setattr(icl, "loglikelihood", lambda *a, **k: pytest.fail("recomputed a finished unit"))
    assert evaluate(model, tok, ["xcopa"], ["en", "zh"], shots=[0, 3], seeds=[0, 1], max_items=8, model_name="tiny",
                    out_file=out, progress=False) == recs
    calls = []
    monkeypatch.setattr(icl, "loglikelihood", lambda m, reqs, **k: calls.append(1) or [0.0] * len(reqs))
    more = evaluate(model, tok, ["xcopa"], ["en", "zh"], shots=[0, 3], seeds=[0, 1, 2], max_items=8, model_name="tiny",
                    out_file=out, progress=False)
    assert len(more) == len(recs) + 2 * 2 * 3 and len(calls) == 2   # only 3-shot seed 2 is scored (en, zh)
    table = summarize(more)
    assert set(table["n_seeds"]) == {3}


def test_cross_lingual_demonstrations_and_errors(small_mirror, tiny_models, toy_tokenizer, monkeypatch):
    prefixes = []
    real_build = icl.build_prefix
    monkeypatch.setattr(icl, "build_prefix", lambda t, texts: prefixes.append(list(texts)) or real_build(t, texts))
    recs = evaluate(tiny_models["llama"], toy_tokenizer, ["xcopa"], ["zh"], shots=[2], seeds=[0], demo_lang="en",
                    progress=False)
    assert recs[0]["demo_lang"] == "en" and all(t.startswith(("cause: The cat", "effect: The cat")) for t in prefixes[0])
    with pytest.raises(ValueError, match="use translate_eval"):
        evaluate(tiny_models["llama"], toy_tokenizer, ["flores"], ["en"], progress=False)
    with pytest.raises(ValueError, match="7-shot needs 7 demonstrations but the pool has only 6"):
        evaluate(tiny_models["llama"], toy_tokenizer, ["xcopa"], ["en"], shots=[7], progress=False)


def test_translate_eval_records(small_mirror, tiny_models, toy_tokenizer, tmp_path):
    out = tmp_path / "t.jsonl"
    recs = translate_eval(tiny_models["bloom"], toy_tokenizer, [("en", "zh"), "zh-en"], shots=[0, 2], seeds=[0],
                          max_items=3, model_name="tiny", out_file=out, max_new_tokens=4, progress=False)
    assert {(r["language"], r["shots"], r["metric"]) for r in recs} == {
        (p, k, m) for p in ("en-zh", "zh-en") for k in (0, 2) for m in ("bleu", "chrf")}
    assert all(REQUIRED <= r.keys() and r["n_items"] == 3 and r["task"] == "flores" for r in recs)
    assert {r["bleu_tokenize"] for r in recs if r["language"] == "en-zh"} == {"zh"}
    from afp_lib.analysis.intervals import corpus_bleu
    for r in recs:   # the BLEU record keeps per-sentence statistics that add up to its corpus score
        if r["metric"] == "bleu":
            assert len(r["bleu_stats"]) == 3 and corpus_bleu(r["bleu_stats"]) == pytest.approx(r["value"])
    with pytest.raises(KeyError, match="unknown language 'xx'"):
        translate_eval(tiny_models["bloom"], toy_tokenizer, [("en", "xx")], progress=False)


def test_cli(small_mirror, tiny_models, toy_tokenizer, tmp_path, capsys):
    from afp_lib.eval.cli import main

    folder = tmp_path / "tiny-xglm"
    tiny_models["xglm"].save_pretrained(folder)
    toy_tokenizer.save_pretrained(folder)
    out = tmp_path / "cli.jsonl"
    assert main(["--model", str(folder), "--tasks", "xcopa", "--langs", "en,zh", "--shots", "0,1", "--seeds", "0",
                 "--max-items", "4", "--out", str(out), "--profile", "smoke"]) == 0
    recs = read_records(out)
    assert {(r["language"], r["shots"]) for r in recs} == {("en", 0), ("en", 1), ("zh", 0), ("zh", 1)}
    assert recs[0]["model"] == "tiny-xglm" and "acc" in capsys.readouterr().out


def test_semantic_demonstrations_are_nearest_pool_items(small_mirror, tiny_models, toy_tokenizer, monkeypatch):
    from afp_lib.eval.demos import semantic_demos
    from afp_lib.eval.tasks import TASKS

    task, model = TASKS["xcopa"], tiny_models["xglm"]
    pool = tuple({"premise": p} for p in ("一只狗在公园里跑。", "The cat sat on the mat.", "Mbwa anakimbia bustanini."))
    test = ({"premise": "The cat sat on the mat."}, {"premise": "一只狗在公园里跑。"})
    picked = semantic_demos(model, toy_tokenizer, task, test, pool, k=2)
    assert [row[-1]["premise"] for row in picked] == ["The cat sat on the mat.", "一只狗在公园里跑。"]  # nearest last
    prefixes = []
    real_build = icl.build_prefix
    monkeypatch.setattr(icl, "build_prefix", lambda t, texts: prefixes.append(list(texts)) or real_build(t, texts))
    recs = evaluate(model, toy_tokenizer, ["xcopa"], ["en"], shots=[2], seeds=[0, 1], demos="semantic", max_items=4,
                    progress=False)
    assert len(prefixes) == 4 and all("DEMO" in t for p in prefixes for t in p)   # one prefix per item, scored once
    assert {r["seed"] for r in recs} == {0, 1} and recs[0]["demos"] == "semantic"


def test_cli_default_output_is_keyed_by_the_model_not_its_folder_name(small_mirror, tiny_models, toy_tokenizer,
                                                                     tmp_path, monkeypatch):
    """Every trained model lives in a folder named `final`: without --out, two of them get two files (the
    second does not read the first one's scores back), and one model asked twice gets its own file again."""
    import torch
    from afp_lib.eval import cli

    monkeypatch.setattr(cli, "results_dir", lambda section="": tmp_path / "results" / section)
    model = tiny_models["xglm"]
    folders = [tmp_path / run / "final" for run in ("run-a", "run-b")]
    model.save_pretrained(folders[0])
    with torch.no_grad():
        bumped = {k: v + 0.5 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    type(model)(model.config).save_pretrained(folders[1], state_dict=bumped)
    args = ["--tasks", "xcopa", "--langs", "en", "--shots", "0", "--seeds", "0", "--max-items", "4", "--profile", "smoke"]
    for folder in folders:
        toy_tokenizer.save_pretrained(folder)
        assert cli.main(["--model", str(folder), *args]) == 0
    files = sorted((tmp_path / "results" / "eval").glob("*.jsonl"))
    assert len(files) == 2 and all(f.name.startswith("final-") for f in files)
    assert [len(read_records(f)) for f in files] == [3, 3]
    assert read_records(files[0]) != read_records(files[1])  # each file holds its own model's scores
    monkeypatch.setattr(icl, "loglikelihood", lambda *a, **k: pytest.fail("recomputed a finished model"))
    assert cli.main(["--model", str(folders[0]), *args]) == 0   # the same model: its own file is read back
    assert sorted((tmp_path / "results" / "eval").glob("*.jsonl")) == files
