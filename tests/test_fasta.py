import gzip

import pytest
from helpers import write_fasta

from fastesm_extract.disk.fasta import clean_sequence, parse_fasta, read_fasta
from fastesm_extract.disk.layout import is_fasta_name, output_stem
from fastesm_extract.errors import FastaError


def test_ids_are_header_text_up_to_first_whitespace(tmp_path):
    path = write_fasta(tmp_path / "a.fa", [("seq1 some description", "MKT"), ("seq2\tx", "AAA")])
    contents = read_fasta(path)
    assert [r.id for r in contents.records] == ["seq1", "seq2"]
    assert [r.sequence for r in contents.records] == [b"MKT", b"AAA"]
    assert contents.n_read == 2 and contents.failures == []


def test_clean_up_whitespace_case_and_one_trailing_stop():
    assert clean_sequence(b"mk tl\r\n\tAa*") == b"MKTLAA"
    assert clean_sequence(b"MK**") == b"MK*"  # only one stop is dropped
    assert clean_sequence(b"M*K") == b"M*K"


def test_multiline_crlf_and_blank_lines(tmp_path):
    path = tmp_path / "crlf.fa"
    path.write_bytes(b"\r\n\r\n>a desc\r\nMK\r\n\r\nTL\r\n>b\r\nAA*\r\n")
    contents = read_fasta(path)
    assert [(r.id, r.sequence) for r in contents.records] == [("a", b"MKTL"), ("b", b"AA")]


def test_bad_records_become_failures_and_the_rest_is_kept(tmp_path):
    path = tmp_path / "bad.fa"
    path.write_bytes(
        b">ok1\nMKT\n>empty\n\n>stop_only\n*\n>digits\nMK1T\n>inner_stop\nM*K\n"
        b">\nMKT\n>ok2\nxjb-.\n>nul\nMK\x00T\n"
    )
    contents = read_fasta(path)
    assert [(r.id, r.sequence) for r in contents.records] == [("ok1", b"MKT"), ("ok2", b"XJB-.")]
    kinds = {(f.record_id, f.kind) for f in contents.failures}
    assert kinds == {
        ("empty", "empty_sequence"),
        ("stop_only", "empty_sequence"),
        ("digits", "invalid_character"),
        ("inner_stop", "invalid_character"),
        ("(no ID)", "invalid_header"),  # not '-', which marks a whole file
        ("nul", "invalid_character"),
    }
    assert contents.n_read == 8
    digits = next(f for f in contents.failures if f.record_id == "digits")
    assert "'1'" in digits.message


def test_duplicate_ids_are_kept_in_order_and_reported(tmp_path):
    path = write_fasta(tmp_path / "d.fa", [("x", "MK"), ("y", "AA"), ("x", "LL")])
    contents = read_fasta(path)
    assert [(r.id, r.sequence) for r in contents.records] == [
        ("x", b"MK"),
        ("y", b"AA"),
        ("x", b"LL"),
    ]
    assert contents.duplicate_ids == ["x"]


def test_gzip_is_detected_by_content(tmp_path):
    path = tmp_path / "p.fa.gz"
    path.write_bytes(gzip.compress(b">a\nMKT\n"))
    assert [r.sequence for r in read_fasta(path).records] == [b"MKT"]
    truncated = tmp_path / "t.fa.gz"
    truncated.write_bytes(gzip.compress(b">a\nMKT\n" * 1000)[:40])
    with pytest.raises(FastaError, match="gzip"):
        read_fasta(truncated)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\n \n", "empty"),
        (b"MKTL\n>a\nMK\n", "not FASTA"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not FASTA"),
    ],
)
def test_unusable_files_raise_fasta_error(tmp_path, content, message):
    path = tmp_path / "x.fa"
    path.write_bytes(content)
    with pytest.raises(FastaError, match=message):
        read_fasta(path)


def test_unreadable_file_raises_fasta_error(tmp_path):
    with pytest.raises(FastaError, match="cannot read"):
        read_fasta(tmp_path / "missing.fa")
    with pytest.raises(FastaError, match="cannot read"):
        read_fasta(tmp_path)  # a folder


def test_non_utf8_header_is_a_record_failure(tmp_path):
    contents = parse_fasta(b">ok\nMK\n>bad\xff\nMK\n", tmp_path / "x.fa")
    assert [r.id for r in contents.records] == ["ok"]
    assert [(f.record_id, f.kind) for f in contents.failures] == [("bad\\xff", "invalid_header")]


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("output_1.fa", "output_1"),
        ("output_1.fa.gz", "output_1"),
        ("x.faa", "x"),
        ("x.y.fasta", "x.y"),
        ("X.FASTA.GZ", "X"),
    ],
)
def test_output_stem_removes_fasta_extension_and_gz(tmp_path, name, stem):
    assert output_stem(tmp_path / name) == stem
    assert is_fasta_name(tmp_path / name)


def test_non_fasta_names_are_not_fasta():
    from pathlib import Path

    assert not is_fasta_name(Path("notes.txt"))
    assert not is_fasta_name(Path("x_ESM.pt"))
