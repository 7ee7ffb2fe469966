"""Nucleotide records given as protein input are refused, each with its own failure kind.

A, C, G and T are amino-acid letters too, so a DNA or RNA chunk would otherwise be embedded
as a (meaningless) protein. A record is taken for nucleotides when it has at least
`MIN_LENGTH` residues, all of them A, C, G, T, U or N: for a real protein of that length the
chance is about 0.26**20 ~ 2e-12 (those letters make ~26% of UniProt residues), and the
false-positive rate measured on realistic protein sets is in tests/test_nucleotide.py.
"""

from __future__ import annotations

import dataclasses

from .failures import FailureKind, RecordFailure
from .fasta import FastaContents, ProteinRecord

NUCLEOTIDE = FailureKind.NUCLEOTIDE_SEQUENCE
MIN_LENGTH = 20
_NUCLEOTIDE_LETTERS = b"ACGTUN"


def looks_like_nucleotides(sequence: bytes) -> bool:
    """True for a cleaned sequence of at least `MIN_LENGTH` letters, all of ACGTUN."""
    return len(sequence) >= MIN_LENGTH and not sequence.translate(None, _NUCLEOTIDE_LETTERS)


def refuse_nucleotide_records(contents: FastaContents) -> FastaContents:
    """`contents` with every nucleotide-looking record moved to the failures."""
    kept: list[ProteinRecord] = []
    refused: list[RecordFailure] = []
    for record in contents.records:
        if looks_like_nucleotides(record.sequence):
            message = (
                f"looks like DNA/RNA, not protein ({len(record.sequence)} letters, all of "
                "A, C, G, T, U, N): give the protein FASTA (the translated frames)"
            )
            refused.append(RecordFailure(record.id, NUCLEOTIDE, message))
        else:
            kept.append(record)
    if not refused:
        return contents
    return dataclasses.replace(contents, records=kept, failures=[*contents.failures, *refused])
