"""The local FastESM stand-in behaves like the published remote-code model and like ESM-2."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import transformers
from fast_esm_checkpoint import build_fast_esm_checkpoint, load_modeling_module
from torch import nn

SEQUENCES = ["MKTLLVAGGE", "MK<mask>ELW", "ACDEFGHIKLMNPQRSTVWY"]


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # HF_HUB_OFFLINE is read when huggingface_hub is imported, so the env var alone proves
    # nothing once transformers is loaded; refusing socket connections does.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise OSError("network access attempted during an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def _esm_reference_config(attn_implementation: str = "sdpa") -> transformers.EsmConfig:
    return transformers.EsmConfig(
        vocab_size=33,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=256,
        pad_token_id=1,
        mask_token_id=32,
        layer_norm_eps=1e-5,
        position_embedding_type="rotary",
        token_dropout=True,
        emb_layer_norm_before=False,
        attn_implementation=attn_implementation,
    )


def _randomise(model: nn.Module, seed: int) -> None:
    """Larger-than-init random weights, so a wrong LayerNorm/bias/rotary would show."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=gen)
            if "LayerNorm" in name or "layer_norm" in name:
                param.copy_(1.0 + 0.1 * noise if name.endswith("weight") else 0.1 * noise)
            else:
                param.copy_(0.2 * noise)


def _attn_backends(model: nn.Module) -> set[str]:
    return {m.attn_backend for m in model.modules() if hasattr(m, "attn_backend")}


def _load(folder: Path, **kwargs: object) -> nn.Module:
    return transformers.AutoModel.from_pretrained(folder, trust_remote_code=True, **kwargs).eval()


def test_loads_offline_with_tokenizer(tmp_path: Path, offline: None) -> None:
    folder = build_fast_esm_checkpoint(tmp_path / "fast_esm")
    model = _load(folder)

    assert model.config.model_type == "fast_esm"
    assert model.tokenizer("MKTL")["input_ids"] == [0, 20, 15, 11, 4, 2]
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    assert tokenizer("MKTL")["input_ids"] == [0, 20, 15, 11, 4, 2]
    # The checkpoint deliberately stores the non-SDPA backend.
    assert _attn_backends(model) == {"manual"}


@pytest.mark.parametrize("backend", ["sdpa", "manual"])
def test_matches_transformers_esm(tmp_path: Path, backend: str) -> None:
    reference = transformers.EsmModel(_esm_reference_config(), add_pooling_layer=False).eval()
    _randomise(reference, seed=1)
    folder = build_fast_esm_checkpoint(
        tmp_path / "fast_esm", attn_backend=backend, state_dict=reference.state_dict()
    )
    model = _load(folder)
    assert _attn_backends(model) == {backend}

    batch = model.tokenizer(SEQUENCES, padding=True, return_tensors="pt")
    assert (batch["input_ids"] == 32).any(), "batch must exercise token-dropout scaling"
    with torch.no_grad():
        ours = model(**batch).last_hidden_state
        expected = reference(**batch).last_hidden_state

    assert ours.shape == (len(SEQUENCES), batch["input_ids"].shape[1], 64)
    real = batch["attention_mask"].bool()
    assert (ours[real] - expected[real]).abs().max().item() < 1e-5
    # Padding positions carry no information into real tokens: truncating changes nothing.
    short = {k: v[:1, : int(real[0].sum())] for k, v in batch.items()}
    with torch.no_grad():
        alone = model(**short).last_hidden_state
    assert (alone[0] - ours[0, : alone.shape[1]]).abs().max().item() < 1e-5


def test_config_override_switches_to_sdpa(tmp_path: Path, offline: None) -> None:
    folder = build_fast_esm_checkpoint(tmp_path / "fast_esm")  # stored as "manual"
    config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=True)
    assert config.attn_backend == "manual"
    config.attn_backend = "sdpa"

    model = _load(folder, config=config)

    backends = [m.attn_backend for m in model.modules() if hasattr(m, "attn_backend")]
    assert len(backends) == 2  # one self-attention module per layer
    assert set(backends) == {"sdpa"}
    assert model.encoder.layer[0].attention.self.attn_backend == "sdpa"


def test_float16_load(tmp_path: Path) -> None:
    folder = build_fast_esm_checkpoint(tmp_path / "fast_esm", attn_backend="sdpa")
    model16 = _load(folder, dtype=torch.float16)
    model32 = _load(folder)
    assert {p.dtype for p in model16.parameters()} == {torch.float16}

    batch = model16.tokenizer(SEQUENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        out16 = model16(**batch).last_hidden_state
        out32 = model32(**batch).last_hidden_state
    assert out16.dtype == torch.float16
    real = batch["attention_mask"].bool()
    assert torch.isfinite(out16[real]).all()
    assert (out16.float()[real] - out32[real]).abs().max().item() < 5e-2


def test_unknown_attn_backend_rejected(tmp_path: Path) -> None:
    modeling = load_modeling_module()
    with pytest.raises(ValueError, match="sdpa.*manual"):
        modeling.FastEsmConfig(attn_backend="flash")
    with pytest.raises(ValueError, match="attn_backend"):
        build_fast_esm_checkpoint(tmp_path / "bad", attn_backend="flash")

    # A bad value set after the config was built is caught when the model is built.
    folder = build_fast_esm_checkpoint(tmp_path / "fast_esm")
    config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=True)
    config.attn_backend = "flash"
    with pytest.raises(ValueError, match="attn_backend"):
        _load(folder, config=config)
