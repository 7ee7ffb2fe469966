"""A reference implementation for `audit --reference esm`: transformers' own `EsmModel`
with the weights of the checkpoint a run used, independent of the checkpoint's remote code.

FastESM2_650 is ESM2-shaped: its remote code keeps `EsmModel`'s parameter names (under an
`esm.` prefix, which `from_pretrained` strips as `EsmModel`'s base-model prefix), so the same
weight files load into both. A checkpoint whose weights do not all map is refused, never
filled with random values.
"""

from __future__ import annotations

import dataclasses

from fastesm_extract.errors import ModelLoadError
from fastesm_extract.model.load import LoadedModel

REFERENCES = ("esm",)
# The ESM2 settings of a FastESM config that `EsmConfig` needs; FastESM2's own config has
# them all, a checkpoint without them gets ESM2's values below.
_ESM_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "layer_norm_eps",
    "token_dropout",
    "mask_token_id",
    "pad_token_id",
    "position_embedding_type",
    "emb_layer_norm_before",
)
_ESM2 = {"position_embedding_type": "rotary", "emb_layer_norm_before": False, "hidden_act": "gelu"}
# Computed, not learned (rotary frequencies, position ids), or heads a mean embedding never
# uses: their absence from a checkpoint changes nothing.
_NOT_WEIGHTS = ("inv_freq", "position_ids")
_UNUSED_HEADS = ("contact_head.", "pooler.")


def esm_config_of(config: object):
    """An `EsmConfig` of the checkpoint's architecture (its own when it is native ESM)."""
    from transformers import EsmConfig

    values = config.to_dict()  # type: ignore[attr-defined]
    if values.get("model_type") == "esm":
        return EsmConfig.from_dict(values)
    kept = {key: values[key] for key in _ESM_FIELDS if values.get(key) is not None}
    return EsmConfig(**{**_ESM2, **kept})


def _matters(key: str) -> bool:
    return not key.endswith(_NOT_WEIGHTS) and not key.startswith(_UNUSED_HEADS)


def load_esm_reference(loaded: LoadedModel) -> LoadedModel:
    """`loaded` with its model replaced by transformers' `EsmModel` (eager attention, the
    plainest implementation) holding the same checkpoint's weights, on the same device and
    dtype. Raises `ModelLoadError` when the checkpoint's weights do not map onto it."""
    from transformers import EsmModel
    from transformers.utils import logging as transformers_logging

    config = loaded.model.config
    source = getattr(config, "name_or_path", "") or loaded.model_id
    revision = loaded.commit_hash or loaded.revision
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # its load report: we check it ourselves
    try:
        model, info = EsmModel.from_pretrained(
            source,
            config=esm_config_of(config),
            revision=revision,
            add_pooling_layer=False,
            attn_implementation="eager",
            dtype=loaded.dtype,
            output_loading_info=True,
        )
    except Exception as error:  # noqa: BLE001 - config or weights it cannot take
        raise ModelLoadError(
            f"--reference esm: transformers' EsmModel cannot load {source!r}: "
            f"{type(error).__name__}: {error}"
        ) from error
    finally:
        transformers_logging.set_verbosity(verbosity)
    missing = sorted(key for key in info["missing_keys"] if _matters(key))
    mismatched = sorted(str(key) for key in info.get("mismatched_keys") or ())
    if missing or mismatched:
        shown = ", ".join((missing + mismatched)[:4])
        raise ModelLoadError(
            f"--reference esm: the weights of {source!r} do not map onto transformers' "
            f"EsmModel ({len(missing) + len(mismatched)} parameters missing or of another "
            f"shape: {shown}); this checkpoint is not ESM2-shaped, audit it without --reference"
        )
    model = model.to(loaded.device).eval()
    return dataclasses.replace(loaded, model=model, model_id=f"EsmModel({source})")
