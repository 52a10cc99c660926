import json

import pytest

from afp_lib.data import DataError, DatasetNotFound, load_mono, load_parallel, load_split, parallel_sources


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n",
                    encoding="utf-8")
    return path


XNLI_ROW = {"premise": "A man sleeps.", "hypothesis": "A person rests.", "label": 0}


def test_reads_mirror_split_with_hub_fields(fake_mirror):
    write_jsonl(fake_mirror / "hub/facebook/xnli/en/validation.jsonl", [XNLI_ROW, {**XNLI_ROW, "label": 2}])
    ds = load_split("facebook/xnli", "en", "validation")
    assert ds.column_names == ["premise", "hypothesis", "label"]
    assert ds["label"] == [0, 2]


def test_missing_field_names_file_line_and_field(fake_mirror):
    path = write_jsonl(fake_mirror / "hub/facebook/xnli/en/validation.jsonl",
                       [XNLI_ROW, {"premise": "x", "label": 1}])
    with pytest.raises(DataError) as e:
        load_split("facebook/xnli", "en", "validation")
    assert str(e.value) == f"{path}:2: hypothesis: missing"


def test_mistyped_field_is_reported(fake_mirror):
    write_jsonl(fake_mirror / "hub/facebook/xnli/en/validation.jsonl", [{**XNLI_ROW, "label": "entailment"}])
    with pytest.raises(DataError, match=r"validation.jsonl:1: label: should be int, got str"):
        load_split("facebook/xnli", "en", "validation")


def test_bool_is_not_an_int(fake_mirror):
    write_jsonl(fake_mirror / "hub/facebook/xnli/en/validation.jsonl", [{**XNLI_ROW, "label": True}])
    with pytest.raises(DataError, match=": label: should be int, got bool"):
        load_split("facebook/xnli", "en", "validation")


def test_malformed_json_line(fake_mirror):
    write_jsonl(fake_mirror / "hub/facebook/xnli/en/validation.jsonl", [XNLI_ROW, '{"premise": '])
    with pytest.raises(DataError, match=r"validation.jsonl:2: json: not valid JSON"):
        load_split("facebook/xnli", "en", "validation")


@pytest.mark.parametrize("hub_id,config,split,expect", [
    ("facebook/nope", "en", "test", "dataset 'facebook/nope' is not in the mirror"),
    ("facebook/xnli", "xx", "test", "config 'xx' of 'facebook/xnli'"),
    ("facebook/xnli", "en", "train", "split 'train' of facebook/xnli/en"),
])
def test_missing_dataset_config_split_say_what_and_where(fake_mirror, hub_id, config, split, expect):
    write_jsonl(fake_mirror / "hub/facebook/xnli/en/validation.jsonl", [XNLI_ROW])
    with pytest.raises(DatasetNotFound) as e:
        load_split(hub_id, config, split)
    assert expect in str(e.value)
    assert str(fake_mirror) in str(e.value)


def test_real_mirror_schemas(mirror):
    """Every benchmark of the paper loads from the shared mirror with the hub's fields."""
    assert len(load_split("facebook/xnli", "zh", "validation")) == 2490
    assert load_split("cambridgeltl/xcopa", "zh", "test").column_names[:3] == ["premise", "choice1", "choice2"]
    assert len(load_split("gsarti/flores_101", "eng", "devtest")) == 1012
    assert load_split("Muennighoff/xwinograd", "en", "test")[0]["answer"] in ("1", "2")
    assert len(load_split("juletxara/xstory_cloze", "en", "eval")) == 1511
    assert len(load_split("google-research-datasets/paws-x", "zh", "test")) == 2000


def test_parallel_and_mono_from_mirror(mirror):
    pairs = load_parallel("zh", source="tatoeba")
    assert len(pairs) == 1000 and set(pairs[0]["translation"]) == {"en", "zh"}
    assert len(load_mono("sw", source="masakhanews")) > 1000


def test_parallel_wrong_side_is_dropped_and_reported(fake_mirror, caplog):
    path = write_jsonl(fake_mirror / "parallel/toy/en-zh.jsonl", [{"translation": {"en": "a", "zh": "b"}},
                                                                  {"translation": {"en": "a", "de": "b"}}])
    with caplog.at_level("WARNING"):
        assert [r["translation"] for r in load_parallel("zh", source="toy")] == [{"en": "a", "zh": "b"}]
    assert f"{path}:2: translation.de: unexpected language key" in caplog.text
    assert f"{path}:2: translation.zh: missing" in caplog.text and "dropped 1 of 2 rows" in caplog.text
    with pytest.raises(DatasetNotFound, match="no en-th pairs in parallel/toy"):
        load_parallel("th", source="toy")


def story(story_id, lang):
    fields = ["input_sentence_1", "input_sentence_2", "input_sentence_3", "input_sentence_4",
              "sentence_quiz1", "sentence_quiz2"]
    return {"story_id": story_id, **{f: f"{lang} {story_id} {f}" for f in fields}, "answer_right_ending": 1}


def test_story_source_pairs_sentences_of_the_same_story(fake_mirror):
    """XStoryCloze train stories become sentence pairs, matched on story_id (not on line order)."""
    root = fake_mirror / "hub/juletxara/xstory_cloze"
    write_jsonl(root / "en/train.jsonl", [story("a", "en"), story("b", "en"), story("c", "en")])
    write_jsonl(root / "zh/train.jsonl", [story("b", "zh"), story("a", "zh")])  # no story c in zh
    pairs = [p["translation"] for p in load_parallel("zh", source="xstorycloze_train")]
    assert len(pairs) == 12
    assert pairs[0] == {"en": "en a input_sentence_1", "zh": "zh a input_sentence_1"}
    assert pairs[11] == {"en": "en b sentence_quiz2", "zh": "zh b sentence_quiz2"}
    with pytest.raises(DatasetNotFound, match="config 'tr' of 'juletxara/xstory_cloze'"):
        load_parallel("tr", source="xstorycloze_train")  # the trainer skips a language a source lacks


def test_story_source_errors_name_file_line_and_field(fake_mirror):
    root = fake_mirror / "hub/juletxara/xstory_cloze"
    write_jsonl(root / "en/train.jsonl", [story("a", "en")])
    bad = story("b", "zh")
    del bad["sentence_quiz2"]
    write_jsonl(root / "zh/train.jsonl", [story("a", "zh"), bad])
    with pytest.raises(DataError, match=r"zh/train.jsonl:2: sentence_quiz2: missing"):
        load_parallel("zh", source="xstorycloze_train")
    write_jsonl(root / "zh/train.jsonl", [story("z", "zh")])
    with pytest.raises(DatasetNotFound, match="no story_id shared by en and zh"):
        load_parallel("zh", source="xstorycloze_train")


def test_story_source_from_the_real_mirror(mirror):
    assert "xstorycloze_train" in parallel_sources()
    pairs = load_parallel("zh", source="xstorycloze_train")
    assert len(pairs) == 6 * 360
    assert pairs[0]["translation"]["en"].startswith("Rick grew up")


def test_mirror_variable_pointing_nowhere(monkeypatch, tmp_path):
    monkeypatch.setenv("AFP_DATA_MIRROR", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="AFP_DATA_MIRROR"):
        load_split("facebook/xnli", "en", "validation")


# --- value checks (afp_lib.data.validate): the loaders drop what a task cannot use, `data check` lists it ---

def _run_check(capsys, *argv):
    from afp_lib.data.cli import main
    code = main(["check", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


@pytest.mark.parametrize("hub_id,config,good,bad,problem", [
    ("facebook/xnli", "en", XNLI_ROW, {**XNLI_ROW, "label": 3}, "label: 3 is not one of 0, 1, 2, -1"),
    ("facebook/xnli", "en", XNLI_ROW, {**XNLI_ROW, "premise": "  "}, "premise: empty"),
    ("cambridgeltl/xcopa", "zh",
     {"premise": "p", "choice1": "a", "choice2": "b", "question": "cause", "label": 0, "idx": 0, "changed": False},
     {"premise": "p", "choice1": "a", "choice2": "b", "question": "reason", "label": 0, "idx": 1, "changed": False},
     "question: 'reason' is not one of 'cause', 'effect'"),
    ("google-research-datasets/paws-x", "en", {"id": 1, "sentence1": "a", "sentence2": "b", "label": 1},
     {"id": 2, "sentence1": "a", "sentence2": "b", "label": 2}, "label: 2 is not one of 0, 1"),
    ("Muennighoff/xwinograd", "en", {"sentence": "The _ sat.", "option1": "cat", "option2": "dog", "answer": "1"},
     {"sentence": "The cat sat.", "option1": "cat", "option2": "dog", "answer": "1"}, "sentence: has no '_' blank"),
    ("facebook/xnli", "en", XNLI_ROW, {**XNLI_ROW, "hypothesis": "x" * 20_001},
     "hypothesis: 20001 characters, more than the 20000 allowed"),
])
def test_loader_drops_unusable_rows_and_check_lists_them(fake_mirror, caplog, capsys, hub_id, config, good, bad,
                                                         problem):
    path = write_jsonl(fake_mirror / f"hub/{hub_id}/{config}/test.jsonl", [good, bad, good])
    with caplog.at_level("WARNING"):
        ds = load_split(hub_id, config, "test")
    assert len(ds) == 2 and ds[0] == good                     # the bad row is never scored
    assert f"{path}:2: {problem}" in caplog.text and "dropped 1 of 3 rows" in caplog.text
    code, out, _ = _run_check(capsys, path, "--as", f"{hub_id}/{config}/test")
    assert code == 1 and len(out) == 1 and out[0].startswith(f"{path}:2: {problem}")


def test_xnli_label_3_is_not_scored(fake_mirror):
    """The bug of issue 15: `label: 3` gave 'acc 0.0'; now the row never reaches the scorer."""
    from afp_lib.eval.tasks import TASKS, _resolve_uncached
    rows = [{**XNLI_ROW, "premise": f"Premise {i}.", "label": i % 3} for i in range(250)] + [{**XNLI_ROW, "label": 3}]
    write_jsonl(fake_mirror / "hub/facebook/xnli/en/validation.jsonl", rows)
    write_jsonl(fake_mirror / "hub/facebook/xnli/en/test.jsonl", [{**XNLI_ROW, "label": -1}])
    _, test, _, pool = _resolve_uncached(TASKS["xnli"], "en")
    assert len(test) + len(pool) == 250 and all(r["label"] in (0, 1, 2) for r in test + pool)


def test_every_row_unusable_is_an_error(fake_mirror, capsys):
    path = write_jsonl(fake_mirror / "hub/facebook/xnli/en/validation.jsonl", [{**XNLI_ROW, "label": 7}])
    with pytest.raises(DataError, match="every one of its 1 rows is unusable"):
        load_split("facebook/xnli", "en", "validation")
    code, out, err = _run_check(capsys, path, "--as", "facebook/xnli/en/validation")
    assert code == 2 and "NOT USABLE" in err


def test_data_check_reports_every_problem_without_stopping(tmp_path, capsys):
    path = write_jsonl(tmp_path / "x.jsonl", [XNLI_ROW, '{"premise": ', {"premise": "a", "label": 0},
                                              {**XNLI_ROW, "label": 5}])
    code, out, err = _run_check(capsys, path, "--as", "facebook/xnli/en/validation")
    assert code == 2 and "NOT USABLE" in err
    assert out == [f"{path}:2: json: not valid JSON (Expecting value at column 13)",
                   f"{path}:3: hypothesis: missing", f"{path}:4: label: 5 is not one of 0, 1, 2, -1"]


def test_data_check_parallel_and_clean_files(tmp_path, capsys):
    path = write_jsonl(tmp_path / "en-zh.jsonl", [{"translation": {"en": "Hello.", "zh": "你好。"}},
                                                  {"translation": {"en": "Cat.", "zh": " "}},
                                                  {"translation": {"en": "Dog.", "zh": "狗。", "th": "หมา"}}])
    code, out, _ = _run_check(capsys, path, "--parallel", "en-zh")
    assert code == 1 and out == [f"{path}:2: translation.zh: empty",
                                 f"{path}:3: translation.th: unexpected language key (this file holds en and zh)"]
    clean = write_jsonl(tmp_path / "clean.jsonl", [{"translation": {"en": "Hello.", "zh": "你好。"}}])
    assert _run_check(capsys, clean, "--parallel", "en-zh")[0] == 0
    with pytest.raises(SystemExit):
        _run_check(capsys, clean, "--parallel", "enzh")


def test_python_m_afp_lib_data_check(mirror):
    """The command line end to end on a real mirror file: exit 0 and an OK line."""
    import subprocess
    import sys
    path = mirror / "hub/cambridgeltl/xcopa/zh/test.jsonl"
    done = subprocess.run([sys.executable, "-m", "afp_lib", "data", "check", str(path), "--as",
                           "cambridgeltl/xcopa/zh/test"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "" and "OK, 500 rows usable" in done.stderr


def test_parquet_store_rows_are_checked_too(fake_mirror, caplog):
    """A `data fetch` store holds Parquet: the same rules, rows named by position."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    path = fake_mirror / "hub/facebook/xnli/en/validation.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([XNLI_ROW, {**XNLI_ROW, "label": 3}, XNLI_ROW]), path)
    with caplog.at_level("WARNING"):
        ds = load_split("facebook/xnli", "en", "validation")
    assert ds["label"] == [0, 0] and f"{path} row 1: label: 3 is not one of 0, 1, 2, -1" in caplog.text
