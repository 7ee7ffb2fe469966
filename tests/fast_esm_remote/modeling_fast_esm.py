"""Tiny stand-in for the remote code of ``Synthyra/FastESM2_650`` (tests only).

It is loaded through ``auto_map`` + ``trust_remote_code=True`` exactly like the published
model, so the loader can be tested offline. The maths is ESM-2 (rotary, pre-LayerNorm,
erf-GELU, token-dropout scaling) and the parameter names are those of
``transformers.EsmModel(config, add_pooling_layer=False)``, so one state dict loads into both.

Behaviour mirrored from the published code (FastPLMs ``modeling_fastesm.py``, 2026):
- ``attn_backend`` is one of eager, sdpa, flex_attention, flash_attention_2,
  flash_attention_3, or None (auto, which resolves to SDPA); attention modules hold the
  resolved backend as an enum member, not a string.
- ``model.tokenizer`` is a property that loads ``FastEsmTokenizer`` lazily from the folder
  or hub ID the model was loaded from (an error for a model not made by from_pretrained).
- ``FastEsmTokenizer`` keeps fair-esm's strictness: a letter outside the vocabulary raises
  ``KeyError`` (the unknown run as the key) instead of becoming ``<unk>``; with
  ``truncation=True, max_length=m`` it keeps the first ``m - 2`` residues of each text.
- ``strict_tokenizer=False`` in the config gives the earlier published behaviour instead:
  a lenient ``EsmTokenizer`` (unknown letters become ``<unk>``).

Self-contained on purpose (transformers copies only this file into its modules cache):
imports nothing but the standard library, torch and transformers.
"""

from __future__ import annotations

import enum
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import EsmTokenizer, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput

ATTN_BACKENDS = ("eager", "sdpa", "flex_attention", "flash_attention_2", "flash_attention_3")

ESM_VOCAB = (
    "<cls> <pad> <eos> <unk> L A G V S E R T I D P K Q N F Y M H W C X B U Z O . - <null_1> <mask>"
).split()

# Masking ratio used for every ESM training run (15% selected x 80% replaced by <mask>).
_MASK_RATIO_TRAIN = 0.15 * 0.8


class AttentionBackend(enum.Enum):
    """The resolved backend an attention module runs (an enum, as upstream: not a str)."""

    EAGER = "eager"
    SDPA = "sdpa"
    FLEX = "flex_attention"
    FLASH_2 = "flash_attention_2"
    FLASH_3 = "flash_attention_3"


def check_attn_backend(value: Any) -> str | None:
    if value is not None and value not in ATTN_BACKENDS:
        raise ValueError(f"attn_backend must be None or one of {ATTN_BACKENDS}, got {value!r}")
    return value


def resolve_attn_backend(value: str | None) -> AttentionBackend:
    """None means auto, which upstream resolves to SDPA."""
    return AttentionBackend(check_attn_backend(value) or "sdpa")


class FastEsmConfig(PretrainedConfig):
    model_type = "fast_esm"

    # A custom __init__ (as remote configs usually have) works with both the pre-dataclass
    # and the dataclass-based PretrainedConfig of transformers 5.x.
    def __init__(
        self,
        vocab_size: int = 33,
        hidden_size: int = 64,
        num_hidden_layers: int = 2,
        num_attention_heads: int = 4,
        intermediate_size: int = 256,
        layer_norm_eps: float = 1e-5,
        pad_token_id: int = 1,
        mask_token_id: int = 32,
        token_dropout: bool = True,
        max_position_embeddings: int = 1026,
        initializer_range: float = 0.02,
        attn_backend: str | None = None,
        strict_tokenizer: bool = True,
        **kwargs: Any,
    ) -> None:
        if hidden_size % num_attention_heads:
            raise ValueError(
                f"hidden_size ({hidden_size}) is not a multiple of "
                f"num_attention_heads ({num_attention_heads})"
            )
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.layer_norm_eps = layer_norm_eps
        self.pad_token_id = pad_token_id
        self.mask_token_id = mask_token_id
        self.token_dropout = token_dropout
        self.max_position_embeddings = max_position_embeddings
        self.initializer_range = initializer_range
        self.attn_backend = check_attn_backend(attn_backend)
        self.strict_tokenizer = strict_tokenizer
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)


class FastEsmTokenizer(EsmTokenizer):
    """EsmTokenizer that refuses letters outside its vocabulary, as fair-esm does."""

    def __call__(
        self,
        text: Any = None,
        *args: Any,
        truncation: Any = None,
        max_length: int | None = None,
        **kwargs: Any,
    ) -> Any:
        if truncation and max_length is not None:
            keep = max(1, max_length - 2)  # room for <cls> and <eos>
            if isinstance(text, str):
                text = text[:keep]
            elif isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text):
                text = [t[:keep] for t in text]
        return super().__call__(text, *args, truncation=truncation, max_length=max_length, **kwargs)

    def _convert_token_to_id(self, token: str) -> int:
        if token not in self._token_to_id:
            raise KeyError(token)
        return self._token_to_id[token]


def build_esm_tokenizer(cls: type[EsmTokenizer] = EsmTokenizer) -> EsmTokenizer:
    """ESM-2 tokenizer from the in-code vocabulary (EsmTokenizer only reads from a file)."""
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.txt"
        vocab_file.write_text("\n".join(ESM_VOCAB) + "\n", encoding="utf-8")
        return cls(vocab_file=str(vocab_file))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def _rotary_cos_sin(
    seq_len: int, head_dim: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    # Computed per call in fp32 rather than kept as a buffer: no state to load/initialise,
    # and no precision loss when the model is cast to fp16.
    inv_freq = 1.0 / (
        10000.0 ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    )
    freqs = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def _apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    xf = x.float()
    return (xf * cos + _rotate_half(xf) * sin).to(x.dtype)


class FastEsmEmbeddings(nn.Module):
    def __init__(self, config: FastEsmConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.token_dropout = config.token_dropout
        self.mask_token_id = config.mask_token_id

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        embeddings = self.word_embeddings(input_ids)
        if self.token_dropout:
            # <mask> tokens are treated as dropped-out inputs; rescale to the training ratio.
            is_mask = input_ids == self.mask_token_id
            embeddings = embeddings.masked_fill(is_mask.unsqueeze(-1), 0.0)
            mask_ratio_observed = is_mask.sum(-1).float() / attention_mask.sum(-1)
            scale = (1 - _MASK_RATIO_TRAIN) / (1 - mask_ratio_observed)
            embeddings = (embeddings * scale[:, None, None]).to(embeddings.dtype)
        return (embeddings * attention_mask.unsqueeze(-1)).to(embeddings.dtype)


class FastEsmSelfAttention(nn.Module):
    def __init__(self, config: FastEsmConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        # Resolved once at construction, like FastESM: checkers inspect this attribute.
        self.attn_backend = resolve_attn_backend(config.attn_backend)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_padding_mask: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        b, seq_len, _ = hidden_states.shape

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, seq_len, self.num_heads, self.head_dim).transpose(1, 2)

        # ESM scales q before the rotation (not the logits after); keep that order.
        q = heads(self.query(hidden_states)) * self.head_dim**-0.5
        k = heads(self.key(hidden_states))
        v = heads(self.value(hidden_states))
        cos, sin = rotary
        q, k = _apply_rotary(q, cos, sin), _apply_rotary(k, cos, sin)

        keep = key_padding_mask[:, None, None, :]  # (b, 1, 1, l), True = attend
        if self.attn_backend is AttentionBackend.SDPA:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=1.0)
        elif self.attn_backend is AttentionBackend.EAGER:
            scores = q @ k.transpose(-1, -2)
            scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
            out = scores.softmax(dim=-1) @ v
        else:  # upstream needs compiled kernels / a GPU for these
            raise RuntimeError(f"{self.attn_backend.value} attention is not available here")
        return out.transpose(1, 2).reshape(b, seq_len, -1)


class FastEsmSelfOutput(nn.Module):
    def __init__(self, config: FastEsmConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)


class FastEsmAttention(nn.Module):
    def __init__(self, config: FastEsmConfig) -> None:
        super().__init__()
        self.self = FastEsmSelfAttention(config)
        self.output = FastEsmSelfOutput(config)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_padding_mask: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        attn = self.self(self.LayerNorm(hidden_states), key_padding_mask, rotary)
        return hidden_states + self.output.dense(attn)


class FastEsmIntermediate(nn.Module):
    def __init__(self, config: FastEsmConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)


class FastEsmOutput(nn.Module):
    def __init__(self, config: FastEsmConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)


class FastEsmLayer(nn.Module):
    def __init__(self, config: FastEsmConfig) -> None:
        super().__init__()
        self.attention = FastEsmAttention(config)
        self.intermediate = FastEsmIntermediate(config)
        self.output = FastEsmOutput(config)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_padding_mask: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        hidden_states = self.attention(hidden_states, key_padding_mask, rotary)
        # Exact erf GELU, as in original ESM (the tanh approximation drifts).
        mlp = F.gelu(self.intermediate.dense(self.LayerNorm(hidden_states)), approximate="none")
        return hidden_states + self.output.dense(mlp)


class FastEsmEncoder(nn.Module):
    def __init__(self, config: FastEsmConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(FastEsmLayer(config) for _ in range(config.num_hidden_layers))
        self.emb_layer_norm_after = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor, key_padding_mask: torch.Tensor) -> torch.Tensor:
        head_dim = hidden_states.shape[-1] // self.layer[0].attention.self.num_heads
        rotary = _rotary_cos_sin(hidden_states.shape[1], head_dim, hidden_states.device)
        for layer in self.layer:
            hidden_states = layer(hidden_states, key_padding_mask, rotary)
        return self.emb_layer_norm_after(hidden_states)


class FastEsmPreTrainedModel(PreTrainedModel):
    config_class = FastEsmConfig
    base_model_prefix = "esm"
    _no_split_modules = ["FastEsmLayer"]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, *args: Any, **kwargs: Any):
        # Remember where the model came from: the tokenizer property loads from there.
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model.__dict__["_tokenizer_source"] = str(pretrained_model_name_or_path)
        model.__dict__["_tokenizer_revision"] = kwargs.get("revision")
        return loaded

    @property
    def tokenizer(self) -> EsmTokenizer:
        tokenizer = self.__dict__.get("_tokenizer")
        if tokenizer is None:
            source = self.__dict__.get("_tokenizer_source")
            if not source:
                raise RuntimeError(
                    "loading the tokenizer needs a model made by from_pretrained "
                    "(its source is unknown)"
                )
            cls = FastEsmTokenizer if self.config.strict_tokenizer else EsmTokenizer
            revision = self.__dict__.get("_tokenizer_revision")
            tokenizer = cls.from_pretrained(source, revision=revision)
            self.__dict__["_tokenizer"] = tokenizer
        return tokenizer

    @tokenizer.setter
    def tokenizer(self, value: EsmTokenizer) -> None:
        self.__dict__["_tokenizer"] = value

    @property
    def attn_backend(self) -> str | None:
        return self.config.attn_backend

    @attn_backend.setter
    def attn_backend(self, backend: str) -> None:
        if backend not in ATTN_BACKENDS:
            raise ValueError(f"{type(self).__name__} supports {ATTN_BACKENDS}, not {backend!r}")
        self.config.attn_backend = backend
        for module in self.modules():
            if isinstance(module, FastEsmSelfAttention):
                module.attn_backend = resolve_attn_backend(backend)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # torch.nn.init calls: transformers 5 patches them to skip tensors already loaded
        # from the checkpoint, so this only touches what is really missing.
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class FastEsmModel(FastEsmPreTrainedModel):
    def __init__(self, config: FastEsmConfig) -> None:
        super().__init__(config)
        self.embeddings = FastEsmEmbeddings(config)
        self.encoder = FastEsmEncoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> BaseModelOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden_states = self.embeddings(input_ids, attention_mask)
        hidden_states = self.encoder(hidden_states, attention_mask.bool())
        return BaseModelOutput(last_hidden_state=hidden_states)


__all__ = [
    "ATTN_BACKENDS",
    "ESM_VOCAB",
    "AttentionBackend",
    "FastEsmConfig",
    "FastEsmModel",
    "FastEsmTokenizer",
]
