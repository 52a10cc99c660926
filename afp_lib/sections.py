"""A notebook section's models, declared once in its params.yaml block and read by everyone.

Each section block (`bilingual:`, `mcl_layer:`, ...) has a `runs:` map of groups; `section_runs(name,
profile)` turns it into `Variant`s, and both the notebook (through `setup`) and the paper plan
(`afp_lib.plan.resolve`) call it, so the GPU plan trains exactly the models the notebooks ask for
(tests/test_sections.py runs the notebooks' own code to check). A group is one of

    {methods: KEY or {label: overrides | null}}   each arch x label (x seed unless null = vanilla)
    {sweep: KEY, set: TRAIN_KEY}                   each arch x value x seed, label "<last part of TRAIN_KEY> <value>"

with the options
    seeds: KEY          the block key listing the training seeds (default `seeds`)
    first: [arch, seed] only the first arch / the first seed of those lists
    langs: true         add `data.langs=<the block's langs>` (`all`: every language with training pairs)
    vanilla: true       (sweep) each arch's vanilla model before its runs
    label: "{}"         (sweep) the label template (default "<last part of TRAIN_KEY> {}")
    archs_for: {VALUE: KEY}  (sweep) VALUE runs only on the archs the block lists under KEY, when it has KEY

The block's own `train` overrides come first in every aligned run."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from .config import load_section
from .paths import NOTEBOOKS, SECTIONS  # noqa: F401  (re-exported: the sections and their notebooks)

GROUP_KEYS = {"methods", "sweep", "set", "seeds", "first", "langs", "vanilla", "label", "archs_for"}


@dataclass(frozen=True)
class Variant:
    """One model of a section. `train=None` is the vanilla (unaligned) model."""
    label: str                              # shown in tables and plots: "vanilla", "AFP", "layer 2", ...
    arch: str = "xglm"
    train: tuple[str, ...] | None = None    # `train` section overrides, e.g. ("objective=cit",)
    seed: int = 0                           # training seed (vanilla models have none)
    meta: dict = field(default_factory=dict, compare=False, hash=False)  # sweep coordinates for plots

    @property
    def vanilla(self) -> bool:
        return self.train is None

    def display(self, profile: str) -> str:
        """The name tables use: seeds of one variant are averaged under it."""
        base = f"{self.arch}-{profile}"
        return base if self.vanilla else f"{base}+{self.label}"

    def name(self, profile: str) -> str:
        """Unique per trained model (the training seed included)."""
        return self.display(profile) if self.vanilla else f"{self.display(profile)}#s{self.seed}"


def section(name: str, profile: str) -> dict:
    """The notebook's own block of params.yaml (base + profile)."""
    return load_section(name, profile)


def variants(spec: dict, archs: list[str], seeds: list[int], common: list[str] = ()) -> list[Variant]:
    """Variants from a params block `{label: overrides-or-null}` for each arch and (aligned) seed;
    `common` overrides (e.g. the section's languages) come first."""
    out = []
    for arch in archs:
        for label, overrides in spec.items():
            if overrides is None:
                out.append(Variant(label, arch))
            else:
                out += [Variant(label, arch, (*common, *overrides), seed) for seed in seeds]
    return out


def trainable_languages(profile: str) -> list[str]:
    """Languages with training pairs in the profile's parallel sources (and a name for CIT prompts)."""
    from .cit import LANGUAGE_NAMES
    from .paths import mirror_root
    from .trainer import load_train_config
    cfg = load_train_config(profile)
    root = mirror_root()
    if root is None or "opus100" in cfg.data.sources:  # the hub recipe: Bactrian-X's languages (paper Table 21)
        from .plan.facts import BACTRIAN_X_LANGS
        return sorted(set(BACTRIAN_X_LANGS) - {cfg.data.pivot})
    found = set()
    for source in cfg.data.sources:
        found |= {p.stem.split("-", 1)[1] for p in (root / "parallel" / source).glob(f"{cfg.data.pivot}-*.jsonl")}
    return sorted(found & set(LANGUAGE_NAMES) - {cfg.data.pivot})


def section_langs(sec: dict, profile: str) -> list[str]:
    """The block's `langs` (aligned with English); `all` = every language with training pairs in the profile's
    data (the mirror's offline, Bactrian-X's on the hub)."""
    return trainable_languages(profile) if sec["langs"] == "all" else list(sec["langs"])


def _group(name: str, group: str, g: dict, sec: dict, profile: str) -> list[Variant]:
    unknown = set(g) - GROUP_KEYS
    if unknown or ("methods" in g) == ("sweep" in g):
        raise ValueError(f"params.yaml: {name}.runs.{group}: give exactly one of `methods`, `sweep` "
                         f"(unknown keys: {sorted(unknown) or 'none'}); see afp_lib/sections.py")
    first = set(g.get("first", ()))
    archs = sec["archs"][:1] if "arch" in first else sec["archs"]
    seeds = sec[g.get("seeds", "seeds")][: 1 if "seed" in first else None]
    common = [*(sec.get("train") or [])]
    if g.get("langs"):
        common.append(f"data.langs=[{', '.join(section_langs(sec, profile))}]")
    if "methods" in g:
        spec = sec[g["methods"]] if isinstance(g["methods"], str) else g["methods"]
        return variants(spec, archs, seeds, common=common)
    key = g["set"]
    coord = key.split(".")[-1]
    label = g.get("label", coord + " {}")
    only = {value: sec[k] for value, k in (g.get("archs_for") or {}).items() if k in sec}
    out = []
    for arch in archs:
        if g.get("vanilla"):
            out.append(Variant("vanilla", arch))
        out += [Variant(label.format(x), arch, (*common, f"{key}={x}"), seed, meta={coord: x})
                for x in sec[g["sweep"]] if arch in only.get(x, [arch]) for seed in seeds]
    return out


def section_runs(name: str, profile: str) -> dict[str, list[Variant]]:
    """The models of section `name` under `profile`, by group of its `runs:` block, in the declared order
    (vanilla ones included, train=None)."""
    sec = section(name, profile)
    if "runs" not in sec:
        raise KeyError(f"params.yaml: section {name!r} has no `runs:` block; see afp_lib/sections.py")
    return {group: _group(name, group, g, sec, profile) for group, g in sec["runs"].items()}


def section_variants(name: str, profile: str) -> list[Variant]:
    """Every model of section `name`, each once, in the order of its groups."""
    return list(dict.fromkeys(v for vs in section_runs(name, profile).values() for v in vs))


class Setup(NamedTuple):
    sec: dict                          # the section's params block (base + profile)
    runs: dict[str, list[Variant]]     # its models by group (section_runs)
    out: Path                          # results/<profile>/<section>/
    figs: Path                         # figures/<profile>/<section>/
