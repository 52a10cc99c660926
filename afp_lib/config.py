"""Configuration is data: params.yaml holds sections, each with `base` plus one entry per profile
(`smoke` for CI, `mini` for the embedded default, `paper` for the real reproduction).

`load_section("train", "mini")` overlays base with the profile (the merge rule: `merge_rule`);
`apply_overrides(d, ["mcl.layer=2"])` applies overrides, the one syntax every config loader takes;
`from_dict(TrainConfig, d)` turns a dict into a frozen dataclass, checking types and suggesting the closest
name for unknown keys. Those mistakes are `UserError`s: `python -m afp_lib` prints them as one line."""
from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import functools
import difflib
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from .paths import repo_root

OFF = ("", "0", "false", "no")  # an environment flag read as unset

PROFILES = ("smoke", "mini", "paper")


class UserError(ValueError):
    """A mistake in what the user gave (a flag, a config key or value, a path, a data file): `python -m afp_lib`
    prints it as one line `afp <command>: error: ...` and exits 2, without a traceback (AFP_DEBUG=1 shows it)."""


class UnknownName(UserError, KeyError):
    """An unknown section, profile or key; still a KeyError for callers that catch one."""

    def __str__(self) -> str:   # KeyError's str() would quote the message
        return str(self.args[0]) if self.args else ""


class BadValue(UserError, TypeError):
    """A config value of the wrong type; still a TypeError for callers that catch one."""


@contextlib.contextmanager
def user_input(what: str = ""):
    """Inside it, a KeyError/ValueError/TypeError/FileNotFoundError is the user's mistake: it is re-raised as a
    UserError (the original chained). For the steps that read the command line, params.yaml and the
    overrides, where every such error comes from what the user gave; the work itself keeps its tracebacks."""
    try:
        yield
    except UserError:
        raise
    except (KeyError, ValueError, TypeError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and len(e.args) == 1 else str(e)
        raise UserError(f"{what}: {msg}" if what else str(msg)) from e


def read_params(path: str | Path | None = None) -> dict:
    """params.yaml as a dict (a fresh copy: callers may change it). Parsed once per file version."""
    path = Path(path) if path else repo_root() / "params.yaml"
    stat = path.stat()
    return copy.deepcopy(_parse(str(path), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=8)
def _parse(path: str, mtime_ns: int, size: int) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def default_profile(path: str | Path | None = None) -> str:
    return read_params(path).get("profile", "mini")


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# The typed configuration sections: a profile entry is merged into `base` key by key, at every depth, so
# `train.mini: {mcl: {layer: 2}}` keeps base's other `mcl` settings. Every other block (a notebook's section)
# is overlaid one level deep: a key the profile names replaces base's value whole, maps included, so a map of
# runs (`methods`, `findings`, `trajectories`) is exactly the runs the profile lists, never base's plus these.
CONFIG_SECTIONS = ("data", "world", "train", "eval", "analysis")


def merge_rule(section: str) -> str:
    """"deep" for the typed configuration sections, "replace" for a notebook's block (see CONFIG_SECTIONS)."""
    return "deep" if section in CONFIG_SECTIONS else "replace"


def load_section(section: str, profile: str | None = None, path: str | Path | None = None) -> dict:
    """`base` of `section` overlaid with its `profile` entry, by the section's `merge_rule`."""
    params = read_params(path)
    profile = profile or params.get("profile", "mini")
    if section not in params:
        raise UnknownName(_unknown("section", section, [k for k in params if isinstance(params[k], dict)], "params.yaml"))
    block = params[section]
    profiles = [k for k in block if k != "base"]
    if profile not in block and profile not in PROFILES:
        raise UnknownName(_unknown("profile", profile, profiles, f"params.yaml:{section}"))
    base, entry = block.get("base") or {}, block.get(profile) or {}
    if merge_rule(section) == "deep":
        return deep_merge(base, entry)
    return {**copy.deepcopy(base), **copy.deepcopy(entry)}


def _unknown(kind: str, name: str, known, where: str) -> str:
    msg = f"unknown {kind} {name!r} in {where}"
    close = difflib.get_close_matches(name, list(known), n=3)
    if close:
        msg += f"; did you mean {', '.join(repr(c) for c in close)}?"
    return msg + f" (known: {', '.join(sorted(map(str, known)))})"


def _check_type(value: Any, tp: Any, where: str) -> Any:
    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin is Literal:
        if value not in get_args(tp):
            raise UserError(f"{where}={value!r} is not allowed; use one of {', '.join(map(repr, get_args(tp)))}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_type(value, a, where)
            except (TypeError, ValueError) as e:
                errors.append(str(e))
        raise BadValue(f"{where}={value!r} matches none of {tp}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise BadValue(f"{where} must be a list, got {value!r}")
        (inner, *_) = get_args(tp) or (Any,)
        items = [_check_type(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise BadValue(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return value if isinstance(value, tp) else from_dict(tp, value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadValue(f"{where} must be a number, got {value!r} ({type(value).__name__}); "
                            "note that YAML reads 1e-5 as a string: write 1.0e-5")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadValue(f"{where} must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise BadValue(f"{where} must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise BadValue(f"{where} must be a string, got {value!r}")
        return value
    return value


def from_dict(cls, data: dict | None, where: str | None = None):
    """Build dataclass `cls` from a plain dict: unknown keys fail with a suggestion, types are checked,
    nested dataclasses are built recursively. `where` names the place in messages (e.g. 'train.mini')."""
    where = where or cls.__name__
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            raise UnknownName(_unknown("key", key, fields, where))
    kwargs = {k: _check_type(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def semantic(obj, operational) -> dict:
    """The settings of a config dataclass that determine what it computes: `to_dict(obj)` less the
    `operational` names (how a run is carried out: logging, checkpoint intervals; dotted names reach into
    sub-configs). A cache hit or a resume must match these; world pretraining and the run cache key on them.
    `obj` may also be such a dict read back from JSON (a saved config, which may predate a name)."""
    saved = isinstance(obj, dict)
    out = copy.deepcopy(obj) if saved else to_dict(obj)
    for name in operational:
        *parents, leaf = name.split(".")
        node = out
        for p in parents:
            node = node.get(p, {}) if saved else node[p]
        node.pop(leaf, None) if saved else node.pop(leaf)
    return out


Overrides = list[str] | tuple[str, ...] | dict | None   # what every config loader's `overrides` takes


def apply_overrides(cfg: dict, overrides: Overrides) -> dict:
    """The one override rule of every config (train, eval, world, analysis; CLI and code alike): each
    `key.sub=value` string (value parsed as YAML) sets one leaf, creating the maps on its path, and leaves
    every other key as it is. A dict is the same overrides written as a tree, its leaves being the paths:
    `{"translation": {"langs": ["en"]}}` is `translation.langs=[en]` (the profile's translation shots stay).
    Returns a new dict."""
    if overrides is None:
        return copy.deepcopy(cfg)
    if isinstance(overrides, dict):
        return deep_merge(cfg, overrides)
    if isinstance(overrides, str):
        raise TypeError(f"overrides must be a list of key.sub=value strings, got the string {overrides!r}")
    return with_overrides(cfg, overrides)


def with_overrides(cfg: dict, overrides: list[str] | None) -> dict:
    """Apply `a.b.c=value` strings (value parsed as YAML) to a nested dict; returns a new dict."""
    out = copy.deepcopy(cfg)
    for item in overrides or []:
        if "=" not in item:
            raise UserError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        try:
            node[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise UserError(f"override {item!r}: the value is not valid YAML ({' '.join(str(e).split())})") from None
    return out


def bar_disable(disable: bool = False) -> bool | None:
    """tqdm's `disable=` for afp_lib's progress bars: True where the caller asks or TQDM_DISABLE is set, else
    None, tqdm's "only on a terminal": a notebook's output stream is not one, so notebooks show no bar, while
    an explicit False would override TQDM_DISABLE (tqdm reads it as a default only)."""
    return True if disable or os.environ.get("TQDM_DISABLE", "").strip().lower() not in OFF else None


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default in its help, docstrings kept as written. A default of None (the value comes from
    params.yaml; the help says which) and a flag's False are not shown."""

    def _get_help_string(self, action):
        if action.default is None or (action.nargs == 0 and action.default is False):
            return action.help
        return super()._get_help_string(action)


def short_prog(prog: str) -> str:
    """"python -m afp_lib train" -> "afp train": the name in one-line errors."""
    return re.sub(r"^python -m afp_lib\b", "afp", prog)


class Parser(argparse.ArgumentParser):
    """argparse with every default shown, whose errors are one line `afp <command>: error: ...` and exit 2
    (argparse's own print the whole usage first)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{short_prog(self.prog)}: error: {' '.join(message.split())} (see --help)\n")


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]):
    """(__getattr__, names) for a package whose names are imported on first use (PEP 562): its CLI's
    `--help` parses without importing torch. `exports` maps each submodule to the names it provides."""
    import importlib
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f".{where[name]}", package), name)
    return __getattr__, sorted(where)
