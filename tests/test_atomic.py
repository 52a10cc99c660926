"""afp_lib.atomic: a write interrupted at any point leaves the old file or folder, whole."""
import os

import pytest

from afp_lib import atomic


class Crash(Exception):
    pass


def test_replacing_a_file_all_or_nothing(tmp_path):
    path = tmp_path / "table.csv"
    atomic.write_text(path, "old\n")
    with pytest.raises(Crash):
        with atomic.replacing(path) as tmp:
            tmp.write_text("half of the ne", encoding="utf-8")
            raise Crash  # killed in the middle of the write
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["table.csv"]  # no temporary file left
    with atomic.replacing(path) as tmp:
        assert tmp.parent == path.parent and tmp.suffix == ".csv" and tmp != path
        tmp.write_text("new\n", encoding="utf-8")
        assert path.read_text() == "old\n"  # not visible before the block ends
    assert path.read_text() == "new\n" and os.listdir(tmp_path) == ["table.csv"]


def test_replacing_a_folder_all_or_nothing(tmp_path):
    final = tmp_path / "model"
    with atomic.building_dir(final) as tmp:
        (tmp / "weights").write_text("v1")
    assert (final / "weights").read_text() == "v1"
    with pytest.raises(Crash):
        with atomic.building_dir(final) as tmp:
            (tmp / "weights").write_text("v2, half")
            raise Crash
    assert (final / "weights").read_text() == "v1" and sorted(os.listdir(tmp_path)) == ["model"]
    tmp = atomic.fresh_dir(final)
    (tmp / "weights").write_text("v2")
    (tmp / "extra").write_text("x")
    atomic.commit_dir(tmp, final)
    assert (final / "weights").read_text() == "v2" and sorted(os.listdir(final)) == ["extra", "weights"]
    assert sorted(os.listdir(tmp_path)) == ["model"]  # the old folder, set aside during the swap, is gone


def test_a_crash_between_the_renames_keeps_the_old_folder(tmp_path, monkeypatch):
    final = tmp_path / "model"
    final.mkdir()
    (final / "weights").write_text("v1")
    tmp = atomic.fresh_dir(final)
    (tmp / "weights").write_text("v2")
    real, calls = os.replace, []

    def replace(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise Crash  # after the old folder went aside, before the new one came in
        real(src, dst)
    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(Crash):
        atomic.commit_dir(tmp, final)
    monkeypatch.setattr(atomic.os, "replace", real)
    assert (tmp_path / "model.old" / "weights").read_text() == "v1"  # the old content, whole
    atomic.commit_dir(tmp, final)  # the next try completes it
    assert (final / "weights").read_text() == "v2" and sorted(os.listdir(tmp_path)) == ["model"]
