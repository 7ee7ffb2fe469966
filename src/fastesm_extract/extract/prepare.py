"""One FASTA file -> records -> token ids -> length-sorted batches, ready for the device."""

from __future__ import annotations

import dataclasses
import logging
import os
import stat

from fastesm_extract.disk.failures import FailureKind, RecordFailure
from fastesm_extract.disk.fasta import FastaContents, ProteinRecord, read_fasta
from fastesm_extract.errors import FastaError
from fastesm_extract.extract.batching import SPECIAL_TOKENS_PER_SEQUENCE, collate, make_batches
from fastesm_extract.extract.handoff import PreparedFile
from fastesm_extract.model.load import LoadedModel
from fastesm_extract.model.tokens import UNKNOWN_REFUSED, EsmAlphabet
from fastesm_extract.results import FileJob, TruncatedRecord
from fastesm_extract.settings import ExtractionSettings

log = logging.getLogger("fastesm_extract")


def refuse_unknown_letters(contents: FastaContents, alphabet: EsmAlphabet) -> FastaContents:
    """With a strict tokenizer, each record holding a letter it refuses fails alone
    (`invalid_character`)."""
    if alphabet.unknown != UNKNOWN_REFUSED:
        return contents
    kept: list[ProteinRecord] = []
    failures = list(contents.failures)
    for record in contents.records:
        refused = alphabet.refused_letters(record.sequence)
        if not refused:
            kept.append(record)
            continue
        shown = ", ".join(repr(chr(letter)) for letter in sorted(set(refused))[:5])
        message = f"sequence contains {shown}, which the model's tokenizer refuses (strict)"
        failures.append(RecordFailure(record.id, FailureKind.INVALID_CHARACTER, message))
    return dataclasses.replace(contents, records=kept, failures=failures)


def nucleotide_file_message(path: object) -> str:
    """What a file of nucleotide records is, and the way out; every message about one says it."""
    return (
        f"{path} holds nucleotide sequences, not proteins: it looks like the DNA side of the "
        "pair (give the protein FASTA, e.g. the six-frame translations; --exclude GLOB leaves "
        "such files of a folder out)"
    )


class NoUsableRecordsError(FastaError):
    """Every record of the file failed; `contents` holds their failures, `kind` the file's
    failure kind (`nucleotide_sequence` when every record is DNA/RNA)."""

    def __init__(self, contents: FastaContents) -> None:
        failures = contents.failures
        message = f"{contents.path} has no usable records ({len(failures)} failed)"
        self.kind = FailureKind.UNREADABLE_FILE
        if failures and all(failure.kind == NUCLEOTIDE for failure in failures):
            message, self.kind = nucleotide_file_message(contents.path), NUCLEOTIDE
        super().__init__(message)
        self.contents = contents


def prepare_file(
    job: FileJob,
    loaded: LoadedModel,
    settings: ExtractionSettings,
    contents: FastaContents | None = None,
) -> PreparedFile:
    """Read (unless `contents` is given), tokenize and batch one FASTA file.

    Raises `FastaError` for an unusable file (`NoUsableRecordsError` when every record failed).
    """
    if contents is None:
        contents = read_fasta(job.fasta)
    contents = refuse_nucleotide_records(contents)
    contents = refuse_unknown_letters(contents, loaded.alphabet)
    if not contents.records:
        raise NoUsableRecordsError(contents)
    full = loaded.alphabet.encode([record.sequence for record in contents.records])
    limit = settings.truncation_seq_length
    truncated = tuple(
        TruncatedRecord(record.id, len(ids))
        for record, ids in zip(contents.records, full)
        if len(ids) > limit
    )
    tokens = [ids[:limit] for ids in full]
    groups = make_batches(
        [len(ids) + SPECIAL_TOKENS_PER_SEQUENCE for ids in tokens], settings.toks_per_batch
    )
    batches = [collate(loaded.alphabet, tokens, rows) for rows in groups]
    if loaded.device.type == "cuda":
        batches = [batch.pin_memory() for batch in batches]
    return PreparedFile(job, contents, tokens, batches, truncated)


def can_skip_reading(job: FileJob) -> bool:
    """True when the input may be hashed alone first: an output exists that may be
    finished, and the input is a regular file that can be read twice (not a pipe)."""
    try:
        return job.output.exists() and stat.S_ISREG(os.stat(job.fasta).st_mode)
    except OSError:
        return False


def warn_about_records(prepared: PreparedFile, settings: ExtractionSettings) -> None:
    contents = prepared.contents
    if contents.duplicate_ids:
        shown = ", ".join(contents.duplicate_ids[:5])
        log.warning(
            "%s: %d duplicate IDs kept in order (merge_data() keeps the last): %s",
            contents.path,
            len(contents.duplicate_ids),
            shown,
        )
    if prepared.n_truncated:
        shown = ", ".join(f"{t.id} ({t.length})" for t in prepared.truncated[:5])
        log.warning(
            "%s: %d sequences longer than %d residues were truncated (named in the manifest): %s",
            contents.path,
            prepared.n_truncated,
            settings.truncation_seq_length,
            shown,
        )


NUCLEOTIDE = FailureKind.NUCLEOTIDE_SEQUENCE
MIN_LENGTH = 20  # letters, gaps not counted: a peptide may be 16 letters of ACGT
ONE_OTHER_IN = 10  # at most one letter in 10 is other than A, C, G, T, U or N
_BASES = b"ACGTUN"
# What else a nucleotide record may hold: IUPAC ambiguity codes, X for a masked base.
_NUCLEOTIDE_LETTERS = _BASES + b"RYKMSWBDHVX"
_GAPS = b"-."


def looks_like_nucleotides(sequence: bytes) -> bool:
    """True for a cleaned sequence of at least `MIN_LENGTH` letters (gaps aside), all of
    them nucleotide codes (ACGTUN, IUPAC ambiguity codes, X), at most one in `ONE_OTHER_IN`
    other than ACGTUN. DNA with a few ambiguity codes, gaps or an X is DNA; a protein, even
    one rich in A, C, G and T, holds other letters (E, F, I, L, P, Q) or many of R, K, S,
    D, H, V... where DNA has few."""
    letters = sequence.translate(None, _GAPS)
    if len(letters) < MIN_LENGTH or letters.translate(None, _NUCLEOTIDE_LETTERS):
        return False
    return len(letters.translate(None, _BASES)) * ONE_OTHER_IN <= len(letters)


def holds_only_nucleotides(contents: FastaContents) -> bool:
    """True when a run refuses the file as nucleotide: every record looks like DNA/RNA."""
    failures = refuse_nucleotide_records(contents).failures
    return len(failures) == contents.n_read > 0 and all(f.kind == NUCLEOTIDE for f in failures)


def refuse_nucleotide_records(contents: FastaContents) -> FastaContents:
    """`contents` with every nucleotide-looking record moved to the failures."""
    kept: list[ProteinRecord] = []
    refused: list[RecordFailure] = []
    for record in contents.records:
        if looks_like_nucleotides(record.sequence):
            message = (
                f"looks like DNA/RNA, not protein ({len(record.sequence)} letters, nucleotide "
                "codes only, mostly A, C, G, T, U, N): give the protein FASTA (the translated "
                "frames)"
            )
            refused.append(RecordFailure(record.id, NUCLEOTIDE, message))
        else:
            kept.append(record)
    if not refused:
        return contents
    return dataclasses.replace(contents, records=kept, failures=[*contents.failures, *refused])
