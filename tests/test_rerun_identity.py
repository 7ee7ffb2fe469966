"""A rerun trusts a finished output and its input by their recorded stat identity (issue 29):
with nothing changed it hashes and loads nothing, and every change is still caught, even
an edit that keeps the size and puts the mtime back (ctime and the hash catch it)."""

import os
import time

import torch
from helpers import random_proteins, write_fasta

import fastesm_extract.disk.verdict as verdict
from fastesm_extract import extract_files
from fastesm_extract.disk.store import (
    embeddings_from_block,
    load_embeddings,
    save_embeddings_atomic,
)


def run(loaded, inputs, out, **options):
    return extract_files(inputs, out, model=loaded, show_progress=False, **options)


def _edit_keeping_size_and_mtime(path, edit) -> None:
    """Rewrite `path` with `edit(bytes)` (same length), then put its mtime back."""
    status = os.stat(path)
    time.sleep(0.05)  # past the file system's timestamp granularity
    data = path.read_bytes()
    changed = edit(data)
    assert len(changed) == len(data) and changed != data
    path.write_bytes(changed)
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == status.st_mtime_ns


def test_a_rerun_over_unchanged_files_neither_hashes_nor_loads_them(
    tiny_model, tmp_path, monkeypatch
):
    fastas = [
        write_fasta(tmp_path / f"{name}.fa", random_proteins(4, 5, 20, seed=seed))
        for seed, name in enumerate("xy")
    ]
    out = tmp_path / "out"
    assert run(tiny_model, fastas, out).count("written") == 2

    def refuse(*args, **kwargs):
        raise AssertionError("hashed or loaded an unchanged file")

    monkeypatch.setattr(verdict, "sha256_of", refuse)
    monkeypatch.setattr(verdict, "load_embeddings", refuse)
    summary = run(tiny_model, fastas, out)
    assert summary.count("skipped") == 2 and summary.ok


def test_an_input_edited_with_its_size_and_mtime_kept_is_rebuilt(tiny_model, tmp_path):
    fasta = write_fasta(tmp_path / "x.fa", [("a", "MKTAYIAK"), ("b", "MKVLAAGG")])
    out = tmp_path / "out"
    run(tiny_model, [fasta], out)
    before = load_embeddings(out / "x_ESM.pt")[1]
    _edit_keeping_size_and_mtime(fasta, lambda data: data.replace(b"MKTAYIAK", b"MKTAYIAW"))
    summary = run(tiny_model, [fasta], out)
    assert summary.count("written") == 1 and summary.ok
    assert summary.results[0].rebuilt_because == "the input changed since it was made"
    after = load_embeddings(out / "x_ESM.pt")[1]
    assert not torch.equal(after[0], before[0]) and torch.equal(after[1], before[1])
    assert run(tiny_model, [fasta], out).count("skipped") == 1


def test_an_output_edited_with_its_size_and_mtime_kept_is_rebuilt(tiny_model, tmp_path):
    fasta = write_fasta(tmp_path / "x.fa", random_proteins(3, 5, 20, seed=7))
    out = tmp_path / "out"
    run(tiny_model, [fasta], out)
    output = out / "x_ESM.pt"
    expected = load_embeddings(output)[1]
    proteins = load_embeddings(output)[0]
    other = tmp_path / "other_ESM.pt"  # the same IDs, other values: the same size
    save_embeddings_atomic(other, proteins, embeddings_from_block(torch.stack(expected) + 1))
    _edit_keeping_size_and_mtime(output, lambda data: other.read_bytes())
    summary = run(tiny_model, [fasta], out)
    assert summary.count("written") == 1 and summary.ok
    assert "not the output its manifest describes" in summary.results[0].rebuilt_because
    assert torch.equal(torch.stack(load_embeddings(output)[1]), torch.stack(expected))
