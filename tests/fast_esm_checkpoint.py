"""Build a tiny local FastESM-shaped checkpoint folder loadable with ``trust_remote_code``."""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import torch

REMOTE_DIR = Path(__file__).parent / "fast_esm_remote"
MODELING_FILE = REMOTE_DIR / "modeling_fast_esm.py"
AUTO_MAP = {
    "AutoConfig": "modeling_fast_esm.FastEsmConfig",
    "AutoModel": "modeling_fast_esm.FastEsmModel",
}
# Keys a transformers.EsmModel state dict has that the FastESM stand-in does not need.
_IGNORABLE_PREFIXES = ("contact_head.", "pooler.", "rotary_embeddings.", "embeddings.position_ids")


def load_modeling_module() -> ModuleType:
    """Import the stand-in modeling file directly (it is not a package on sys.path)."""
    spec = importlib.util.spec_from_file_location("fast_esm_remote_modeling", MODELING_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_fast_esm_checkpoint(
    out_dir: str | Path,
    *,
    num_layers: int = 2,
    hidden_size: int = 64,
    num_heads: int = 4,
    seed: int = 0,
    attn_backend: str | None = "eager",
    strict_tokenizer: bool = True,
    state_dict: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write config.json (with ``auto_map``), the modeling file, weights and vocab to ``out_dir``.

    ``attn_backend`` defaults to "eager" so tests can prove a loader forces SDPA. The model's
    tokenizer is strict (FastEsmTokenizer, as published today) unless ``strict_tokenizer`` is
    False (the earlier, lenient EsmTokenizer). A given ``state_dict`` may come from
    ``transformers.EsmModel``; its extra keys are dropped.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    modeling = load_modeling_module()
    config = modeling.FastEsmConfig(
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=4 * hidden_size,
        attn_backend=attn_backend,
        strict_tokenizer=strict_tokenizer,
    )
    config.auto_map = dict(AUTO_MAP)
    config.architectures = ["FastEsmModel"]

    # Local RNG so building a checkpoint does not disturb the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = modeling.FastEsmModel(config)
    if state_dict is not None:
        _load_strict(model, state_dict)

    model.save_pretrained(out)
    shutil.copyfile(MODELING_FILE, out / MODELING_FILE.name)
    # vocab.txt + tokenizer_config.json: the model's tokenizer property loads from these, and
    # AutoTokenizer.from_pretrained(out) works too (as a plain EsmTokenizer).
    modeling.build_esm_tokenizer().save_pretrained(out)
    _check_written_config(out)
    return out


def _load_strict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    kept = {k: v for k, v in state_dict.items() if not k.startswith(_IGNORABLE_PREFIXES)}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    if missing or unexpected:
        raise ValueError(f"state_dict mismatch: missing={missing}, unexpected={unexpected}")


def _check_written_config(out: Path) -> None:
    written = json.loads((out / "config.json").read_text())
    if written.get("model_type") != "fast_esm" or written.get("auto_map") != AUTO_MAP:
        raise RuntimeError(f"unexpected config.json written to {out}: {written}")
