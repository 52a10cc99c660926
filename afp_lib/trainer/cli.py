"""`python -m afp_lib train --profile mini [key.sub=value ...] --base-model PATH`: one alignment run
through the run cache (a finished run is not trained again). Prints the run folder.

Data parallel: `torchrun --nproc_per_node N -m afp_lib train ...` or
`deepspeed --num_gpus N --no_local_rank --module afp_lib train ... backend=deepspeed`."""
from __future__ import annotations

from ..cli import model_ref, require_model
from ..config import Parser


def get_or_train(cfg, base_model: str):
    """runs.get_or_train, imported when called (it imports torch): `--help` parses without it."""
    from .runs import get_or_train as run
    return run(cfg, base_model)


def main(argv: list[str] | None = None) -> int:
    ap = Parser(prog="python -m afp_lib train", description=__doc__)
    ap.add_argument("overrides", nargs="*", help="config overrides like objective=cit mcl.layer=2")
    ap.add_argument("--profile", help="params.yaml profile (default: the file's `profile`)")
    ap.add_argument("--config", help="a params.yaml-like file (default: the repository's params.yaml)")
    ap.add_argument("--base-model", required=True, type=model_ref,
                    help="save_pretrained folder or hub id (org/name) of the model to align")
    ap.add_argument("--dry-run", action="store_true", help="print the resolved config and run folder only")
    args = ap.parse_args(argv)
    from ..config import default_profile, user_input   # after parsing: `--help` imports no torch
    from ..devices import require_gpu
    from . import distributed
    from .config import load_train_config
    from .runs import run_dir
    with user_input():   # an unknown key or a bad value in the overrides or params.yaml
        cfg = load_train_config(args.profile, args.overrides, path=args.config)
    if args.dry_run:
        print(cfg)
        print(run_dir(cfg, args.base_model))
        return 0
    require_gpu(args.profile or default_profile(args.config), cfg.device)  # the paper profile without CUDA stops here
    path = get_or_train(cfg, require_model(args.base_model))
    if distributed.is_main():
        print(path)
    return 0
