"""One run configuration, built and resolved once, for the CLI, the Python API and workers.

The plain settings and their defaults are in `settings.py` (a leaf: no model, no file
system); this module resolves them against the world: devices, environment shards, the
failure log's folder, the model. `resolve_config` turns what a front end was given (model
name or object, `device` or `devices`, shard, settings, failure log) into a frozen
`RunConfig`; everything below it (sources, runner, pipeline, worker processes) reads that
object and nothing else.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import torch
from typing_extensions import Unpack

from fastesm_extract.disk.layout import FAILURE_LOG_NAME
from fastesm_extract.errors import InputError, ModelLoadError
from fastesm_extract.model.load import DEFAULT_MODEL, LoadedModel, load_model, prepare_model
from fastesm_extract.running.shards import Shard, parse_shard, shard_from_environment
from fastesm_extract.running.sources import check_failure_log
from fastesm_extract.settings import (
    DEFAULT_DEVICE,
    DEFAULT_TOKS_PER_BATCH,
    DEFAULT_TRUNCATION_SEQ_LENGTH,
    ExtractionSettings,
)


@dataclass(frozen=True)
class ModelSpec:
    """The model of a run: a hub ID or folder (loaded per device), a preloaded Hugging Face
    module (with its tokenizer), or a `LoadedModel`. Picklable when given by name."""

    model: str | torch.nn.Module | LoadedModel = DEFAULT_MODEL
    tokenizer: object | None = None
    revision: str | None = None
    dtype: str | None = None

    @property
    def by_name(self) -> bool:
        return isinstance(self.model, str)

    def load(self, device: str) -> LoadedModel:
        """The model ready on `device` (a module or `LoadedModel` stays where it is)."""
        if isinstance(self.model, LoadedModel):
            return self.model
        if isinstance(self.model, str):
            return load_model(self.model, revision=self.revision, device=device, dtype=self.dtype)
        return prepare_model(self.model, self.tokenizer)


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs besides its jobs; see `resolve_config`."""

    model: ModelSpec = field(default_factory=ModelSpec)
    devices: tuple[str, ...] = (DEFAULT_DEVICE,)  # one worker process each when several
    shard: Shard | None = None
    settings: ExtractionSettings = field(default_factory=ExtractionSettings)
    failure_log: Path = Path(FAILURE_LOG_NAME)
    show_progress: bool = True


def parse_devices(text: str) -> list[str]:
    """`"all"` (every visible GPU) or a comma list such as `"cuda:0,cuda:1"` / `"cpu,cpu"`."""
    if text.strip() == "all":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ModelLoadError("--devices all: no CUDA device is visible")
        return [f"cuda:{index}" for index in range(count)]
    devices = [part.strip() for part in text.split(",") if part.strip()]
    if not devices:
        raise InputError("--devices: give e.g. cuda:0,cuda:1 or all")
    return check_devices(devices)


def check_devices(devices: list[str]) -> list[str]:
    """`devices` unchanged when each names a CUDA device or the CPU; InputError otherwise."""
    for device in devices:
        try:
            kind = torch.device(device).type
        except (RuntimeError, TypeError):
            kind = None
        if kind not in ("cuda", "cpu"):
            raise InputError(
                f"unknown device {device!r}: use cuda, cuda:N or cpu (several: --devices "
                "cuda:0,cuda:1)"
            )
    return devices


def device_for_shard(device: str, shard: Shard | None) -> str:
    """torchrun starts one rank per GPU of a node: the default "cuda" becomes the rank's
    `cuda:LOCAL_RANK`; any other device is kept as asked."""
    if shard is not None and shard.local_rank is not None and device == DEFAULT_DEVICE:
        return f"cuda:{shard.local_rank}"
    return device


class RunOptions(TypedDict, total=False):
    """The keywords of a run, listed once: `resolve_config` takes them, and `extract_files`
    and `extract_split` pass them on (an IDE shows them through `Unpack`)."""

    model: str | torch.nn.Module | LoadedModel  # hub ID, folder, module or LoadedModel
    tokenizer: object | None  # a module's tokenizer (default: its own, else its checkpoint's)
    revision: str | None  # hub branch, tag or commit
    dtype: str | None  # float16 (CUDA default), bfloat16 or float32 (the CPU's)
    device: str  # "cuda" (default), "cuda:N" or "cpu"
    devices: str | Sequence[str] | None  # several: one worker each ("all", "cuda:0,cuda:1")
    shard: Shard | str | None  # this share of the files ("K/N")
    toks_per_batch: int  # padded-token budget of a batch (2048)
    truncation_seq_length: int  # residues kept per record (1024)
    overwrite: bool  # recompute every output
    redo_stale: bool  # rebuild outputs of another model or truncation
    accept_invalid: bool  # records failed for an input reason do not fail the run
    accept_stale: bool  # outputs of another model or truncation do not fail the run
    failure_log: str | Path | None  # default: extraction_failures.log in the output folder
    show_progress: bool  # a progress bar and batch logs
    compile: bool  # the forward through torch.compile
    compile_cache: str | Path | None  # the folder of its on-disk caches


def options_from(given: object, **overrides: object) -> RunOptions:
    """The run's keywords from the attributes (the command line's arguments) or entries (a
    function's parameters) of the same names, so that no front end lists them again;
    `overrides` win."""
    values = given if isinstance(given, Mapping) else vars(given)
    options = {name: values[name] for name in RunOptions.__annotations__ if name in values}
    return {**options, **overrides}  # type: ignore[return-value]


_DEFAULTS: RunOptions = {
    "model": DEFAULT_MODEL,
    "device": DEFAULT_DEVICE,
    "toks_per_batch": DEFAULT_TOKS_PER_BATCH,
    "truncation_seq_length": DEFAULT_TRUNCATION_SEQ_LENGTH,
    "show_progress": True,
}


def resolve_config(
    *,
    environ: Mapping[str, str] | None = None,
    log_dir: str | Path | None = None,
    **options: Unpack[RunOptions],
) -> RunConfig:
    """The one place front-end arguments become a `RunConfig`.

    `devices` (a list, or the CLI's text: `"cuda:0,cuda:1"`, `"all"`) wins over `device`.
    `shard` is a `Shard` or `"K/N"`; without one, a Slurm array task or torchrun rank in
    `environ` (the CLI passes `os.environ`) gives it, and a torchrun rank puts the default
    "cuda" on its own GPU. The failure log defaults to `log_dir` (the output folder), else
    the current folder. `compile` runs the forward through torch.compile, its compiled
    artifacts cached in `compile_cache` (a folder runs and workers share; default torch's
    own). Raises `InputError` for a bad shard or device, a folder as failure log, or
    `compile_cache` without `compile` or not a folder of one's own (`compile_cache_folder`);
    `ModelLoadError` for `"all"` without a GPU;
    `ValueError` for several devices with a model not given by name (each worker loads its
    own).
    """
    if unknown := sorted(set(options) - set(RunOptions.__annotations__)):
        raise TypeError(f"unknown option(s): {', '.join(unknown)}")
    given: dict = {**_DEFAULTS, **options}
    model, device, devices = given["model"], given["device"], given.get("devices")
    shard, compile, compile_cache = (
        given.get("shard"),
        given.get("compile", False),
        given.get("compile_cache"),
    )
    if isinstance(shard, str):
        shard = parse_shard(shard)
    elif shard is None and environ is not None:
        shard = shard_from_environment(environ)
    if isinstance(devices, str):
        chosen = parse_devices(devices)
    else:
        chosen = check_devices(list(devices) if devices else [device_for_shard(device, shard)])
    spec = ModelSpec(model, given.get("tokenizer"), given.get("revision"), given.get("dtype"))
    if len(chosen) > 1 and not spec.by_name:
        raise ValueError("several devices need the model by name: each worker loads its own")
    folder = Path(log_dir) if log_dir is not None else Path.cwd()
    failure_log = given.get("failure_log")
    log_path = Path(failure_log) if failure_log is not None else folder / FAILURE_LOG_NAME
    check_failure_log(log_path)
    if compile_cache is not None and not compile:
        raise InputError("--compile-cache (compile_cache) needs --compile (compile=True)")
    settings = ExtractionSettings(
        toks_per_batch=given["toks_per_batch"],
        truncation_seq_length=given["truncation_seq_length"],
        overwrite=given.get("overwrite", False),
        redo_stale=given.get("redo_stale", False),
        accept_invalid=given.get("accept_invalid", False),
        accept_stale=given.get("accept_stale", False),
        compile=compile,
        compile_cache=compile_cache_folder(compile_cache) if compile_cache else None,
    )
    return RunConfig(spec, tuple(chosen), shard, settings, log_path, given["show_progress"])


def compile_cache_folder(folder: str | Path) -> str:
    """`folder`, resolved, once checked fit to load compiled code from: a folder (or none
    yet), owned by this user and not writable by all without the sticky bit; else
    `InputError`, before any model loads. Torch loads and runs the code it finds there, so
    anyone who can write into it could run code as this user."""
    path = Path(folder).expanduser().resolve()
    try:
        status = path.stat()
    except FileNotFoundError:
        return str(path)  # made by this run, as its own
    except OSError as error:
        raise InputError(f"--compile-cache {path}: {error.strerror or error}") from error
    if not stat.S_ISDIR(status.st_mode):
        raise InputError(f"--compile-cache {path} is a file: give a folder (made if missing)")
    if status.st_uid != os.geteuid():
        raise InputError(
            f"--compile-cache {path} is owned by another user (uid {status.st_uid}): torch "
            "runs the compiled code it finds there; give a folder of your own"
        )
    if status.st_mode & stat.S_IWOTH and not status.st_mode & stat.S_ISVTX:
        raise InputError(
            f"--compile-cache {path} is writable by every user: torch runs the compiled code "
            f"it finds there; give a folder of your own (or `chmod o-w {path}`)"
        )
    return str(path)
