"""The package root exports front ends, the value types they take and return, and errors."""

import dataclasses
import enum
import inspect

import fastesm_extract
from fastesm_extract.errors import ExtractError

JOB_SOURCES = {"SplitSource"}  # classes a user builds and hands to `run`, like `file_jobs`
INTERNALS = [  # reached through the front ends; free to change
    "Extractor",
    "FailureLog",
    "plan_jobs",
    "save_embeddings_atomic",
    "save_merged_atomic",
    "merge_embeddings",
]


def kind_of(name: str) -> str:
    value = getattr(fastesm_extract, name)
    if inspect.isfunction(value) or name in JOB_SOURCES:
        return "front end"
    if isinstance(value, type) and issubclass(value, ExtractError):
        return "error"
    if dataclasses.is_dataclass(value) or (
        isinstance(value, type) and issubclass(value, enum.Enum)
    ):
        return "value type"
    if isinstance(value, str) and name.isupper():
        return "constant"
    return f"something else: {value!r}"


def test_every_export_is_a_front_end_a_value_type_an_error_or_a_constant():
    kinds = {name: kind_of(name) for name in fastesm_extract.__all__}
    assert len(kinds) == len(fastesm_extract.__all__)  # no name twice
    assert {name: kind for name, kind in kinds.items() if kind.startswith("something")} == {}
    front_ends = {name for name, kind in kinds.items() if kind == "front end"}
    assert {"extract_fast_esm", "extract_files", "extract_split", "embed_sequences", "run"} <= (
        front_ends
    )
    assert {"merge_files", "merge_folder", "split_fasta", "verify_output"} <= front_ends
    assert "audit_outputs" in front_ends
    value_types = {name for name, kind in kinds.items() if kind == "value type"}
    assert {"AuditReport", "FileAudit", "RowCheck", "TruncatedRecord"} <= value_types
    errors = {name for name, kind in kinds.items() if kind == "error"}
    assert {
        "ExtractError",
        "InputError",
        "ModelLoadError",
        "FastaError",
        "OutputError",
        "StaleOutputError",
    } <= errors
    for name in errors:  # each carries the exit status the command line ends with
        assert getattr(fastesm_extract, name).exit_status in (1, 2), name


def test_internals_are_not_exported_from_the_package_root():
    namespace = vars(fastesm_extract)
    assert [name for name in INTERNALS if name in namespace] == []
    assert [name for name in INTERNALS if name in fastesm_extract.__all__] == []
