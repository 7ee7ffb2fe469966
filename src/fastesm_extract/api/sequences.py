"""Sequences already in memory -> IDs and one float32 block, by the rules of a file run.

`(id, sequence)` pairs are cleaned and checked as FASTA records are, then go through the
same stages as a file (`prepare_file`: tokenize, batch by `toks_per_batch`; `compute_file`:
embed with the out-of-memory split, pool, check), without a FASTA or an output written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from fastesm_extract.api.models import model_for_call
from fastesm_extract.disk.failures import FailureKind, RecordFailure
from fastesm_extract.disk.fasta import FastaContents, ProteinRecord, record_from_pair
from fastesm_extract.extract.compute import assemble_output, compute_file
from fastesm_extract.extract.prepare import NoUsableRecordsError, prepare_file, warn_about_records
from fastesm_extract.model.load import LoadedModel
from fastesm_extract.results import FileJob
from fastesm_extract.settings import (
    DEFAULT_TOKS_PER_BATCH,
    DEFAULT_TRUNCATION_SEQ_LENGTH,
    ExtractionSettings,
)

IN_MEMORY = Path("<memory>")  # what warnings name instead of a file


@dataclass(frozen=True)
class SequenceEmbeddings:
    """What `embed_sequences` gives: the embedded IDs in input order, one row each."""

    ids: list[str]
    embeddings: torch.Tensor  # (len(ids), hidden) float32 on the CPU
    failures: list[RecordFailure]  # every pair without an embedding, with its kind
    n_truncated: int = 0  # sequences longer than truncation_seq_length, cut before embedding


def _contents(pairs: Iterable[tuple[str, str | bytes]]) -> FastaContents:
    records: list[ProteinRecord] = []
    failures: list[RecordFailure] = []
    for pair in pairs:
        try:
            record_id, sequence = pair
        except (TypeError, ValueError):  # not an (id, sequence) pair: that pair fails
            message = f"not an (id, sequence) pair: {repr(pair)[:60]}"
            failures.append(RecordFailure("-", FailureKind.INVALID_HEADER, message))
            continue
        checked = record_from_pair(record_id, sequence)
        (records if isinstance(checked, ProteinRecord) else failures).append(checked)
    counts = Counter(record.id for record in records)
    duplicates = [record_id for record_id, count in counts.items() if count > 1]
    return FastaContents(IN_MEMORY, records, failures, duplicates)


def embed_sequences(
    pairs: Iterable[tuple[str, str | bytes]],
    model: str | torch.nn.Module | LoadedModel | None = None,
    tokenizer: object | None = None,
    *,
    device: str | None = None,
    truncation_seq_length: int = DEFAULT_TRUNCATION_SEQ_LENGTH,
    toks_per_batch: int = DEFAULT_TOKS_PER_BATCH,
) -> SequenceEmbeddings:
    """Embed `(id, sequence)` pairs held in memory, as a FASTA file of them would be embedded.

    Sequences are cleaned (whitespace removed, upper-cased, one trailing `*` dropped) and
    checked; a pair that cannot be embedded (empty, a character outside the alphabet, no ID,
    a letter a strict tokenizer refuses, out of memory even alone, non-finite values) is
    returned in `failures` with its kind, never raised. Batches follow `toks_per_batch`;
    a batch that runs out of CUDA memory is split in halves. `model` is as for
    `extract_fast_esm` (a name, or None for FastESM2_650, loaded once per process on
    `device`; or a loaded model). Nothing is written: no output, manifest or failure log.
    """
    loaded = model_for_call(model, tokenizer, device)
    settings = ExtractionSettings(toks_per_batch, truncation_seq_length)
    contents = _contents(pairs)
    try:
        prepared = prepare_file(FileJob(IN_MEMORY, Path("")), loaded, settings, contents)
    except NoUsableRecordsError as error:
        empty = torch.empty(0, loaded.hidden_size, dtype=torch.float32)
        return SequenceEmbeddings([], empty, error.contents.failures)
    warn_about_records(prepared, settings)
    output = assemble_output(compute_file(prepared, loaded), loaded.hidden_size)
    if output.data:
        block = torch.stack(output.data)  # (n, hidden)
    else:
        block = torch.empty(0, loaded.hidden_size, dtype=torch.float32)
    return SequenceEmbeddings(output.proteins, block, output.failures, output.n_truncated)
