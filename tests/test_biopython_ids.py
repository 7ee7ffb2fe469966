"""Record IDs are Biopython's `record.id` (what the DNABERT-S side uses), whatever spaces a
header holds; headers without a usable ID are logged distinctly."""

import pytest
import torch
from Bio import SeqIO
from helpers import random_proteins

from fastesm_extract import extract_files
from fastesm_extract.disk.failures import NO_RECORD_ID, WHOLE_FILE, unescape
from fastesm_extract.disk.fasta import read_fasta

# Whitespace to Python's str.split (hence Biopython) that ASCII splitting does not see.
UNICODE_SPACES = {
    "no-break space": "\u00a0",
    "em space": "\u2003",
    "ideographic space": "\u3000",
    "next line (NEL)": "\u0085",
    "file separator": "\u001c",
    "group separator": "\u001d",
    "record separator": "\u001e",
    "unit separator": "\u001f",
    "line separator": "\u2028",
    "narrow no-break space": "\u202f",
}


def biopython_ids(path):
    with open(path, encoding="utf-8", newline=None) as handle:
        return [record.id for record in SeqIO.parse(handle, "fasta")]


@pytest.mark.parametrize("space", UNICODE_SPACES.values(), ids=UNICODE_SPACES.keys())
def test_the_id_is_biopythons_record_id_whatever_space_ends_it(tmp_path, space):
    path = tmp_path / "spaces.fa"
    headers = [
        f"seq1{space}description",
        f"{space}seq2 rest",  # a space before the ID
        f"seq3{space}{space}x{space}",
        "seq4\u00e9\u4e2d plain",  # non-ASCII letters are part of an ID
    ]
    path.write_text("".join(f">{h}\nMKTL\n" for h in headers), encoding="utf-8")
    ids = [record.id for record in read_fasta(path).records]
    assert ids == biopython_ids(path) == ["seq1", "seq2", "seq3", "seq4\u00e9\u4e2d"]


def test_outputs_hold_biopythons_ids(tiny_model, tmp_path):
    fasta = tmp_path / "p.fa"
    records = random_proteins(3, 5, 20)
    fasta.write_text(
        "".join(
            f">{name}{space}desc\n{sequence}\n"
            for (name, sequence), space in zip(records, ["\u00a0", "\u2003", "\u0085"])
        ),
        encoding="utf-8",
    )
    summary = extract_files([fasta], tmp_path / "out", model=tiny_model, show_progress=False)
    assert summary.ok
    saved = torch.load(tmp_path / "out" / "p_ESM.pt", weights_only=True)
    assert saved["proteins"] == biopython_ids(fasta) == [name for name, _ in records]


def failure_log_rows(path):
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_bare_header_and_a_nul_in_an_id_are_logged_readably(tiny_model, tmp_path):
    fasta = tmp_path / "odd.fa"
    # Bytes that are not UTF-8 in a description (not in the ID) fail nothing.
    fasta.write_bytes(b">\nMKTL\n>nul\x00id\nMKTL\n>ok caf\xe9\nMKTL\n")
    log = tmp_path / "failures.log"
    summary = extract_files(
        [fasta], tmp_path / "out", model=tiny_model, failure_log=log, show_progress=False
    )
    assert summary.records_embedded == 1 and summary.records_failed == 2
    assert "\x00" not in log.read_text(encoding="utf-8")
    rows = failure_log_rows(log)
    assert [(row[2], row[3]) for row in rows] == [
        (NO_RECORD_ID, "invalid_header"),
        ("nul\\u0000id", "invalid_header"),
    ]
    assert NO_RECORD_ID != WHOLE_FILE and unescape(rows[1][2]) == "nul\x00id"
    assert "NUL" in rows[1][4]
