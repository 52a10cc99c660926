"""`python -m afp_lib`: a user's mistake ends in one line `afp <command>: error: ...` and exit 2 (no
traceback unless AFP_DEBUG=1); `--help` imports no torch and documents every option (docs/cli.md)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from afp_lib import cli
from afp_lib.config import UnknownName, UserError, user_input

ROOT = Path(__file__).resolve().parent.parent
MODEL = "<model>"   # stands for the `saved_model` fixture's folder in the parametrized commands below
SHARED_MIRROR = ROOT.parent / "shared" / "afp-data"


@pytest.fixture(scope="session")
def saved_model(tmp_path_factory, tiny_models, toy_tokenizer):
    """A tiny random XGLM as a save_pretrained folder with its tokenizer, as a user's --model would be."""
    folder = tmp_path_factory.mktemp("model") / "xglm"
    tiny_models["xglm"].save_pretrained(folder)
    toy_tokenizer.save_pretrained(folder)
    return str(folder)


def afp(*argv, **env):
    """`python -m afp_lib ARGV` from the repository root, offline; (exit status, stdout, stderr)."""
    full = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    full.pop("AFP_DEBUG", None)
    full.update(env)
    done = subprocess.run([sys.executable, "-m", "afp_lib", *argv], cwd=ROOT, env=full, capture_output=True,
                          text=True, timeout=300)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("argv,message", [
    (["trian"], "afp: error: unknown command 'trian'; did you mean 'train'?"),
    (["train", "--base-model", "/no/such/folder", "--dry-run"],
     "afp train: error: argument --base-model: /no/such/folder: no such folder (and not a hub id"),
    (["train", "--base-model", MODEL, "mcl.layr=2", "--dry-run"],
     "afp train: error: unknown key 'layr' in train.mini.mcl; did you mean 'layer'?"),
    (["train", "--base-model", MODEL, "mcl.layer=x", "--dry-run"],
     "afp train: error: train.mini.mcl.layer must be an integer, got 'x'"),
    (["train", "--base-model", MODEL, "--profile", "minii", "--dry-run"],
     "afp train: error: unknown profile 'minii' in params.yaml:train; did you mean 'mini'?"),
    (["train", "--base-model", "nobody/no-such-model-afp"],
     "afp train: error: nobody/no-such-model-afp: no such folder, and HF_HUB_OFFLINE=1 while this hub id is not in"),
    (["evaluate", "--model", MODEL, "--tasks", "xcopz"], "afp evaluate: error: unknown task 'xcopz'; did you mean 'xcopa'?"),
    (["evaluate", "--model", MODEL, "--tasks", "xcopa", "--langs", "zz"],
     "afp evaluate: error: unknown language 'zz' in tasks xcopa"),
    (["evaluate", "--model", MODEL, "--tasks", "xcopa,flores", "--langs", "zh"],
     "afp evaluate: error: flores translates between the --langs languages; it needs two or more, got zh"),
    (["evaluate", "--model", MODEL, "--shots", "a"], "afp evaluate: error: argument --shots: 'a' must be comma-separated"),
    (["prepare", "train", "--section", "bilingul"],
     "afp prepare: error: unknown section 'bilingul'; did you mean 'bilingual'? (known: bilingual, mcl_layer,"),
    (["data", "chek"], "afp data: error: unknown subcommand 'chek'; did you mean 'check'?"),
    (["data", "check", "params.yaml", "--as", "facebook/xnli/xx/validation"],
     "afp data: error: --as facebook/xnli/xx/validation: facebook/xnli has no config 'xx'"),
    (["data", "check", "params.yaml", "--as", "facebook/xnli/zh"],
     "afp data check: error: argument --as: --as 'facebook/xnli/zh': give the split after the dataset"),
    (["data", "check", "no-such.jsonl", "--as", "facebook/xnli/zh/validation"], "afp data: error: no-such.jsonl: no such file"),
])
def test_a_mistake_is_one_line_and_exit_2(argv, message, saved_model):
    code, out, err = afp(*[saved_model if a == MODEL else a for a in argv])
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith(message), err


def test_afp_debug_shows_the_traceback(saved_model):
    code, _, err = afp("train", "--base-model", saved_model, "mcl.layr=2", "--dry-run", AFP_DEBUG="1")
    assert code == 1 and "Traceback" in err and "UnknownName" in err


# ---- --help: parsed before torch is imported, every option documented

HELP_PROBE = """
import argparse, json, sys
seen = []
real = argparse.ArgumentParser.parse_known_args
def record(self, *a, **k):
    seen.append(self)
    return real(self, *a, **k)
argparse.ArgumentParser.parse_known_args = record
from afp_lib import cli
try:
    cli.main(sys.argv[1:])
except SystemExit:
    pass
undocumented = [a.dest for p in seen for a in p._actions if a.help is None]
heavy = [m for m in ("torch", "transformers", "datasets", "pandas") if m in sys.modules]
print(json.dumps({"parsers": len(seen), "heavy": heavy, "undocumented": undocumented}), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["train"], ["evaluate"], ["world"], ["data", "check"], ["data", "verify"],
                                  ["data", "fetch"], ["paper-plan"], ["prepare"], ["repro-check"], ["rehearse"], ["analyse", "tables"],
                                  ["analyse", "represent"]])
def test_help_imports_no_torch_and_documents_every_option(argv):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", HELP_PROBE, *argv, "--help"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert "usage:" in done.stdout and report["parsers"] >= 1
    assert report["heavy"] == [], f"{argv} --help imported {report['heavy']}"
    assert report["undocumented"] == [], f"{argv}: options without help: {report['undocumented']}"


def test_evaluate_help_shows_the_profiles_defaults():
    from afp_lib.config import default_profile, load_section
    from afp_lib.eval.cli import parser
    profile, d = default_profile(), load_section("eval", default_profile())
    text = " ".join(parser().format_help().split())
    shots = ",".join(map(str, d["shots"]))
    assert f"(default: {shots}; from eval.{profile} in params.yaml)" in text
    assert f"(default: {d['demos']}; from eval.{profile}" in text and "(default: auto)" in text


# ---- the pieces

def test_user_input_makes_library_errors_user_errors():
    with pytest.raises(UserError, match=r"^unknown thing 'x'$"):
        with user_input():
            raise KeyError("unknown thing 'x'")   # str(KeyError) would quote it
    with pytest.raises(UnknownName) as e:          # config's own errors: UserErrors and still KeyErrors
        from afp_lib.config import load_section
        load_section("train", "minii")
    assert isinstance(e.value, KeyError) and str(e.value).startswith("unknown profile 'minii'")


def test_model_ref(tmp_path, monkeypatch, saved_model):
    import argparse
    (tmp_path / "empty").mkdir()
    with pytest.raises(argparse.ArgumentTypeError, match="a folder without config.json"):
        cli.model_ref(str(tmp_path / "empty"))
    for bad in (saved_model + "m", "./x/y", "no-slash"):
        with pytest.raises(argparse.ArgumentTypeError, match="no such folder"):
            cli.model_ref(bad)
    assert cli.model_ref(saved_model) == saved_model
    assert cli.model_ref("facebook/xglm-564M") == "facebook/xglm-564M"   # shaped like a hub id
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert cli.require_model("facebook/xglm-564M") == "facebook/xglm-564M"   # online: the hub will say
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError, match="not in the local hub cache"):
        cli.require_model("facebook/xglm-564M")
    assert cli.require_model(saved_model) == saved_model


def test_evaluate_prints_chance_beside_accuracies():
    import pandas as pd

    from afp_lib.eval.cli import _with_chance
    table = pd.DataFrame({"task": ["xnli", "xcopa", "flores"], "metric": ["acc", "acc_norm", "bleu"],
                          "mean": [40.0, 55.0, 1.0], "std": [0.0, 0.0, 0.0]})
    out = _with_chance(table)
    assert list(out.columns) == ["task", "metric", "mean", "chance", "std"]
    assert out["chance"].iloc[0] == pytest.approx(100 / 3) and out["chance"].iloc[1] == 50.0
    assert pd.isna(out["chance"].iloc[2])   # BLEU has no chance score


# ---- data check

XNLI = {"premise": "A man.", "hypothesis": "A person.", "label": 0}


def check(capsys, *argv):
    from afp_lib.data.cli import main
    code = main(["check", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


@pytest.fixture
def mirror_env(monkeypatch):
    if SHARED_MIRROR.is_dir():
        monkeypatch.setenv("AFP_DATA_MIRROR", str(SHARED_MIRROR))
    else:
        monkeypatch.delenv("AFP_DATA_MIRROR", raising=False)   # the task files name the configs then


def test_check_folds_repeated_problems_and_suggests_the_language(tmp_path, capsys, mirror_env):
    path = tmp_path / "en-vi.jsonl"
    path.write_text("".join(json.dumps({"translation": {"en": f"Hi {i}.", "vn": f"Chào {i}."}}) + "\n"
                            for i in range(40)), encoding="utf-8")
    code, out, err = check(capsys, path, "--parallel", "en-vi")
    assert code == 2 and "NOT USABLE" in err
    assert out[0] == f"{path}:1: translation.vn: unexpected language key (this file holds en and vi; did you mean 'vi'?)"
    assert len(out) == 8 and out[3].startswith("  ... and 37 more rows like it (translation.vn:")
    assert out[7] == "  ... and 37 more rows like it (translation.vi: missing)"
    with pytest.raises(UserError, match=r"unknown language 'vn'; did you mean 'vi'"):
        check(capsys, path, "--parallel", "en-vn")


def test_check_names_a_bom_and_a_truncated_last_line(tmp_path, capsys, mirror_env):
    bom = tmp_path / "bom.jsonl"
    bom.write_text("\ufeff" + json.dumps(XNLI) + "\n" + json.dumps(XNLI) + "\n", encoding="utf-8")
    code, out, _ = check(capsys, bom, "--as", "facebook/xnli/en/validation")
    assert code == 2 and out == [f"{bom}:1: bom: the file starts with a UTF-8 byte-order mark (BOM), which the "
                                 "loaders do not accept: save it as UTF-8 without BOM"]
    cut = tmp_path / "cut.jsonl"
    cut.write_text(json.dumps(XNLI) + "\n" + json.dumps(XNLI)[:20], encoding="utf-8")
    code, out, _ = check(capsys, cut, "--as", "facebook/xnli/en/validation")
    assert code == 2 and len(out) == 1
    assert out[0].startswith(f"{cut}:2: json: truncated last line (the file ends mid-record, without a newline)")


def test_check_validates_the_config_and_split_of_as(tmp_path, capsys, mirror_env):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(XNLI) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match="facebook/xnli has no config 'xx'"):
        check(capsys, path, "--as", "facebook/xnli/xx/validation")
    with pytest.raises(UserError, match="has no split 'valid'; did you mean 'validation'"):
        check(capsys, path, "--as", "facebook/xnli/zh/valid")
    assert check(capsys, path, "--as", "facebook/xnli/zh/validation")[0] == 0
