"""Data access: one code path for the Hugging Face hub and the offline mirror ($AFP_DATA_MIRROR)."""
from .hub import DataError, DatasetNotFound, HubUnavailable, SCHEMAS, load_split, read_jsonl  # noqa: F401
from .corpora import load_mono, load_parallel, parallel_sources  # noqa: F401
