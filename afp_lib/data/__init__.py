"""Data access: one code path for the Hugging Face hub and the offline mirror ($AFP_DATA_MIRROR).

The names below are imported on first use (PEP 562): `hub` and `corpora` import `datasets` (seconds), which
`python -m afp_lib data check --help` and the other commands' argument parsing do not need."""
from ..config import lazy_exports

_EXPORTS = {
    "hub": ("DataError", "DatasetNotFound", "HubUnavailable", "SCHEMAS", "load_split", "read_jsonl"),
    "corpora": ("load_mono", "load_parallel", "parallel_sources"),
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
