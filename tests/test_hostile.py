"""Hostile input: each case gives a clear message, leaves nothing partial, and the rest is done."""

import errno
import gzip
import json
import logging
import os

import pytest
import torch
from helpers import random_proteins, says, write_fasta

import fastesm_extract.disk.store as store
from fastesm_extract import FAILURE_LOG_NAME, InputError, extract_files, load_embeddings
from fastesm_extract.cli.main import main
from fastesm_extract.disk.failures import unescape
from fastesm_extract.disk.layout import INVALID_INPUTS_FOLDER
from fastesm_extract.errors import EXIT_USAGE

MESSY = (
    b"\r\n\r\n>crlf_1 desc\r\nMKTA\r\nYIAK\r\n\r\n"
    b">\r\nMKT\r\n"  # '>' alone: no ID
    b">   \nMKT\n"  # header of spaces: no ID
    b">dup\nMK\n>dup\nQQ\n"
    b">nul\nMK\x00T\n"
    b">latin1_\xe9\nMKT\n"
    b">bytes_in_seq\nMK\xc3\xa9T\n"
    b">ok_last\nQQLL*\n"
)


# mtime=0: the same bytes in every process (pytest-xdist workers must collect the same
# test IDs, and gzip's header would otherwise carry the second it was made).
GZIPPED = gzip.compress(b"".join(b">r%d\nMKTAYIAKQR\n" % i for i in range(500)), mtime=0)


def run(loaded, inputs, out, **options):
    return extract_files(inputs, out, model=loaded, show_progress=False, **options)


def good_file(folder):
    return write_fasta(folder / "good.fa", random_proteins(4, 5, 20))


def failure_lines(out):
    return [line.split("\t") for line in (out / FAILURE_LOG_NAME).read_text().splitlines()]


def test_messy_records_are_embedded_or_logged(tiny_model, tmp_path):
    (tmp_path / "messy.fa").write_bytes(MESSY)
    summary = run(tiny_model, [tmp_path / "messy.fa"], tmp_path / "out")
    proteins, _ = load_embeddings(tmp_path / "out" / "messy_ESM.pt", 32)
    assert proteins == ["crlf_1", "dup", "dup", "ok_last"]
    kinds = sorted((unescape(f[2]), f[3]) for f in failure_lines(tmp_path / "out"))
    assert kinds == sorted(
        [
            ("(no ID)", "invalid_header"),  # not '-', which marks a whole file
            ("(no ID)", "invalid_header"),
            ("nul", "invalid_character"),
            ("latin1_\\xe9", "invalid_header"),
            ("bytes_in_seq", "invalid_character"),
        ]
    )
    assert summary.results[0].n_read == 9 and summary.records_failed == 5


def test_a_100000_residue_sequence_is_truncated_and_embedded(tiny_model, tmp_path, caplog):
    records = [("giant", "M" * 100_000), ("small", "MKT")]
    fasta = write_fasta(tmp_path / "g.fa", records)
    with caplog.at_level(logging.WARNING):
        summary = run(tiny_model, [fasta], tmp_path / "out")
    assert summary.ok and summary.results[0].n_truncated == 1
    assert says(caplog.text, "1 sequences longer than 1024 residues were truncated")
    giant = load_embeddings(tmp_path / "out" / "g_ESM.pt", 32)[1][0]
    alone = write_fasta(tmp_path / "m.fa", [("giant", "M" * 1024)])
    run(tiny_model, [alone], tmp_path / "ref")
    assert torch.equal(giant, load_embeddings(tmp_path / "ref" / "m_ESM.pt")[1][0])


UNUSABLE_FILES = [
    ("empty.fa", b"", "is empty: no FASTA records"),
    ("blank.fa", b"\n\n  \n", "is empty: no FASTA records"),
    ("trunc.fa.gz", GZIPPED[: len(GZIPPED) // 2], "damaged or truncated gzip"),
    ("binary.fa", bytes(range(256)) * 4, "is not FASTA"),
    ("only_bad.fa", b">a\n\n>b\n123\n", "has no usable records (2 failed)"),
]


@pytest.mark.parametrize(
    ("name", "content", "message"), UNUSABLE_FILES, ids=[name for name, *_ in UNUSABLE_FILES]
)
def test_unusable_files_fail_alone_with_a_clear_message(
    tiny_model, tmp_path, name, content, message
):
    (tmp_path / name).write_bytes(content)
    good = good_file(tmp_path)
    summary = run(tiny_model, [tmp_path / name, good], tmp_path / "out")
    assert [r.status for r in summary.results] == ["failed", "written"]
    assert message in summary.results[0].message
    lines = failure_lines(tmp_path / "out")
    assert [(f[2], f[3]) for f in lines if f[2] == "-"] == [("-", "unreadable_file")]
    stem = name.split(".")[0]
    assert not (tmp_path / "out" / f"{stem}_ESM.pt").exists()
    # Records that are all invalid input leave a "failed" manifest (no output) in a hidden
    # folder beside the failure log, never beside the input, so that a rerun reports them
    # without logging them again; other unusable files leave nothing.
    remembered = [INVALID_INPUTS_FOLDER] if name == "only_bad.fa" else []
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [FAILURE_LOG_NAME, "good_ESM.pt", "good_ESM.pt.json", *remembered]
    )
    for folder in remembered:
        (manifest,) = (tmp_path / "out" / folder).iterdir()
        assert json.loads(manifest.read_text())["state"] == "failed"


def test_a_folder_without_fasta_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("hello")
    assert main(["extract", str(tmp_path / "docs"), "--device", "cpu"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "no .fa/.faa/.fasta(.gz) files" in err and "Traceback" not in err


def test_an_output_folder_that_cannot_be_written_stops_before_any_work(tiny_model, tmp_path):
    good = good_file(tmp_path)
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(InputError, match="cannot write outputs to .*a_file"):
        run(tiny_model, [good], tmp_path / "a_file" / "out")


def test_a_full_disk_fails_that_file_only_and_leaves_nothing_partial(
    tiny_model, tmp_path, monkeypatch
):
    for part in (1, 2, 3):
        write_fasta(tmp_path / f"p{part}.fa", random_proteins(5, 5, 30, seed=part))
    real_save = torch.save

    def save_or_fill_disk(obj, handle, **options):
        if "p2_ESM.pt" in handle.name:
            handle.write(b"\0" * 1000)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, handle, **options)

    monkeypatch.setattr(store.torch, "save", save_or_fill_disk)
    summary = run(tiny_model, [tmp_path / f"p{part}.fa" for part in (1, 2, 3)], tmp_path / "o")
    assert [r.status for r in summary.results] == ["written", "failed", "written"]
    assert "No space left on device" in summary.results[1].message
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == sorted(
        [FAILURE_LOG_NAME, "p1_ESM.pt", "p1_ESM.pt.json", "p3_ESM.pt", "p3_ESM.pt.json"]
    )
    monkeypatch.setattr(store.torch, "save", real_save)
    assert run(tiny_model, [tmp_path / "p2.fa"], tmp_path / "o").count("written") == 1


def test_a_malicious_pickle_named_like_an_output_is_not_run_and_is_rebuilt(tiny_model, tmp_path):
    fasta = good_file(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "out").mkdir()
    torch.save({"proteins": ["x"], "data": [Evil()]}, tmp_path / "out" / "good_ESM.pt")
    summary = run(tiny_model, [fasta], tmp_path / "out")
    assert summary.count("written") == 1
    assert not marker.exists()
    assert len(load_embeddings(tmp_path / "out" / "good_ESM.pt", 32)[0]) == 4
