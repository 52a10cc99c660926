"""Dev pairs are deduplicated against the training pairs on both sides (normalised text), in `split_dev` and
in `config_pairs`' reading of one language at a time alike, and the training pairs stay those of the English-side rule (cached runs stay valid)."""
from types import SimpleNamespace

from afp_lib import cit as cit_lib
from afp_lib.trainer import data as D

BY_LANG = {   # n_dev=6 over two languages: the first 3 rows of each are the dev candidates
    "zh": [("Row break.", "换行"),            # dev: its zh side is a training zh side (spacing aside)
           ("Open the file", "打开文件"),      # dev: its en side is a training en side up to case and punctuation
           ("A new sentence", "一个新句子"),   # dev: kept
           ("Close", "关闭"),                  # train
           ("Line Break", "换行 "),            # train: another English sentence, the same translation
           ("open the file!", "打开该文件"),   # train
           ("Close", "关上")],                 # train
    "th": [("Save as", "บันทึกเป็น"),          # dev: its en side is a training en side ("save   as")
           ("Quit", "ออก"),                    # dev: kept
           ("Save as", "บันทึกเป็น ไฟล์"),      # dev: as the first
           ("save   as", "บันทึก")],          # train: its en side differs from the dev ones in spacing and case
}


def test_split_dev_drops_dev_pairs_sharing_either_side():
    by_lang = {"zh": BY_LANG["zh"], "th": BY_LANG["th"]}
    train, dev = D.split_dev(by_lang, n_dev=6)   # 3 dev candidates per language
    assert dev["zh"] == [("A new sentence", "一个新句子")]
    assert dev["th"] == [("Quit", "ออก")]        # both "Save as" are a training en side once normalised
    # training pairs: the English-side rule alone, as before the dev dedup
    assert train["zh"] == BY_LANG["zh"][3:]
    assert train["th"] == [("save   as", "บันทึก")]


def test_side_key_normalises_spacing_case_punctuation_and_width():
    assert D.side_key("Row  break.") == D.side_key("row break") == D.side_key("ＲＯＷ ＢＲＥＡＫ！")
    assert D.side_key("Row break") != D.side_key("Row breaks")


def test_config_pairs_read_one_language_at_a_time_equal_split_dev_and_bridge_pairs(monkeypatch):
    monkeypatch.setattr(D, "lang_pivot_pairs", lambda cfg, lang: list(BY_LANG[lang]))
    cfg = SimpleNamespace(data=SimpleNamespace(policy="bridge", langs=["zh", "th"], dev_pairs=6, pivot="en",
                                               bactrian_pairs=False))
    dev, train = D.config_pairs(cfg)
    train_by_lang, dev_by_lang = D.split_dev(dict(BY_LANG), 6)
    assert dev == cit_lib.bridge_pairs(dev_by_lang, "en")
    assert list(train) == cit_lib.bridge_pairs(train_by_lang, "en")
