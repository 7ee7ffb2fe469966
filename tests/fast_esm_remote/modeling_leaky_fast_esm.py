"""Two broken FastESM stand-ins for `tests/test_audit.py` (the weights are `FastEsmModel`'s):

- `LeakyFastEsmModel` ignores the attention mask, so in a padded batch every residue also
  attends to the padding: the batched path leaks padding into each shorter row's mean, while
  one sequence alone (no padding) comes out right.
- `DriftingFastEsmModel` adds a fixed vector to every hidden state: a bug its batched and
  single-sequence paths share (as a rotary drift would), which only an independent
  implementation of the same weights shows.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.modeling_outputs import BaseModelOutput

from .modeling_fast_esm import FastEsmConfig, FastEsmModel


class LeakyFastEsmModel(FastEsmModel):
    def forward(self, input_ids: torch.Tensor, attention_mask: Any = None, **kwargs: Any):
        return super().forward(input_ids, attention_mask=None, **kwargs)


class DriftingFastEsmModel(FastEsmModel):
    def forward(self, input_ids: torch.Tensor, attention_mask: Any = None, **kwargs: Any):
        hidden = super().forward(input_ids, attention_mask, **kwargs).last_hidden_state
        drift = torch.linspace(-1.0, 1.0, hidden.shape[-1], device=hidden.device)
        return BaseModelOutput(last_hidden_state=hidden + drift.to(hidden.dtype))


__all__ = ["DriftingFastEsmModel", "FastEsmConfig", "LeakyFastEsmModel"]
