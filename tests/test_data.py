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
    assert f"{path}:2" in str(e.value) and "'hypothesis'" in str(e.value)


def test_mistyped_field_is_reported(fake_mirror):
    write_jsonl(fake_mirror / "hub/facebook/xnli/en/validation.jsonl", [{**XNLI_ROW, "label": "entailment"}])
    with pytest.raises(DataError, match=r"validation.jsonl:1: field 'label' should be int, got str"):
        load_split("facebook/xnli", "en", "validation")


def test_bool_is_not_an_int(fake_mirror):
    write_jsonl(fake_mirror / "hub/facebook/xnli/en/validation.jsonl", [{**XNLI_ROW, "label": True}])
    with pytest.raises(DataError, match="'label'"):
        load_split("facebook/xnli", "en", "validation")


def test_malformed_json_line(fake_mirror):
    write_jsonl(fake_mirror / "hub/facebook/xnli/en/validation.jsonl", [XNLI_ROW, '{"premise": '])
    with pytest.raises(DataError, match=r"validation.jsonl:2: not valid JSON"):
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


def test_parallel_wrong_side_is_reported(fake_mirror):
    write_jsonl(fake_mirror / "parallel/toy/en-zh.jsonl", [{"translation": {"en": "a", "zh": "b"}},
                                                           {"translation": {"en": "a", "de": "b"}}])
    with pytest.raises(DataError, match=r"en-zh.jsonl:2 field 'translation': missing field 'zh'"):
        load_parallel("zh", source="toy")
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
    with pytest.raises(DataError, match=r"zh/train.jsonl:2: missing field 'sentence_quiz2'"):
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
