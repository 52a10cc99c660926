"""`data fetch` against a fake hub: huggingface_hub's cache layout under a tmp HF_HUB_CACHE with
HF_HUB_OFFLINE=1, holding tiny Parquet files in each repository's real layout (recipes.yaml), converted by
the same code that runs online. Then the store is read through the same reader as the mirror."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from afp_lib.data import fetch, hub, store
from afp_lib.data.corpora import load_parallel
from afp_lib.data.hub import DataError, DatasetNotFound, HubUnavailable, load_split

RECIPES = fetch.load_recipes()
BACTRIAN_ROWS = {"en": ["Give three tips.", "Name a colour."], "zh": ["给出三个建议。", "说出一种颜色。"],
                 "de": ["Gib drei Tipps.", "Nenne eine Farbe."]}


def _repo(cache: Path, repo_id: str, revision: str, files: dict[str, pa.Table], commit: str | None = None) -> None:
    """One dataset repository in huggingface_hub's cache: refs/<revision> -> commit, snapshots/<commit>/files."""
    commit = commit or (revision if len(revision) == 40 else format(abs(hash(repo_id)), "x").ljust(40, "0")[:40])
    base = cache / ("datasets--" + repo_id.replace("/", "--"))
    if revision != commit:
        ref = base / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
    for rel, table in files.items():
        path = base / "snapshots" / commit / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)


def _bactrian(lang: str, extra: bool = False) -> pa.Table:
    rows = BACTRIAN_ROWS[lang]
    cols = {"instruction": rows, "input": ["", ""], "id": ["alpaca-0", "alpaca-1"], "output": [r + " ok" for r in rows]}
    if extra:
        cols["score"] = [1, 2]
    return pa.table(cols)


def _opus(lang: str, n: int) -> pa.Table:
    return pa.table({"translation": [{"en": f"sentence {i}", lang: f"{lang} {i}"} for i in range(n)]})


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """A fake hub cache with OPUS-100 (native Parquet), Bactrian-X (both converter layouts) and XWinograd."""
    cache = tmp_path / "hf-cache"
    r = RECIPES
    _repo(cache, r["opus100"]["id"], r["opus100"]["revision"], {
        "en-zh/train-00000-of-00001.parquet": _opus("zh", 3),
        "de-en/train-00000-of-00002.parquet": _opus("de", 2),   # two shards, concatenated in order
        "de-en/train-00001-of-00002.parquet": _opus("de", 1),
        "de-en/test-00000-of-00001.parquet": _opus("de", 5)})
    _repo(cache, r["bactrian"]["id"], r["bactrian"]["revision"], {
        "en/train/0000.parquet": _bactrian("en"), "zh/train/0000.parquet": _bactrian("zh"),
        "de/bactrian-x-train.parquet": _bactrian("de")})            # the converter's older layout
    _repo(cache, r["xwinograd"]["id"], r["xwinograd"]["revision"], {   # refs/convert/parquet -> a commit
        "en/test/0000.parquet": pa.table({"sentence": ["The cat _ sat."], "option1": ["a"], "option2": ["b"],
                                           "answer": ["1"]})})
    _repo(cache, r["tatoeba"]["id"], r["tatoeba"]["revision"], {
        "cmn-eng/test/0000.parquet": pa.table({"sentence1": ["我们该睡觉了。", "你好。", ""],
                                               "sentence2": ["We should go to sleep.", "Hello.", "Empty."]}),
        "tha-eng/test/0000.parquet": pa.table({"sentence1": ["Hello."], "sentence2": ["สวัสดี"]})})  # swapped
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    recipes = json.loads(json.dumps(RECIPES))
    recipes["xwinograd"]["configs"] = ["en"]
    return recipes


def _items(recipes, langs=("zh", "de"), names=("opus100", "bactrian", "xwinograd")):
    return fetch.plan({n: list(langs) for n in names}, "en", recipes)


def test_fetch_builds_a_store_read_by_the_mirror_reader(fake_hub, tmp_path, monkeypatch):
    out = tmp_path / "store"
    manifest = fetch.fetch(_items(fake_hub), out)
    files = manifest["files"]
    assert sorted(files) == ["hub/Helsinki-NLP/opus-100/de-en/train.parquet",
                             "hub/Helsinki-NLP/opus-100/en-zh/train.parquet",
                             "hub/MBZUAI/Bactrian-X/de/train.parquet", "hub/MBZUAI/Bactrian-X/en/train.parquet",
                             "hub/MBZUAI/Bactrian-X/zh/train.parquet", "hub/Muennighoff/xwinograd/en/test.parquet"]
    assert files["hub/Helsinki-NLP/opus-100/de-en/train.parquet"]["rows"] == 3   # both shards
    assert manifest["sources"]["MBZUAI/Bactrian-X"]["revision"] == RECIPES["bactrian"]["revision"]
    assert "bactrian-x-train.parquet" in files["hub/MBZUAI/Bactrian-X/de/train.parquet"]["source"]
    assert not (out / store.INCOMPLETE).exists() and not (out / store.PARTIAL).exists()
    assert store.verify(out) == []

    monkeypatch.setenv("AFP_DATA_MIRROR", str(out))
    zh = load_split("MBZUAI/Bactrian-X", "zh", "train")
    assert zh.column_names == ["instruction", "input", "id", "output"] and zh[0]["instruction"] == "给出三个建议。"
    pairs = load_parallel("de", "opus100")["translation"]
    assert [p["de"] for p in pairs] == ["de 0", "de 1", "de 0"]
    assert load_split("Muennighoff/xwinograd", "en", "test")[0]["answer"] == "1"
    with pytest.raises(DatasetNotFound, match=r"config 'fr'.*configs there: de, en, zh"):
        load_split("MBZUAI/Bactrian-X", "fr", "train")


def test_tatoeba_probe_pairs_become_mirror_bitext(fake_hub, tmp_path, monkeypatch):
    out = tmp_path / "store"
    manifest = fetch.fetch(fetch.plan({"tatoeba": ["zh"]}, "en", fake_hub), out)
    assert manifest["files"]["parallel/tatoeba/en-zh.jsonl"]["rows"] == 2          # the empty pair dropped
    monkeypatch.setenv("AFP_DATA_MIRROR", str(out))
    assert load_parallel("zh", "tatoeba")["translation"][0] == {"en": "We should go to sleep.", "zh": "我们该睡觉了。"}
    with pytest.raises(DataError, match=r"tha-eng/test/0000.parquet: column 'sentence2' \(declared en\).*swapped"):
        fetch.fetch(fetch.plan({"tatoeba": ["th"]}, "en", fake_hub), tmp_path / "store2")
    with pytest.raises(fetch.FetchError, match=r"no config for \['xx'\]"):
        fetch.plan({"tatoeba": ["xx"]}, "en", fake_hub)


def test_without_a_mirror_no_other_source_stands_in(monkeypatch):
    monkeypatch.delenv("AFP_DATA_MIRROR", raising=False)
    with pytest.raises(DatasetNotFound, match=r"'tatoeba' is read from an offline mirror or a data store only"):
        load_parallel("zh", "tatoeba")


def test_a_run_records_the_manifest_hash(fake_hub, tmp_path, monkeypatch):
    out = tmp_path / "store"
    fetch.fetch(_items(fake_hub, langs=("zh",), names=("bactrian",)), out)
    monkeypatch.setenv("AFP_DATA_MIRROR", str(out))
    rev = store.data_revisions(out)
    assert rev["manifest_sha256"] == store.sha256_file(out / store.MANIFEST)
    assert rev["datasets"] == {"MBZUAI/Bactrian-X": RECIPES["bactrian"]["revision"]}


def test_a_language_the_pin_lacks_fails_unless_the_recipe_lists_it_absent(fake_hub, tmp_path):
    """The old `missing: optional` let a pin lacking en-ja..en-zh pass with a warning (the trainer then used
    Bactrian-X alone); now only the recipe's `absent` languages are skipped, and they are never fetched."""
    fake_hub["opus100"]["absent"] = ["sw", "tl"]
    items = _items(fake_hub, langs=("zh", "sw", "tl"), names=("opus100",))
    assert [(it.config, it.absent) for it in items] == [("en-zh", False), ("en-sw", True), ("en-tl", True)]
    assert "en-sw train: absent upstream" in "\n".join(fetch.plan_lines(items))
    manifest = fetch.fetch(items, tmp_path / "store")
    assert sorted(manifest["files"]) == ["hub/Helsinki-NLP/opus-100/en-zh/train.parquet"]
    assert manifest["skipped"] == ["Helsinki-NLP/opus-100/en-sw/train", "Helsinki-NLP/opus-100/en-tl/train"]
    with pytest.raises(fetch.FetchError, match=r"opus-100@\w+ has no en-ja/train.*configs there: de-en, en-zh"
                                               r".*under `absent`"):
        fetch.fetch(_items(fake_hub, langs=("zh", "ja"), names=("opus100",)), tmp_path / "store2")
    assert not (tmp_path / "store2" / store.MANIFEST).exists()                 # no half store passes as done
    with pytest.raises(fetch.FetchError, match=r"Bactrian-X.*no xx/train.*configs there: de, en, zh"):
        fetch.fetch(_items(fake_hub, langs=("xx",), names=("bactrian",)), tmp_path / "store3")


def test_recipes_with_the_old_missing_field_are_refused(tmp_path):
    path = tmp_path / "recipes.yaml"
    recipe = {"id": "a/b", "revision": "main", "files": ["x"], "configs": "langs", "config": "{lang}",
              "splits": ["train"], "columns": ["c"], "missing": "optional"}
    path.write_text(json.dumps({"sources": {"ab": recipe}}))
    with pytest.raises(KeyError, match=r"recipes.yaml: recipe 'ab': field 'missing' is no longer read.*absent"):
        fetch.load_recipes(path)
    del recipe["missing"]
    recipe.update(configs=["default"], absent=["sw"])
    path.write_text(json.dumps({"sources": {"ab": recipe}}))
    with pytest.raises(KeyError, match=r"'absent' applies to `configs: langs` recipes only"):
        fetch.load_recipes(path)


def test_store_of_another_revision_is_refused(fake_hub, tmp_path):
    out = tmp_path / "store"
    fetch.fetch(_items(fake_hub, langs=("zh",), names=("opus100",)), out)
    moved = json.loads(json.dumps(fake_hub))
    moved["opus100"]["revision"] = "f" * 40                                   # the recipe was repinned
    before = (out / store.MANIFEST).read_bytes()
    with pytest.raises(fetch.FetchError, match=r"holds Helsinki-NLP/opus-100 at revision "
                                               + RECIPES["opus100"]["revision"] + r".*pins f{40}.*new --out"):
        fetch.fetch(_items(moved, langs=("zh",), names=("opus100",)), out)
    assert (out / store.MANIFEST).read_bytes() == before and not (out / store.INCOMPLETE).exists()


def test_branch_pin_that_moved_is_refused(fake_hub, tmp_path, monkeypatch):
    """`main`/`refs/convert/parquet` pins: the store records the commit they resolved to; a later fetch into
    the same store that resolves to another commit would mix two snapshots."""
    out = tmp_path / "store"
    fetch.fetch(_items(fake_hub, names=("xwinograd",)), out)
    cache = Path(__import__("os").environ["HF_HUB_CACHE"])
    repo = cache / "datasets--Muennighoff--xwinograd"
    ref = repo / "refs" / "refs/convert/parquet"
    old = ref.read_text()
    new = "e" * 40
    (repo / "snapshots" / old).rename(repo / "snapshots" / new)
    ref.write_text(new)
    (out / "hub/Muennighoff/xwinograd/en/test.parquet").unlink()               # so the item is fetched again
    with pytest.raises(fetch.FetchError, match=rf"at commit {old}, the hub now resolves it to {new}"):
        fetch.fetch(_items(fake_hub, names=("xwinograd",)), out)


def test_interrupted_fetch_is_refused_then_resumed(fake_hub, tmp_path, monkeypatch):
    out = tmp_path / "store"
    items = _items(fake_hub, langs=("zh",), names=("bactrian",))        # en, zh
    real, calls = fetch.convert, []

    def dies_on_second(item, files, dest):
        calls.append(item.config)
        if len(calls) == 2:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.with_name(dest.name + ".tmp").write_bytes(b"PAR1 half")   # killed mid-write
            raise KeyboardInterrupt
        return real(item, files, dest)

    monkeypatch.setattr(fetch, "convert", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        fetch.fetch(items, out, command="python -m afp_lib data fetch --langs zh")
    monkeypatch.setenv("AFP_DATA_MIRROR", str(out))
    with pytest.raises(store.StoreError, match=r"half-written.*rerun the fetch.*--langs zh"):
        load_split("MBZUAI/Bactrian-X", "en", "train")                   # the finished file is not read either
    calls.clear()
    monkeypatch.setattr(fetch, "convert", lambda *a: calls.append(a[0].config) or real(*a))
    manifest = fetch.fetch(items, out)
    assert calls == ["zh"]                                               # en was kept, not fetched again
    assert sorted(manifest["files"]) == ["hub/MBZUAI/Bactrian-X/en/train.parquet",
                                         "hub/MBZUAI/Bactrian-X/zh/train.parquet"]
    assert len(load_split("MBZUAI/Bactrian-X", "zh", "train")) == 2


def test_store_that_does_not_match_its_manifest_is_refused(fake_hub, tmp_path, monkeypatch):
    out = tmp_path / "store"
    fetch.fetch(_items(fake_hub, langs=("zh",), names=("bactrian",)), out)
    path = out / "hub/MBZUAI/Bactrian-X/zh/train.parquet"
    table = pq.read_table(path)
    pq.write_table(table.slice(0, 1), path)                              # changed after the fetch
    monkeypatch.setenv("AFP_DATA_MIRROR", str(out))
    with pytest.raises(store.StoreError, match=r"zh/train.parquet: \d+ bytes, but .*manifest.json says"):
        load_split("MBZUAI/Bactrian-X", "zh", "train")
    assert any("zh/train.parquet" in p for p in store.verify(out))


def test_parquet_with_other_columns_is_refused(fake_hub, tmp_path):
    cache = Path(__import__("os").environ["HF_HUB_CACHE"])
    r = RECIPES["bactrian"]
    snap = cache / "datasets--MBZUAI--Bactrian-X" / "snapshots" / r["revision"]
    pq.write_table(_bactrian("zh", extra=True), snap / "zh/train/0000.parquet")
    with pytest.raises(DataError, match=r"zh/train/0000.parquet .*expects.*extra \['score'\]"):
        fetch.fetch(_items(fake_hub, langs=("zh",), names=("bactrian",)), tmp_path / "store")


def test_store_reader_checks_parquet_columns(tmp_path):
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"premise": ["a"], "hypothesis": ["b"], "label": ["yes"]}), path)
    with pytest.raises(DataError, match=r"x.parquet: column 'label' has Arrow type string, expected int"):
        hub.read_parquet(path, hub.SCHEMAS["facebook/xnli"])


@pytest.mark.slow
def test_plan_prints_every_file_without_network(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty")}
    res = subprocess.run([sys.executable, "-m", "afp_lib", "data", "fetch", "--profile", "paper", "--plan"],
                         capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parent.parent)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[-1] == f"{len({l.split('@')[0] for l in lines[:-1]})} sources, {len(lines) - 1} files"
    assert any(l.startswith("MBZUAI/Bactrian-X@bc4ec3e6ff1d37615dce32b7dcc611ba10229e88 sw train") for l in lines)
    opus = RECIPES["opus100"]["revision"]
    assert opus == "712601ae8d913651dafe5ba5712b34c2825d1c8c"       # "Add nl-ru data files": after every en-xx
    for pair in ("en-zh", "en-th", "en-tr", "en-ja", "en-ko", "en-ru", "en-vi"):   # all absent at 0042b8b
        assert any(l.startswith(f"Helsinki-NLP/opus-100@{opus} {pair} train: rows") for l in lines), pair
    assert f"Helsinki-NLP/opus-100@{opus} en-sw train: absent upstream (the recipe's `absent`): not fetched" in lines
    assert any(l.startswith("gsarti/flores_101@refs/convert/parquet zho_simpl devtest: rows 1012") for l in lines)
    assert not (tmp_path / "empty").exists()                             # nothing was downloaded or cached


class _Response:
    def __init__(self, status):
        self.status_code, self.headers, self.request = status, {}, None


@pytest.mark.parametrize("status, kind, words", [(429, HubUnavailable, "rate-limited"),
                                                 (401, HubUnavailable, "access refused"),
                                                 (None, HubUnavailable, "could not be reached")])
def test_hub_errors_name_the_dataset_and_how_to_retry(status, kind, words):
    err = OSError("boom") if status is None else type("E", (OSError,), {"response": _Response(status)})("boom")
    out = hub.hub_error(err, "'MBZUAI/Bactrian-X' config 'zh' split 'train'")
    assert isinstance(out, kind) and not isinstance(out, DatasetNotFound)
    assert words in str(out) and "MBZUAI/Bactrian-X" in str(out) and "data fetch" in str(out)


def test_transient_hub_error_is_not_skipped_by_the_trainer(monkeypatch):
    from afp_lib.trainer import data as tdata
    from afp_lib.trainer.config import load_train_config
    cfg = load_train_config("smoke")

    def unavailable(*a, **k):
        raise HubUnavailable("'Helsinki-NLP/opus-100' config 'en-zh': rate-limited")

    monkeypatch.setattr(tdata, "load_parallel", unavailable)
    with pytest.raises(HubUnavailable, match="rate-limited"):
        tdata.pivot_pairs(cfg)


def test_cli_fetches_the_languages_asked_for_and_verifies(fake_hub, tmp_path, monkeypatch, capsys):
    from afp_lib.data import cli
    monkeypatch.setattr(fetch, "load_recipes", lambda path=fetch.RECIPES: fake_hub)
    out = tmp_path / "store"
    assert cli.main(["fetch", "--sources", "bactrian", "--langs", "zh", "--out", str(out)]) == 0
    assert f"export AFP_DATA_MIRROR={out.resolve()}" in capsys.readouterr().out
    assert sorted(json.loads((out / "manifest.json").read_text())["files"]) == [
        "hub/MBZUAI/Bactrian-X/en/train.parquet", "hub/MBZUAI/Bactrian-X/zh/train.parquet"]
    assert cli.main(["verify", str(out)]) == 0
    (out / "hub/MBZUAI/Bactrian-X/en/train.parquet").unlink()
    assert cli.main(["verify", str(out)]) == 1
    assert "en/train.parquet: listed in the manifest, missing" in capsys.readouterr().err
    assert cli.main(["fetch", "--sources", "bactrian", "--langs", "xx", "--out", str(tmp_path / "s2")]) == 1
    assert "configs there: de, en, zh" in capsys.readouterr().err
