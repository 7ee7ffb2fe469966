"""One path per file: the drop-in, the many-files run and the CLI visit the same stages
(claim -> prepare -> compute -> publish) in the same modules, so the drop-in gets every
rule of a run: the lock, leftover cleanup, failed manifests, logging before raising."""

import pytest
from helpers import random_proteins, write_fasta

import fastesm_extract.extract.pipeline as pipeline
from fastesm_extract import extract_fast_esm, extract_files
from fastesm_extract.cli.main import main
from fastesm_extract.disk.layout import temporary_path
from fastesm_extract.disk.locks import OutputLocks
from fastesm_extract.errors import FastaError, OutputError


@pytest.fixture
def stages(monkeypatch):
    """The stage functions each file passes through, in order, as (stage, file name)."""
    visited = []
    for stage in ("claim_output", "prepare_file", "compute_file", "publish"):
        original = getattr(pipeline, stage)

        def recording(job_or_prepared, *args, _stage=stage, _original=original, **kwargs):
            job = getattr(job_or_prepared, "job", job_or_prepared)
            visited.append((_stage, job.fasta.name))
            return _original(job_or_prepared, *args, **kwargs)

        monkeypatch.setattr(pipeline, stage, recording)
    return visited


def test_the_drop_in_the_api_and_the_cli_visit_the_same_stages(
    tiny_model, tiny_checkpoint, tmp_path, stages
):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(4, 5, 20))
    expected = [
        (stage, "p.fa") for stage in ("claim_output", "prepare_file", "compute_file", "publish")
    ]
    extract_fast_esm(fasta, tmp_path / "a" / "p_ESM.pt", model=tiny_model)
    assert stages == expected
    stages.clear()
    extract_files([fasta], tmp_path / "b", model=tiny_model, show_progress=False)
    assert stages == expected
    stages.clear()
    argv = ["extract", str(fasta), "-o", str(tmp_path / "c"), "--model", str(tiny_checkpoint)]
    assert main([*argv, "--device", "cpu", "-q"]) == 0
    assert stages == expected
    stages.clear()
    extract_fast_esm(fasta, model=tiny_model)  # in memory: the same stages, nothing written
    assert stages == expected


def test_the_drop_in_respects_another_runs_lock_and_cleans_a_killed_runs_leftovers(
    tiny_model, tmp_path
):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(3, 5, 20))
    out = tmp_path / "p_ESM.pt"
    leftover = temporary_path(out, "deadbeef")
    leftover.write_bytes(b"half an output of a killed run")
    locks = OutputLocks()
    assert locks.try_acquire(out) is None  # another live run computes this output
    try:
        with pytest.raises(OutputError, match="being computed by"):
            extract_fast_esm(fasta, out, model=tiny_model, failure_log=tmp_path / "f.log")
        assert leftover.exists()  # not ours to remove while another run holds the lock
    finally:
        locks.close()
    proteins, _ = extract_fast_esm(fasta, out, model=tiny_model, failure_log=tmp_path / "f.log")
    assert len(proteins) == 3 and out.exists()
    assert not leftover.exists()  # removed once this call held the lock


def test_the_drop_in_logs_an_all_invalid_file_once_per_change_of_input(tiny_model, tmp_path):
    fasta = tmp_path / "bad.fa"
    fasta.write_text(">a\nMK1\n>b\nMK2\n")
    out, log = tmp_path / "bad_ESM.pt", tmp_path / "f.log"
    for _ in range(3):
        with pytest.raises(FastaError):
            extract_fast_esm(fasta, out, model=tiny_model, failure_log=log)
        assert len(log.read_text().splitlines()) == 3  # two records and the file, once
    assert not out.exists()
