"""The model forward + masked mean pooling of one batch: the one place the model is called.

Device placement (inputs copied to the model's device), precision (the mean summed in
float32 whatever the model dtype) and compilation live here. Eager by default; with
`compile=True` the same function runs through `torch.compile`, with shapes kept bounded:

- The padded width is rounded up to a bucket (4 widths per doubling, so at most 25% more
  padding, capped at the longest width the run can produce). The batches are the same as
  eager ones, only padding grows, and the masks keep it out of the mean.
- Each bucket compiles one graph whose row count is dynamic, plus one for single-row
  batches (torch specializes size 1): out-of-memory halves reuse them, never a storm.
- Each bucket's graph is first traced on the same 2-row dummy batch, whatever the run saw
  before, so the compiled code, hence every output, is the same bitwise whichever files a
  run holds and in which order.
- Compiled artifacts go to torch's on-disk caches (`TORCHINDUCTOR_CACHE_DIR`, set from
  `cache_dir`), which later runs and other `--devices` workers load instead of compiling.
- A compile that fails (no C++ compiler, an unsupported op) warns once and the run goes on
  eager: nothing fails for it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from fastesm_extract.extract.batching import SPECIAL_TOKENS_PER_SEQUENCE, BatchInputs
from fastesm_extract.extract.embed import is_out_of_memory
from fastesm_extract.model.load import LoadedModel
from fastesm_extract.settings import ExtractionSettings

log = logging.getLogger("fastesm_extract")

CACHE_ENVIRONMENT = "TORCHINDUCTOR_CACHE_DIR"
CANONICAL_ROWS = 2  # the dummy batch each bucket's dynamic-rows graph is first traced on
CANONICAL_WIDTH = 64  # ... and its width, when widths are dynamic too
# Dynamo's default limit (8 graphs per function) would silently drop to eager after 8 buckets.
RECOMPILE_LIMIT = 128
# No on-device benchmarking that can change numerics: outputs must not depend on timing.
INDUCTOR_OPTIONS = {"deterministic": True}
Inputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def bucket_width(width: int, max_width: int | None = None) -> int:
    """`width` rounded up to 4 steps per doubling (..., 64, 80, 96, 112, 128, 160, ...; at
    least multiples of 8), but never past `max_width` (the longest width of the run)."""
    step = max(1 << max(width.bit_length() - 3, 0), 8)
    rounded = -(-width // step) * step
    return min(rounded, max(width, max_width)) if max_width is not None else rounded


def pooled_embeddings(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    residue_mask: torch.Tensor,
    residue_counts: torch.Tensor,
) -> torch.Tensor:
    """Mean of `last_hidden_state` over residue positions: (b, hidden) float32."""
    hidden = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    # Sum over residues in float32 whatever the model dtype: (b, 1, l) @ (b, l, d) -> (b, d)
    summed = torch.bmm(residue_mask, hidden.float()).squeeze(1)
    return summed / residue_counts  # (b, d) / (b, 1)


def use_compile_cache(folder: str | Path) -> Path:
    """Point torch's compile caches (Inductor's FX graphs, kernels, Triton) at `folder`,
    for this process and the workers it starts; a shared folder lets a cluster compile once."""
    path = Path(folder).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    os.environ[CACHE_ENVIRONMENT] = str(path)
    return path


def _one_line(error: BaseException) -> str:
    """`Type: first line`, of the root cause (torch wraps it: "backend='x' raised:")."""
    root = getattr(error, "inner_exception", None) or error
    while root.__cause__ is not None:
        root = root.__cause__
    lines = [line.strip() for line in str(root).splitlines() if line.strip()]
    return f"{type(root).__name__}: {lines[0] if lines else ''}"[:300]


def _raise_recompile_limit() -> None:
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(
        config, name, max(getattr(config, name), RECOMPILE_LIMIT)
    )  # torch < 2.6: cache_size_limit


def _inductor_options() -> dict:
    """INDUCTOR_OPTIONS this torch knows (an unknown one would fail every compile)."""
    import torch._inductor.config as inductor_config

    return {key: value for key, value in INDUCTOR_OPTIONS.items() if hasattr(inductor_config, key)}


class Forward:
    """Batches -> pooled embeddings on the device, eager or compiled (see the module notes).

    `backend` is torch.compile's (tests use cheaper or failing ones). `dynamic_width`
    makes widths dynamic too: one graph (plus one for single rows) for every bucket, less
    compiling for more general kernels (the GPU benchmark compares both). `first_calls` maps
    each compiled graph (`"<width>x1"` or `"<width>xN"`, width `any` when dynamic) to the
    seconds its first call took, compile included.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        compile: bool = False,
        *,
        max_width: int | None = None,
        cache_dir: str | Path | None = None,
        backend: str | Callable = "inductor",
        dynamic_width: bool = False,
    ) -> None:
        self.loaded = loaded
        self.max_width = max_width
        self.dynamic_width = dynamic_width
        self.first_calls: dict[str, float] = {}
        self.failure: str | None = None  # why compiling was given up, when it was
        self._compiled: Callable[..., torch.Tensor] | None = None
        if compile:
            if cache_dir is not None:
                use_compile_cache(cache_dir)
            _raise_recompile_limit()
            # dynamic=False: widths stay static per bucket (no history-dependent "automatic
            # dynamic" graph); only the rows, marked below, are dynamic.
            self._compiled = torch.compile(
                pooled_embeddings,
                backend=backend,
                dynamic=False,
                options=_inductor_options() if backend == "inductor" else None,
            )

    @property
    def compiled(self) -> bool:
        """True while batches run compiled (False from the start, or after a failure)."""
        return self._compiled is not None

    @torch.inference_mode()
    def __call__(self, batch: BatchInputs) -> torch.Tensor:
        """(b, hidden) float32 on the device. Out-of-memory errors propagate (to be split)."""
        inputs = self._on_device(batch)
        if self._compiled is not None:
            try:
                return self._run_compiled(inputs)
            except Exception as error:  # noqa: BLE001 - any compile failure: go on eager
                if is_out_of_memory(error):
                    raise
                self._give_up(error)
        return pooled_embeddings(self.loaded.model, *inputs)

    def _on_device(self, batch: BatchInputs) -> Inputs:
        device = self.loaded.device
        non_blocking = device.type == "cuda"  # inputs are pinned on CUDA: no host sync
        tensors = (batch.input_ids, batch.attention_mask, batch.residue_mask, batch.residue_counts)
        return tuple(t.to(device, non_blocking=non_blocking) for t in tensors)  # type: ignore[return-value]

    def _run_compiled(self, inputs: Inputs) -> torch.Tensor:
        rows, width = inputs[0].shape
        bucket = bucket_width(width, self.max_width)
        label = "any" if self.dynamic_width else str(bucket)
        if rows > 1 and f"{label}xN" not in self.first_calls:
            canonical = CANONICAL_WIDTH if self.dynamic_width else bucket
            self._first_call(f"{label}xN", self._dummy(CANONICAL_ROWS, canonical))
        padded = self._padded(inputs, bucket)
        key = f"{label}x{'1' if rows == 1 else 'N'}"
        if key not in self.first_calls:
            return self._first_call(key, padded)
        return self._call_compiled(padded)

    def _first_call(self, key: str, inputs: Inputs) -> torch.Tensor:
        started = time.perf_counter()
        result = self._call_compiled(inputs)
        if self.loaded.device.type == "cuda":
            torch.cuda.synchronize(self.loaded.device)
        self.first_calls[key] = time.perf_counter() - started
        log.info("compiled forward for width %s: %.1f s", key, self.first_calls[key])
        return result

    def _call_compiled(self, inputs: Inputs) -> torch.Tensor:
        # Inference tensors all (graphs guard on it): a CPU batch is not copied to the device.
        inputs = tuple(t if t.is_inference() else t.clone() for t in inputs)  # type: ignore[assignment]
        for tensor in inputs:
            torch._dynamo.maybe_mark_dynamic(tensor, 0)  # rows: one graph for every count
        if self.dynamic_width:
            for tensor, dim in zip(inputs[:3], (1, 1, 2)):
                torch._dynamo.maybe_mark_dynamic(tensor, dim)
        assert self._compiled is not None
        return self._compiled(self.loaded.model, *inputs)

    def _padded(self, inputs: Inputs, bucket: int) -> Inputs:
        input_ids, attention_mask, residue_mask, residue_counts = inputs
        extra = bucket - input_ids.shape[1]
        if extra == 0:
            return inputs
        pad_id = self.loaded.alphabet.pad_id
        return (
            F.pad(input_ids, (0, extra), value=pad_id),
            F.pad(attention_mask, (0, extra), value=0),
            F.pad(residue_mask, (0, extra), value=0.0),
            residue_counts,
        )

    def _dummy(self, rows: int, width: int) -> Inputs:
        """`<cls> <eos> <pad>...` rows: a valid batch whose values nobody reads."""
        device, alphabet = self.loaded.device, self.loaded.alphabet
        input_ids = torch.full((rows, width), alphabet.pad_id, dtype=torch.int64, device=device)
        input_ids[:, 0], input_ids[:, 1] = alphabet.cls_id, alphabet.eos_id
        attention_mask = torch.zeros(rows, width, dtype=torch.int64, device=device)
        attention_mask[:, :2] = 1
        residue_mask = torch.zeros(rows, 1, width, dtype=torch.float32, device=device)
        residue_counts = torch.ones(rows, 1, dtype=torch.float32, device=device)
        return input_ids, attention_mask, residue_mask, residue_counts

    def _give_up(self, error: BaseException) -> None:
        self._compiled = None
        self.failure = _one_line(error)
        log.warning(
            "--compile: compiling the forward failed (%s); running eager instead (outputs "
            "are the same; only speed differs)",
            self.failure,
        )


def forward_for(loaded: LoadedModel, settings: ExtractionSettings) -> Forward:
    """The forward a run's settings ask for: compiled or not, widths capped at truncation."""
    return Forward(
        loaded,
        settings.compile,
        max_width=settings.truncation_seq_length + SPECIAL_TOKENS_PER_SEQUENCE,
        cache_dir=settings.compile_cache,
    )
