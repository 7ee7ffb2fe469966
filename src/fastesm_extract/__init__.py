"""fastesm-extract: FastESM2_650 protein embeddings as VirNucPro `_ESM.pt` files.

The public surface is what a user calls, what those calls take and return, and the errors
they raise. The rest (the engine in `pipeline`, the writers in `store` and `merge`, the job
planner) is reached through these and may change between versions.
"""

from .api import extract_fast_esm, extract_files, extract_split
from .config import ExtractionSettings, ModelSpec, RunConfig, resolve_config
from .errors import (
    ExtractError,
    FastaError,
    InputError,
    MergeError,
    ModelLoadError,
    OutputError,
    UsageError,
)
from .failures import RecordFailure
from .fasta import ProteinRecord, read_fasta
from .handoff import FileJob, FileResult, Status
from .layout import FAILURE_LOG_NAME
from .merge import MergeOutcome, MergeResult, merge_files
from .merge_folder import merge_folder
from .model import DEFAULT_MODEL, LoadedModel, load_model, prepare_model
from .runner import run
from .sequences import SequenceEmbeddings, embed_sequences
from .shards import Shard, shard_from_environment
from .sources import SplitSource, file_jobs
from .split import SplitPart, split_fasta
from .store import load_embeddings
from .summary import RunSummary
from .verify import VerifyReport, verify_output

__version__ = "0.1.0"

__all__ = [
    # front ends: what a user calls (file_jobs and SplitSource are job sources for `run`)
    "embed_sequences",
    "extract_fast_esm",
    "extract_files",
    "extract_split",
    "file_jobs",
    "load_embeddings",
    "load_model",
    "merge_files",
    "merge_folder",
    "prepare_model",
    "read_fasta",
    "resolve_config",
    "run",
    "shard_from_environment",
    "split_fasta",
    "SplitSource",
    "verify_output",
    # value types the front ends take and return
    "ExtractionSettings",
    "FileJob",
    "FileResult",
    "LoadedModel",
    "MergeOutcome",
    "MergeResult",
    "ModelSpec",
    "ProteinRecord",
    "RecordFailure",
    "RunConfig",
    "RunSummary",
    "SequenceEmbeddings",
    "Shard",
    "SplitPart",
    "Status",
    "VerifyReport",
    # errors, each carrying the exit status the command line ends with
    "ExtractError",
    "FastaError",
    "InputError",
    "MergeError",
    "ModelLoadError",
    "OutputError",
    "UsageError",
    # constants
    "DEFAULT_MODEL",
    "FAILURE_LOG_NAME",
]
