"""`python -m afp_lib repro-check`: fresh metrics against committed ones, within the stated tolerances."""
import json

import pytest

from afp_lib import reprocheck

COMMITTED = {"icl_accuracy": {"xglm-mini 0-shot": 45.625}, "probes": {"AFP": {"ppl en": 635.0, "dev align": 0.122}},
             "best_layer": {"xglm": 2}}


def write(folder, name, obj):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(obj), encoding="utf-8")


def run(tmp_path, fresh_obj, capsys):
    write(tmp_path / "committed", "bilingual.json", COMMITTED)
    write(tmp_path / "fresh", "bilingual.json", fresh_obj)
    code = reprocheck.main(["--fresh", str(tmp_path / "fresh"), "--committed", str(tmp_path / "committed")])
    return code, capsys.readouterr().out


def test_within_tolerance_passes(tmp_path, capsys):
    fresh = {"icl_accuracy": {"xglm-mini 0-shot": 45.0},                  # one ICL item flipped: 0.625 points
             "probes": {"AFP": {"ppl en": 640.0, "dev align": 0.13}},    # 0.8% perplexity, 0.008 alignment
             "best_layer": {"xglm": 2}, "new_metric": 1.0}
    code, out = run(tmp_path, fresh, capsys)
    assert code == 0 and "4 of 4 committed numbers reproduced" in out
    assert "note bilingual.json: new_metric: new key (not committed)" in out


@pytest.mark.parametrize("key, value, line", [
    (("icl_accuracy", "xglm-mini 0-shot"), 47.0, "FAIL bilingual.json: icl_accuracy.xglm-mini 0-shot: committed 45.625"),
    (("probes", "AFP", "ppl en"), 660.0, "FAIL bilingual.json: probes.AFP.ppl en: committed 635.0, fresh 660.0"),
    (("probes", "AFP", "dev align"), 0.15, "FAIL bilingual.json: probes.AFP.dev align"),
    (("best_layer", "xglm"), 1, "FAIL bilingual.json: best_layer.xglm: committed 2, fresh 1"),
])
def test_outside_tolerance_fails(tmp_path, capsys, key, value, line):
    fresh = json.loads(json.dumps(COMMITTED))
    obj = fresh
    for k in key[:-1]:
        obj = obj[k]
    obj[key[-1]] = value
    code, out = run(tmp_path, fresh, capsys)
    assert code == 1 and line in out and "1 failed" in out


def test_missing_key_or_file_fails(tmp_path, capsys):
    fresh = json.loads(json.dumps(COMMITTED))
    del fresh["probes"]["AFP"]["dev align"]
    code, out = run(tmp_path, fresh, capsys)
    assert code == 1 and "probes.AFP.dev align: committed 0.122, fresh None (missing from the fresh run)" in out
    write(tmp_path / "committed", "p_src.json", {"avg_accuracy": {"0.5": 43.75}})
    code = reprocheck.main(["--fresh", str(tmp_path / "fresh"), "--committed", str(tmp_path / "committed")])
    assert code == 1 and "p_src.json: *: committed 'file', fresh None" in capsys.readouterr().out


def test_tolerances_are_the_documented_ones():
    assert reprocheck.tolerance("icl_accuracy.xglm-mini 0-shot") == (1.0, 0.0)
    assert reprocheck.tolerance("probes.AFP.ppl en") == (0.0, 0.02)
    assert reprocheck.tolerance("xglm.ppl.zh") == (0.0, 0.02)
    assert reprocheck.tolerance("xglm.bits_per_byte.en") == (0.01, 0.0)
    assert reprocheck.tolerance("probes.AFP.dev uniform") == (0.02, 0.0)
    assert reprocheck.tolerance("xglm.retrieval_xx2en.Han") == (0.01, 0.0)
    assert reprocheck.tolerance("probes.AFP.align se") == (0.02, 0.0)
    # the headline accuracies and BLEU of the aligned models are percentages, not alignment (a cold run on
    # another CPU moved acc_aligned by 0.09 points and failed against 0.02)
    assert reprocheck.tolerance("acc_aligned") == reprocheck.tolerance("bleu_aligned") == (1.0, 0.0)

