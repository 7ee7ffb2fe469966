"""Load a checkpoint once: SDPA attention (verified), dtype and device rules
(float16 on CUDA, float32 on the CPU, never a silent CPU fallback)."""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from fastesm_extract.errors import ModelLoadError
from fastesm_extract.model.hub import ModelSourceError, locate_model, resolve_commit
from fastesm_extract.model.identity import ModelIdentity, identity_of
from fastesm_extract.model.tokens import UNKNOWN_REFUSED, EsmAlphabet, TokenizerMismatchError

DEFAULT_MODEL = "Synthyra/FastESM2_650"
DEFAULT_HIDDEN_SIZE = 1280  # FastESM2_650's; lets finished outputs be checked without loading it
log = logging.getLogger("fastesm_extract")

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for extraction, kept on its device for the whole run."""

    model: torch.nn.Module
    tokenizer: object
    alphabet: EsmAlphabet
    model_id: str
    device: torch.device
    dtype: torch.dtype
    hidden_size: int
    is_demo: bool = False
    revision: str | None = None  # as requested (branch, tag or commit)
    commit_hash: str | None = None  # the commit actually loaded, when the hub tells us
    folder: Path | None = None  # the checkpoint folder it was loaded from, if any
    by_name: bool = False  # loaded by fastesm-extract from a hub ID or folder (not given)

    def identity(self, truncation_seq_length: int) -> ModelIdentity:
        """What this model's outputs are current for (see `identity.identity_of`)."""
        return identity_of(
            self.model_id,
            hidden_size=self.hidden_size,
            truncation_seq_length=truncation_seq_length,
            revision=self.revision,
            commit_hash=self.commit_hash,
            folder=self.folder,
            module=None if self.by_name else self.model,
        )


def resolve_device(device: str | torch.device) -> torch.device:
    """The requested device; CUDA that is not there is an error, never a silent CPU fallback."""
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ModelLoadError(f"unknown device {device!r}: use 'cuda', 'cuda:N' or 'cpu'") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(
            "CUDA is not available on this machine (torch "
            f"{torch.__version__}); pass --device cpu to run on the CPU (much slower)"
        )
    if resolved.type not in ("cuda", "cpu"):
        raise ModelLoadError(f"unsupported device {device!r}: use 'cuda', 'cuda:N' or 'cpu'")
    return resolved


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """float16 on CUDA unless bfloat16/float32 is asked for; float32 on the CPU."""
    if dtype is None or dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    resolved = _DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype
    if resolved not in _DTYPES.values():
        raise ModelLoadError(f"unsupported dtype {dtype!r}: use float16, bfloat16 or float32")
    if device.type == "cpu" and resolved != torch.float32:
        raise ModelLoadError(f"dtype {dtype} is not supported on the CPU: use float32")
    return resolved


def uses_sdpa(model: torch.nn.Module) -> bool:
    """True when the model really runs scaled-dot-product attention.

    FastESM-style remote code exposes `attn_backend` on its config (and its attention
    modules); native transformers models record the choice in `config._attn_implementation`.
    """
    config = model.config
    if hasattr(config, "attn_backend"):
        # Modules hold the resolved backend, a str or an enum member; None on the config
        # means "auto", so then only the modules can tell.
        module_backends = {
            _backend_name(module.attn_backend)
            for module in model.modules()
            if _backend_name(getattr(module, "attn_backend", None)) is not None
        }
        configured = _backend_name(config.attn_backend)
        if configured is None:
            return module_backends == {"sdpa"}
        return configured == "sdpa" and module_backends <= {"sdpa"}
    return getattr(config, "_attn_implementation", None) == "sdpa"


def _backend_name(backend: object) -> str | None:
    value = getattr(backend, "value", backend)  # enum member -> its value
    return value if isinstance(value, str) else None


def _one_line(error: BaseException) -> str:
    """`Type: first line of the message`: errors the user sees stay on one line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def model_tokenizer(model: torch.nn.Module, model_id: str) -> object | None:
    """The model's own `tokenizer` attribute (FastESM loads it lazily, from its checkpoint)."""
    try:
        return getattr(model, "tokenizer", None)
    except Exception as error:  # noqa: BLE001 - the checkpoint's own code: a loading error
        raise ModelLoadError(
            f"cannot load the tokenizer of model {model_id!r}: {_one_line(error)}"
        ) from error


def embedding_rows(model: torch.nn.Module) -> int | None:
    """How many token ids the model can embed: rows of its input embedding matrix (its
    config's `vocab_size` when the module does not say); None when unknown."""
    try:
        return int(model.get_input_embeddings().weight.shape[0])
    except Exception:  # noqa: BLE001 - remote code may not implement it
        size = getattr(model.config, "vocab_size", None)
        return size if isinstance(size, int) else None


def check_vocabulary_fits(model: torch.nn.Module, alphabet: EsmAlphabet, model_id: str) -> None:
    """Raises `ModelLoadError` when the tokenizer gives ids the model has no embedding for
    (e.g. a vocab.txt longer than the config's vocab_size): every batch would fail later,
    as if the device were broken."""
    rows = embedding_rows(model)
    specials = (alphabet.cls_id, alphabet.eos_id, alphabet.pad_id, alphabet.unk_id)
    largest = max(int(alphabet.byte_to_id.max()), *specials)
    if rows is not None and largest >= rows:
        raise ModelLoadError(
            f"model {model_id!r}: its tokenizer does not match its weights: the tokenizer "
            f"gives token ids up to {largest}, but the model's embedding matrix has {rows} "
            "rows (vocabulary of the tokenizer files, e.g. vocab.txt, larger than the "
            "config's vocab_size); use the tokenizer files of this checkpoint"
        )


def checkpoint_tokenizer(model: torch.nn.Module) -> object:
    """The tokenizer of the checkpoint `model` was loaded from (its config's `name_or_path`,
    at the commit it was loaded from when the hub told it), as `AutoTokenizer` loads it."""
    from transformers import AutoTokenizer

    config = model.config
    source = getattr(config, "name_or_path", "") or ""
    commit = getattr(config, "_commit_hash", None)
    revision = commit if isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{40}", commit) else None
    if not source:
        raise ModelLoadError(
            "no tokenizer given, the model has no `tokenizer` attribute and its config does "
            "not say which checkpoint it came from: pass tokenizer="
        )
    try:
        return AutoTokenizer.from_pretrained(source, revision=revision, trust_remote_code=True)
    except Exception as error:  # noqa: BLE001 - missing files, offline hub, its own code
        raise ModelLoadError(
            f"no tokenizer given and the model has no `tokenizer` attribute; the tokenizer of "
            f"its checkpoint {source!r} cannot be loaded ({_one_line(error)}): pass tokenizer="
        ) from error


def prepare_model(
    model: torch.nn.Module, tokenizer: object | None = None, model_id: str | None = None
) -> LoadedModel:
    """Wrap an already loaded model (and tokenizer) after checking it is usable.

    Without `tokenizer`: the model's own `tokenizer` attribute (FastESM), else its
    checkpoint's tokenizer (the checkpoint's tokenizer is the authority).
    """
    config = model.config
    model_id = model_id or getattr(config, "name_or_path", "") or type(model).__name__
    if tokenizer is None:
        tokenizer = model_tokenizer(model, model_id)
    if tokenizer is None:
        tokenizer = checkpoint_tokenizer(model)
    if not uses_sdpa(model):
        raise ModelLoadError(
            "the model does not use SDPA attention: load it with attn_implementation='sdpa' "
            "(or attn_backend='sdpa' for FastESM), or let fastesm-extract load it"
        )
    try:
        alphabet = EsmAlphabet.from_tokenizer(tokenizer)
    except TokenizerMismatchError as error:
        raise ModelLoadError(f"model {model_id!r}: {error}") from error
    except Exception as error:  # noqa: BLE001 - the checkpoint's own code: a loading error
        raise ModelLoadError(
            f"model {model_id!r}: its tokenizer failed while being checked: {_one_line(error)}"
        ) from error
    check_vocabulary_fits(model, alphabet, model_id)
    if alphabet.unknown == UNKNOWN_REFUSED:
        log.info(
            "model %s: its tokenizer refuses letters outside the vocabulary (strict, as "
            "fair-esm): records holding them fail as invalid_character",
            model_id,
        )
    parameter = next(model.parameters())
    return LoadedModel(
        model=model.eval(),
        tokenizer=tokenizer,
        alphabet=alphabet,
        model_id=model_id,
        device=parameter.device,
        dtype=parameter.dtype,
        hidden_size=int(config.hidden_size),
        is_demo=bool(getattr(config, "fastesm_extract_demo", False)),
    )


def _flat(error: BaseException) -> str:
    """An error's whole message on one line, without a final period (ours follows)."""
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip()).rstrip(".")


def load_model(
    model_id: str = DEFAULT_MODEL,
    *,
    revision: str | None = None,
    device: str | torch.device = "cuda",
    dtype: str | torch.dtype | None = None,
) -> LoadedModel:
    """Load `model_id` (hub ID or local folder) with SDPA attention on `device`."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    resolved_device = resolve_device(device)
    resolved_dtype = resolve_dtype(dtype, resolved_device)
    try:
        source = locate_model(model_id, revision)  # fails at once when nothing can load it
    except ModelSourceError as error:
        raise ModelLoadError(str(error)) from None
    commit_hash = source.cached_commit or (
        None if source.local_files_only else resolve_commit(model_id, revision)
    )
    # Load every file (config, code, weights) from that one commit when it is known.
    revision_to_load = commit_hash or revision
    local = {"local_files_only": True} if source.local_files_only else {}
    try:
        config = AutoConfig.from_pretrained(
            model_id, revision=revision_to_load, trust_remote_code=True, **local
        )
        options: dict = {
            "revision": revision_to_load,
            "trust_remote_code": True,
            "dtype": resolved_dtype,
            **local,
        }
        if hasattr(config, "attn_backend"):  # FastESM remote code chooses attention this way
            config.attn_backend = "sdpa"
        else:
            options["attn_implementation"] = "sdpa"
        if getattr(config, "model_type", None) == "esm":
            options["add_pooling_layer"] = False  # unused, and absent from ESM checkpoints
        model = AutoModel.from_pretrained(model_id, config=config, **options)
        tokenizer = model_tokenizer(model, model_id)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(
                model_id, revision=revision_to_load, trust_remote_code=True, **local
            )
    except ModelLoadError:
        raise
    except (OSError, ValueError, ImportError, KeyError) as error:
        raise ModelLoadError(
            f"cannot load model {model_id!r}"
            + (f" at revision {revision!r}" if revision else "")
            + f": {_flat(error)}. "
            + (
                "Check the checkpoint folder is complete."
                if source.folder
                else "Offline? Use a local checkpoint folder, or download the model where there "
                "is internet (hf download) and run with HF_HUB_OFFLINE=1."
            )
        ) from error
    except Exception as error:  # noqa: BLE001 - the checkpoint's own code raised it
        raise ModelLoadError(
            f"cannot load model {model_id!r}"
            + (f" at revision {revision!r}" if revision else "")
            + f": its code raised {_one_line(error)}"
        ) from error
    model = model.to(resolved_device).eval()
    loaded = dataclasses.replace(
        prepare_model(model, tokenizer, model_id),
        revision=revision,
        commit_hash=commit_hash,
        folder=Path(model_id).expanduser().resolve() if source.folder else None,
        by_name=True,
    )
    if loaded.is_demo:
        log.warning(
            "model %s is a DEMO checkpoint with RANDOM weights: embeddings are "
            "meaningless, for trying the tool only",
            model_id,
        )
    return loaded
