"""fastesm-extract: FastESM2_650 protein embeddings as VirNucPro `_ESM.pt` files."""

from .api import extract_fast_esm, extract_files, extract_split
from .config import ExtractionSettings, ModelSpec, RunConfig, resolve_config
from .failures import FailureLog, RecordFailure
from .fasta import FastaError, ProteinRecord, read_fasta
from .jobs import FileJob, InputError, plan_jobs
from .layout import FAILURE_LOG_NAME
from .merge import (
    MergeError,
    MergeOutcome,
    MergeResult,
    merge_embeddings,
    merge_files,
    save_merged_atomic,
)
from .merge_folder import merge_folder
from .model import DEFAULT_MODEL, LoadedModel, ModelLoadError, load_model, prepare_model
from .pipeline import Extractor
from .runner import run
from .sequences import SequenceEmbeddings, embed_sequences
from .shards import Shard, shard_from_environment
from .sources import SplitSource, file_jobs
from .split import SplitPart, split_fasta
from .store import OutputError, load_embeddings, save_embeddings_atomic
from .summary import FileResult, RunSummary, Status
from .verify import VerifyReport, verify_output

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "FAILURE_LOG_NAME",
    "ExtractionSettings",
    "Extractor",
    "FailureLog",
    "FastaError",
    "FileJob",
    "FileResult",
    "InputError",
    "LoadedModel",
    "MergeError",
    "MergeOutcome",
    "MergeResult",
    "ModelSpec",
    "ModelLoadError",
    "OutputError",
    "ProteinRecord",
    "RecordFailure",
    "RunConfig",
    "RunSummary",
    "SequenceEmbeddings",
    "Shard",
    "Status",
    "SplitPart",
    "SplitSource",
    "VerifyReport",
    "embed_sequences",
    "extract_fast_esm",
    "extract_files",
    "extract_split",
    "file_jobs",
    "load_embeddings",
    "load_model",
    "merge_embeddings",
    "merge_files",
    "merge_folder",
    "plan_jobs",
    "prepare_model",
    "read_fasta",
    "resolve_config",
    "run",
    "save_embeddings_atomic",
    "save_merged_atomic",
    "shard_from_environment",
    "split_fasta",
    "verify_output",
]
