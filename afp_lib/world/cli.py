"""`python -m afp_lib world {corpus,tokenizer,pretrain,diagnose,all} --profile P [--arch A] [--set k=v]`.

Each step command rebuilds its step (DVC decides when); `all` builds only what is missing or stale and then
writes the diagnostic. A world without archs (mini) is its corpus alone: `corpus` and `all` build it, the
other steps refuse. The paper profile uses hub checkpoints: its build steps only leave a note."""
from __future__ import annotations

import json

from ..atomic import write_text
from ..config import Parser, default_profile, user_input
from . import BUILT_PROFILES, ensure_world, world_dir

STEPS = ("corpus", "tokenizer", "pretrain", "diagnose", "all")


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m afp_lib world", description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=STEPS, help="the step to run; `all` builds what is missing or stale")
    parser.add_argument("--profile", default=None, help="smoke | mini | paper (default: params.yaml `profile`)")
    parser.add_argument("--arch", default=None, help="pretrain only this architecture (default: world.archs)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a world setting for this run, e.g. --set pretrain.threads=1")
    args = parser.parse_args(argv)
    profile = args.profile or default_profile()
    from .config import load_world_config   # after parsing: it imports torch
    with user_input():   # an unknown key or a bad value in --set or params.yaml
        cfg = load_world_config(profile, args.overrides)   # `--set pretrain.steps=10`: key.sub=value, as everywhere
    from . import steps

    if profile not in BUILT_PROFILES and args.step != "diagnose":
        return _paper_note(profile, cfg, args.step)
    if not cfg.archs and args.step in ("tokenizer", "pretrain", "diagnose"):
        parser.error(f"world.{profile}.archs is empty: the {profile} world is its corpus alone (its sections "
                     f"align the pretrained models of params.yaml `models`); `{args.step}` is for a world with "
                     f"toy models, e.g. --profile smoke")
    if args.step == "corpus":
        steps.corpus(profile, cfg)
    elif args.step == "tokenizer":
        steps.tokenizer(profile, cfg)
    elif args.step == "pretrain":
        for arch in [args.arch] if args.arch else cfg.archs:
            if arch not in cfg.archs:
                parser.error(f"--arch {arch!r} is not in world.{profile}.archs ({', '.join(cfg.archs)})")
            steps.pretrain(profile, cfg, arch)
    elif args.step == "diagnose":
        steps.diagnose(profile, cfg)
    else:
        if args.overrides:
            parser.error("`all` builds the configuration in params.yaml; use the step commands with --set")
        ensure_world(profile, [args.arch] if args.arch else None)
        if cfg.archs:   # a corpus-only world has no model to diagnose
            steps.diagnose(profile, cfg)
    return 0


def _paper_note(profile: str, cfg, step: str) -> int:
    """Hub profiles pretrain nothing; the note keeps DVC's declared outputs honest about that."""
    folders = {"corpus": ["corpus"], "tokenizer": ["tokenizer"], "pretrain": list(cfg.archs),
               "all": ["corpus", "tokenizer", *cfg.archs]}[step]
    for name in folders:
        note = {"profile": profile, "note": "this profile uses hub checkpoints; nothing is built here",
                "models": cfg.models}
        write_text(world_dir(profile) / name / "NOTE.json", json.dumps(note, indent=1))
    return 0
