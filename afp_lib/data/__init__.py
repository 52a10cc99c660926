"""Data access: one code path for the Hugging Face hub and the offline mirror ($AFP_DATA_MIRROR).

The names below are imported on first use (PEP 562): `hub` and `corpora` import `datasets` (seconds), which
`python -m afp_lib data check --help` and the other commands' argument parsing do not need."""
import importlib

_EXPORTS = {
    "hub": ("DataError", "DatasetNotFound", "HubUnavailable", "SCHEMAS", "load_split", "read_jsonl"),
    "corpora": ("load_mono", "load_parallel", "parallel_sources"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
