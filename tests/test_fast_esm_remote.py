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
    """Resolved backends of the attention modules (enum members upstream, not strings)."""
    backends = {
        m.attn_backend for m in model.modules() if type(m).__name__ == "FastEsmSelfAttention"
    }
    assert all(type(b).__name__ == "AttentionBackend" for b in backends)
    return {b.value for b in backends}


def _load(folder: Path, **kwargs: object) -> nn.Module:
    return transformers.AutoModel.from_pretrained(folder, trust_remote_code=True, **kwargs).eval()


def test_loads_offline_with_tokenizer(tmp_path: Path, offline: None) -> None:
    folder = build_fast_esm_checkpoint(tmp_path / "fast_esm")
    model = _load(folder)

    assert model.config.model_type == "fast_esm"
    assert model.tokenizer("MKTL")["input_ids"] == [0, 20, 15, 11, 4, 2]
    assert type(model.tokenizer).__name__ == "FastEsmTokenizer"
    assert model.tokenizer is model.tokenizer  # loaded once, then kept
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    assert tokenizer("MKTL")["input_ids"] == [0, 20, 15, 11, 4, 2]
    # The checkpoint deliberately stores the non-SDPA backend.
    assert _attn_backends(model) == {"eager"}
    assert model.attn_backend == "eager"


def test_tokenizer_is_strict_like_fair_esm(tmp_path: Path) -> None:
    model = _load(build_fast_esm_checkpoint(tmp_path / "fast_esm"))
    for text in ("J", "MJK", "MKJJ", "jmk".upper()):
        with pytest.raises(KeyError):
            model.tokenizer(text)
    # Every one-letter token is accepted; only letters outside the vocabulary are refused.
    vocab = model.tokenizer.get_vocab()
    for letter in map(chr, range(ord("A"), ord("Z") + 1)):
        if letter in vocab:
            assert model.tokenizer(letter)["input_ids"] == [0, vocab[letter], 2]
        else:
            with pytest.raises(KeyError, match=letter):
                model.tokenizer(letter)


def test_lenient_tokenizer_of_earlier_releases(tmp_path: Path) -> None:
    model = _load(build_fast_esm_checkpoint(tmp_path / "fast_esm", strict_tokenizer=False))
    assert type(model.tokenizer).__name__ == "EsmTokenizer"
    assert model.tokenizer("MJJK")["input_ids"] == [0, 20, 3, 15, 2]


def test_tokenizer_truncates_to_max_length_minus_two_residues(tmp_path: Path) -> None:
    tokenizer = _load(build_fast_esm_checkpoint(tmp_path / "fast_esm")).tokenizer
    ids = tokenizer("MKTLAG", truncation=True, max_length=5)["input_ids"]
    assert ids == [0, 20, 15, 11, 2]
    batch = tokenizer(["MKTLAG", "MK"], truncation=True, max_length=4)["input_ids"]
    assert batch == [[0, 20, 15, 2], [0, 20, 15, 2]]
    # A refused letter beyond the limit is cut before it is looked up.
    assert tokenizer("MKJ", truncation=True, max_length=4)["input_ids"] == [0, 20, 15, 2]
    assert tokenizer("MKTLAG")["input_ids"] == [0, 20, 15, 11, 4, 5, 6, 2]


def test_tokenizer_needs_a_model_loaded_from_a_checkpoint() -> None:
    modeling = load_modeling_module()
    model = modeling.FastEsmModel(modeling.FastEsmConfig())
    with pytest.raises(RuntimeError, match="from_pretrained"):
        _ = model.tokenizer


@pytest.mark.parametrize("backend", ["sdpa", "eager"])
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
    folder = build_fast_esm_checkpoint(tmp_path / "fast_esm")  # stored as "eager"
    config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=True)
    assert config.attn_backend == "eager"
    config.attn_backend = "sdpa"

    model = _load(folder, config=config)

    assert _attn_backends(model) == {"sdpa"}
    assert len(model.encoder.layer) == 2


def test_attn_backend_choices_as_upstream(tmp_path: Path) -> None:
    modeling = load_modeling_module()
    assert modeling.ATTN_BACKENDS == (
        "eager",
        "sdpa",
        "flex_attention",
        "flash_attention_2",
        "flash_attention_3",
    )
    # None (the default) is "auto", which resolves to SDPA.
    folder = build_fast_esm_checkpoint(tmp_path / "auto", attn_backend=None)
    model = _load(folder)
    assert model.config.attn_backend is None and _attn_backends(model) == {"sdpa"}
    # The model-level setter switches every attention module.
    model.attn_backend = "eager"
    assert model.config.attn_backend == "eager" and _attn_backends(model) == {"eager"}
    with pytest.raises(ValueError, match="flash_attention_2"):
        model.attn_backend = "flash"
    # A backend this machine cannot run fails at the forward pass, as upstream's kernels do.
    model.attn_backend = "flash_attention_2"
    batch = model.tokenizer(["MKT"], return_tensors="pt")
    with pytest.raises(RuntimeError, match="flash_attention_2"):
        model(**batch)


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
    with pytest.raises(ValueError, match="eager.*sdpa"):
        modeling.FastEsmConfig(attn_backend="flash")
    with pytest.raises(ValueError, match="attn_backend"):
        build_fast_esm_checkpoint(tmp_path / "bad", attn_backend="flash")

    # A bad value set after the config was built is caught when the model is built.
    folder = build_fast_esm_checkpoint(tmp_path / "fast_esm")
    config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=True)
    config.attn_backend = "flash"
    with pytest.raises(ValueError, match="attn_backend"):
        _load(folder, config=config)
