"""Vision Council DCS ("OMA") job records: a lossless parser and writer (`records`) and the
typed job fields (`job`). Importable alone, like every driver."""

from .job import EYES, VENDOR_PREFIX, EyeFields, JobFields, prism_angle, prism_base, read_job
from .records import MAX_FILE_BYTES, DcsError, Field, Record, TraceBlock, parse, write

__all__ = [
    "EYES",
    "MAX_FILE_BYTES",
    "VENDOR_PREFIX",
    "DcsError",
    "EyeFields",
    "Field",
    "JobFields",
    "Record",
    "TraceBlock",
    "parse",
    "prism_angle",
    "prism_base",
    "read_job",
    "write",
]
