"""The model a single Python call embeds with (`extract_fast_esm`, `embed_sequences`): the
one given, or one loaded by name, once per process and device."""

from __future__ import annotations

import torch

from fastesm_extract.model.load import DEFAULT_MODEL, LoadedModel, resolve_device
from fastesm_extract.running.config import ModelSpec
from fastesm_extract.settings import DEFAULT_DEVICE


class ModelsByName:
    """Models loaded by name for calls that pass none: a loop of calls loads one once.

    One at a time: asking for another name or device frees the previous one."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, str], LoadedModel] = {}

    def __call__(self, name: str = DEFAULT_MODEL, device: str = DEFAULT_DEVICE) -> LoadedModel:
        key = (name, str(device))
        if key not in self._loaded:
            self._loaded.clear()
            self._loaded[key] = ModelSpec(name).load(str(device))
        return self._loaded[key]

    def loaded(self, name: str, device: str) -> LoadedModel | None:
        """The model if it is loaded already; never loads it."""
        return self._loaded.get((name, str(device)))

    def cache_clear(self) -> None:
        self._loaded.clear()


models_by_name = ModelsByName()


def model_for_call(
    model: str | torch.nn.Module | LoadedModel | None,
    tokenizer: object | None = None,
    device: str | None = None,
) -> LoadedModel:
    """`model` ready to embed with: a name (None: FastESM2_650) is loaded on `device` (default
    "cuda", never a silent CPU run) once per process; a module or `LoadedModel` stays where it
    is, and a `device` that names another place is an error, not a silent move."""
    if model is None or isinstance(model, str):
        return models_by_name(model or DEFAULT_MODEL, device or DEFAULT_DEVICE)
    loaded = ModelSpec(model, tokenizer).load(device or DEFAULT_DEVICE)
    if device is not None and not same_device(resolve_device(device), loaded.device):
        raise ValueError(
            f"device={device!r}, but the model given is on {loaded.device}: move it first "
            "(model.to(device)), or give the model by name to load it there"
        )
    return loaded


def same_device(asked: torch.device, actual: torch.device) -> bool:
    """`cuda` means the current CUDA device; `cuda:N` that one exactly."""
    if asked.type != actual.type:
        return False
    if asked.index is None or actual.index is None:
        current = torch.cuda.current_device() if asked.type == "cuda" else None
        return (asked.index if asked.index is not None else current) == (
            actual.index if actual.index is not None else current
        )
    return asked.index == actual.index
