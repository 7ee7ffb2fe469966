"""A prepared file on the device: embed each batch (out-of-memory split, failed batches
failing their records alone) -> pool into one float32 block -> validate into a `FileOutput`."""

from __future__ import annotations

from collections.abc import Callable

import torch

from fastesm_extract.disk.failures import FailureKind, RecordFailure
from fastesm_extract.disk.store import embeddings_from_block, finite_rows, validate_block
from fastesm_extract.errors import OutputError
from fastesm_extract.extract.batching import BatchInputs, collate
from fastesm_extract.extract.embed import DeviceHealth, embed_with_oom_split
from fastesm_extract.extract.forward import Forward
from fastesm_extract.extract.handoff import ComputedFile, FileOutput, PreparedFile
from fastesm_extract.model.load import LoadedModel


def compute_file(
    prepared: PreparedFile,
    loaded: LoadedModel,
    on_batch: Callable[[int], None] = lambda count: None,
    health: DeviceHealth | None = None,
    forward: Forward | None = None,
) -> ComputedFile:
    """Embed every batch of a prepared file; a failing batch fails its records, not the run.

    `forward` runs the model (default: eager on `loaded`).

    Raises `DeviceFailedError` when `health` judges the device unusable: the file is then
    not finished and must not be written.
    """
    health = health or DeviceHealth()
    forward = forward or Forward(loaded)
    n_records = len(prepared.tokens)
    # Rows left unwritten (failed records) are never read: `embedded` masks them.
    block = torch.empty(n_records, loaded.hidden_size, dtype=torch.float32, device=loaded.device)
    done: list[int] = []  # rows holding an embedding
    failures: list[RecordFailure] = []
    records = prepared.contents.records

    def collate_rows(rows: list[int]) -> BatchInputs:
        return collate(loaded.alphabet, prepared.tokens, rows)

    for batch in prepared.batches:
        settled: set[int] = set()  # rows of this batch already embedded or failed
        try:
            for outcome in embed_with_oom_split(forward, batch, collate_rows):
                if outcome.embeddings is None:
                    failures += [
                        RecordFailure(records[r].id, FailureKind.OUT_OF_MEMORY, outcome.error or "")
                        for r in outcome.rows
                    ]
                else:
                    if outcome.rows == batch.rows:  # the usual case: index prebuilt and pinned
                        index = batch.row_index.to(loaded.device, non_blocking=True)
                    else:  # a piece of a batch split after running out of memory
                        index = torch.tensor(outcome.rows, device=loaded.device)
                    block.index_copy_(0, index, outcome.embeddings)
                    done.extend(outcome.rows)
                settled.update(outcome.rows)
        except Exception as error:  # noqa: BLE001 - a bad batch is logged, the run goes on
            health.batch_failed(error)  # unless the device itself failed
            message = f"{type(error).__name__}: {error}"
            failures += [
                RecordFailure(records[r].id, FailureKind.BATCH_ERROR, message)
                for r in batch.rows
                if r not in settled
            ]
        else:
            health.batch_succeeded()
        on_batch(len(batch.rows))
    embedded = torch.zeros(n_records, dtype=torch.bool)
    embedded[torch.tensor(done, dtype=torch.long)] = True
    block = block.cpu()  # one device-to-host transfer per file
    finite = finite_rows(block)
    for row in torch.nonzero(embedded & ~finite).flatten().tolist():
        failures.append(
            RecordFailure(
                records[row].id,
                FailureKind.NON_FINITE_EMBEDDING,
                "embedding has NaN or infinite values",
            )
        )
    # A compile given up on falls back for good: compiled now means compiled throughout.
    return ComputedFile(prepared, block, embedded & finite, failures, forward.compiled)


def assemble_output(computed: ComputedFile, hidden_size: int) -> FileOutput:
    """FASTA-ordered IDs and embeddings, checked: raises `OutputError` if they do not add up."""
    prepared = computed.prepared
    keep = computed.embedded
    proteins = [record.id for record, ok in zip(prepared.contents.records, keep.tolist()) if ok]
    block = computed.block if bool(keep.all()) else computed.block[keep]  # (n_embedded, hidden)
    failures = prepared.contents.failures + computed.failures
    problems = validate_block(proteins, block, hidden_size)
    n_read = prepared.contents.n_read
    if len(proteins) + len(failures) != n_read:
        problems.append(f"{len(proteins)} embedded + {len(failures)} failed != {n_read} read")
    if problems:
        raise OutputError(f"{prepared.job.fasta}: " + "; ".join(problems))
    data = embeddings_from_block(block)
    return FileOutput(proteins, data, failures, n_read, prepared.truncated)
