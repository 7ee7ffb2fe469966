"""What ours is measured against: a straightforward extractor, stand-in models, the floor.

BASELINE: a Python-loop FASTA parser, Hugging Face `EsmTokenizer` per batch, model forward,
per-record `hidden[i, 1:n+1].mean(0).cpu()`, reordering to FASTA order and one `torch.save`
after each file, all serial, on the same batches as ours. OURS: `fastesm_extract.extract_files`
with a preloaded model. FLOOR: the model calls alone on batches already tokenized and on the
device (with the masked mean on the GPU). The stand-in model has no compute (host mode) or
sleeps per padded token (simulated device); `build_esm` makes a real ESM2 of any shape.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import EsmTokenizer
from workload import SPECIALS, TRUNCATION, BatchPlan, Workload, parse_fasta_simple

from fastesm_extract import LoadedModel, extract_files
from fastesm_extract.demo import esm2_config
from fastesm_extract.extract.batching import make_batches

HIDDEN = 1280  # FastESM2_650


@dataclass
class StandInConfig:
    """What `fastesm_extract.prepare_model` reads from a model's config."""

    hidden_size: int = HIDDEN
    _attn_implementation: str = "sdpa"
    name_or_path: str = "stand-in"


@dataclass
class ModelOutput:
    last_hidden_state: torch.Tensor


class StandInModel(torch.nn.Module):
    """Forward returns a view of one preallocated, contiguous random tensor: no compute.

    With `sleep_per_token`, forward first sleeps that long per padded token (`time.sleep`
    releases the GIL, as waiting on a GPU does); `device_seconds` sums the requested sleeps.
    """

    def __init__(self, max_tokens: int, sleep_per_token: float = 0.0, seed: int = 0) -> None:
        super().__init__()
        self.config = StandInConfig()
        self.sleep_per_token = sleep_per_token
        self.device_seconds = 0.0
        self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)
        generator = torch.Generator().manual_seed(seed)
        values = torch.randn(max_tokens * HIDDEN, generator=generator)
        self.register_buffer("values", values, persistent=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> ModelOutput:
        rows, width = input_ids.shape
        if self.sleep_per_token:
            seconds = rows * width * self.sleep_per_token
            time.sleep(seconds)
            self.device_seconds += seconds
        hidden = self.values[: rows * width * HIDDEN].view(rows, width, HIDDEN)
        return ModelOutput(hidden)


@torch.inference_mode()
def baseline_extract_file(
    fasta: Path,
    output: Path,
    model: torch.nn.Module,
    tokenizer: EsmTokenizer,
    device: torch.device,
    toks_per_batch: int,
) -> None:
    """The straightforward extractor: everything serial, one record at a time."""
    records = parse_fasta_simple(fasta)
    sequences = [sequence[:TRUNCATION] for _, sequence in records]
    batches = make_batches([len(s) + SPECIALS for s in sequences], toks_per_batch)
    pooled: list[torch.Tensor | None] = [None] * len(records)
    for rows in batches:
        encoded = tokenizer([sequences[r] for r in rows], padding=True, return_tensors="pt")
        hidden = model(
            input_ids=encoded["input_ids"].to(device),
            attention_mask=encoded["attention_mask"].to(device),
        ).last_hidden_state
        for position, row in enumerate(rows):
            length = len(sequences[row])
            # mean(dtype=float32): accumulates in float32 also for a float16 model
            pooled[row] = hidden[position, 1 : length + 1].mean(0, dtype=torch.float32).cpu()
    torch.save({"proteins": [label for label, _ in records], "data": pooled}, output)


def run_baseline(
    workload: Workload,
    out_dir: Path,
    model: torch.nn.Module,
    tokenizer: EsmTokenizer,
    device: torch.device,
    toks_per_batch: int,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for fasta in workload.files:
        output = out_dir / f"{fasta.stem}_ESM.pt"
        baseline_extract_file(fasta, output, model, tokenizer, device, toks_per_batch)


def run_ours(workload: Workload, out_dir: Path, loaded: LoadedModel, toks_per_batch: int) -> None:
    summary = extract_files(
        workload.files,
        out_dir,
        model=loaded,
        toks_per_batch=toks_per_batch,
        show_progress=False,
    )
    if not summary.ok or summary.records_embedded != workload.n_records:
        raise RuntimeError(f"ours failed: {summary}")


@torch.inference_mode()
def run_floor(model: torch.nn.Module, plan: BatchPlan, device: torch.device) -> None:
    """The model calls alone, on inputs already tokenized and on the device."""
    for input_ids, attention_mask, _, _ in plan.inputs:
        model(input_ids=input_ids, attention_mask=attention_mask)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def run_floor_pooled(model: torch.nn.Module, plan: BatchPlan) -> list[torch.Tensor]:
    """Forward + masked mean per batch on the device, nothing else: what any extractor must
    spend on the card. The caller synchronizes."""
    pooled = []
    for ids, attention, residues, counts in plan.inputs:
        hidden = model(input_ids=ids, attention_mask=attention).last_hidden_state  # (b, l, d)
        pooled.append(torch.bmm(residues, hidden.float()).squeeze(1) / counts)  # (b, d)
    return pooled


@dataclass(frozen=True)
class ModelShape:
    layers: int = 33
    hidden: int = 1280
    heads: int = 20
    intermediate: int = 5120


def build_esm(shape: ModelShape, device: torch.device, dtype: torch.dtype, seed: int):
    """A FastESM2_650-shaped transformers EsmModel with seeded random weights, SDPA."""
    from transformers import EsmModel

    config = esm2_config(shape.layers, shape.hidden, shape.heads, shape.intermediate)
    config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    with device:
        model = EsmModel(config, add_pooling_layer=False)
    return model.to(dtype).eval()
