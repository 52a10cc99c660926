"""`python -m afp_lib`: the launcher's `--local_rank` argument (DeepSpeed's launcher without --no_local_rank)."""
import pytest

from afp_lib import cli


@pytest.fixture(autouse=True)
def no_local_rank(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)


@pytest.mark.parametrize("argv", [["--local_rank=3", "train", "x=1"], ["--local-rank=3", "train", "x=1"],
                                  ["--local_rank", "3", "train", "x=1"], ["train", "--local_rank=3", "x=1"]])
def test_local_rank_argument_is_taken_out_and_exported(argv, monkeypatch):
    import os
    assert cli.take_local_rank(argv) == ["train", "x=1"]
    assert os.environ["LOCAL_RANK"] == "3"


def test_local_rank_agrees_with_the_environment(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")  # DeepSpeed's launcher sets both
    assert cli.take_local_rank(["--local_rank=1", "train"]) == ["train"]
    with pytest.raises(SystemExit, match=r"--local_rank=0 disagrees with \$LOCAL_RANK=1"):
        cli.take_local_rank(["--local_rank=0", "train"])


@pytest.mark.parametrize("argv", [["--local_rank=x", "train"], ["train", "--local_rank"]])
def test_bad_local_rank_is_named(argv):
    with pytest.raises(SystemExit, match="--local_rank needs a non-negative integer"):
        cli.take_local_rank(argv)


def test_main_dispatches_after_the_local_rank(capsys):
    """Without it, `--local_rank=0` in argv[0] made `python -m afp_lib` print its usage and exit 2."""
    with pytest.raises(SystemExit) as e:
        cli.main(["--local_rank=0", "train", "--help"])
    assert e.value.code == 0 and "python -m afp_lib train" in capsys.readouterr().out
