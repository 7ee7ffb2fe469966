"""The package root exports front ends, the value types they take and return, and errors."""

import dataclasses
import enum
import inspect

import fastesm_extract
from fastesm_extract.errors import ExtractError

FRONT_ENDS = {
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
}
ERRORS = {
    "ExtractError",
    "FastaError",
    "InputError",
    "MergeError",
    "ModelLoadError",
    "OutputError",
    "UsageError",
}
CONSTANTS = {"DEFAULT_MODEL", "FAILURE_LOG_NAME"}
INTERNALS = [  # reached through the front ends; free to change
    "Extractor",
    "FailureLog",
    "plan_jobs",
    "save_embeddings_atomic",
    "save_merged_atomic",
    "merge_embeddings",
]


def test_every_export_is_a_front_end_a_value_type_an_error_or_a_constant():
    exported = set(fastesm_extract.__all__)
    assert len(exported) == len(fastesm_extract.__all__)  # no name twice
    for name in exported:
        assert hasattr(fastesm_extract, name), name
    value_types = exported - FRONT_ENDS - ERRORS - CONSTANTS
    for name in value_types:
        kind = getattr(fastesm_extract, name)
        assert dataclasses.is_dataclass(kind) or issubclass(kind, enum.Enum), name
    for name in FRONT_ENDS:
        assert inspect.isfunction(getattr(fastesm_extract, name)) or name == "SplitSource", name
    for name in ERRORS:
        error = getattr(fastesm_extract, name)
        assert issubclass(error, ExtractError) and error.exit_status in (1, 2), name
    for name in CONSTANTS:
        assert isinstance(getattr(fastesm_extract, name), str), name
    assert FRONT_ENDS | ERRORS | CONSTANTS <= exported


def test_internals_are_not_exported_from_the_package_root():
    namespace = vars(fastesm_extract)
    assert [name for name in INTERNALS if name in namespace] == []
    assert [name for name in INTERNALS if name in fastesm_extract.__all__] == []
