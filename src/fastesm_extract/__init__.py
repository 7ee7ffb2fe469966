"""fastesm-extract: FastESM2_650 protein embeddings as VirNucPro `_ESM.pt` files."""

from .api import extract_fast_esm, extract_files
from .failures import FAILURE_LOG_NAME, FailureLog, RecordFailure
from .fasta import FastaError, ProteinRecord, read_fasta
from .jobs import FileJob, InputError, plan_jobs
from .model import DEFAULT_MODEL, LoadedModel, ModelLoadError, load_model, prepare_model
from .pipeline import ExtractionSettings, Extractor, FileResult, RunSummary
from .store import OutputError, load_embeddings, save_embeddings_atomic

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
    "ModelLoadError",
    "OutputError",
    "ProteinRecord",
    "RecordFailure",
    "RunSummary",
    "extract_fast_esm",
    "extract_files",
    "load_embeddings",
    "load_model",
    "plan_jobs",
    "prepare_model",
    "read_fasta",
    "save_embeddings_atomic",
]
