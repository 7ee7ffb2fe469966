"""fastesm-extract: FastESM2_650 protein embeddings as VirNucPro `_ESM.pt` files.

The public surface is what a user calls, what those calls take and return, and the errors
they raise. The rest (the engine in `pipeline`, the writers in `store` and `merge`, the job
planner) is reached through these and may change between versions.
"""

from fastesm_extract.api.files import extract_fast_esm, extract_files, extract_split
from fastesm_extract.api.sequences import SequenceEmbeddings, embed_sequences
from fastesm_extract.disk.failures import RecordFailure
from fastesm_extract.disk.fasta import ProteinRecord, read_fasta
from fastesm_extract.disk.layout import FAILURE_LOG_NAME
from fastesm_extract.disk.split import SplitPart, split_fasta
from fastesm_extract.disk.store import load_embeddings
from fastesm_extract.disk.verify import VerifyReport, verify_output
from fastesm_extract.errors import (
    ExtractError,
    FastaError,
    InputError,
    MergeError,
    ModelLoadError,
    OutputError,
    StaleOutputError,
    UsageError,
)
from fastesm_extract.merge.folders import MergeOutcome, merge_folder
from fastesm_extract.merge.merged_file import MergeResult
from fastesm_extract.merge.pairs import merge_files
from fastesm_extract.model.load import DEFAULT_MODEL, LoadedModel, load_model, prepare_model
from fastesm_extract.results import FileJob, FileResult, RunSummary, Status, TruncatedRecord
from fastesm_extract.running.audit import AuditReport, FileAudit, RowCheck, audit_outputs
from fastesm_extract.running.config import ModelSpec, RunConfig, resolve_config
from fastesm_extract.running.runner import run
from fastesm_extract.running.shards import Shard, shard_from_environment
from fastesm_extract.running.sources import SplitSource, file_jobs
from fastesm_extract.settings import (
    ExtractionSettings,
    __version__,  # noqa: F401
)

__all__ = [
    # front ends: what a user calls (file_jobs and SplitSource are job sources for `run`)
    "audit_outputs",
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
    "AuditReport",
    "ExtractionSettings",
    "FileAudit",
    "FileJob",
    "FileResult",
    "LoadedModel",
    "MergeOutcome",
    "MergeResult",
    "ModelSpec",
    "ProteinRecord",
    "RecordFailure",
    "RunConfig",
    "RowCheck",
    "RunSummary",
    "SequenceEmbeddings",
    "Shard",
    "SplitPart",
    "Status",
    "TruncatedRecord",
    "VerifyReport",
    # errors, each carrying the exit status the command line ends with
    "ExtractError",
    "FastaError",
    "InputError",
    "MergeError",
    "ModelLoadError",
    "OutputError",
    "StaleOutputError",
    "UsageError",
    # constants
    "DEFAULT_MODEL",
    "FAILURE_LOG_NAME",
]
