"""Misconfiguration is named, not blamed on the device or the disk."""

import shutil

import pytest
from helpers import random_proteins, write_fasta

import fastesm_extract.extract.pipeline as pipeline_module
from fastesm_extract import ModelLoadError, load_model
from fastesm_extract.cli.main import main
from fastesm_extract.demo import ESM_VOCAB
from fastesm_extract.errors import EXIT_USAGE
from fastesm_extract.running.config import resolve_config
from fastesm_extract.running.runner import run
from fastesm_extract.running.sources import file_jobs


@pytest.fixture
def longer_vocabulary(tiny_checkpoint, tmp_path):
    """The tiny checkpoint with a vocab.txt of 40 more tokens than its 33 embedding rows,
    put first, so every residue's id is beyond the embedding matrix."""
    folder = shutil.copytree(tiny_checkpoint, tmp_path / "checkpoint")
    extra = [f"<extra_{i}>" for i in range(40)]
    (folder / "vocab.txt").write_text("\n".join([*extra, *ESM_VOCAB]) + "\n")
    return folder


def test_a_tokenizer_larger_than_the_embedding_matrix_is_refused_at_load(longer_vocabulary):
    with pytest.raises(ModelLoadError, match="tokenizer does not match its weights") as raised:
        load_model(str(longer_vocabulary), device="cpu")
    assert "embedding matrix has 33 rows" in str(raised.value)


def test_the_cli_names_the_mismatch_with_exit_status_2(longer_vocabulary, tmp_path, capsys):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(4, 10, 20))
    argv = ["extract", str(fasta), "-o", str(tmp_path / "out"), "--model", str(longer_vocabulary)]
    assert main([*argv, "--device", "cpu", "--quiet"]) == EXIT_USAGE
    stderr = capsys.readouterr().err
    assert "tokenizer does not match its weights" in stderr
    assert "unusable" not in stderr and "Traceback" not in stderr
    assert not (tmp_path / "out" / "p_ESM.pt").exists()


def planned_then(tiny_model, tmp_path, names):
    inputs = [write_fasta(tmp_path / f"{n}.fa", random_proteins(3, 5, 20, seed=i))
              for i, n in enumerate(names)]  # fmt: skip
    config = resolve_config(
        model=tiny_model, failure_log=tmp_path / "failures.log", show_progress=False
    )
    return inputs, file_jobs(inputs, tmp_path / "out", config.failure_log), config


def logged(tmp_path):
    return [line.split("\t")[3:] for line in (tmp_path / "failures.log").read_text().splitlines()]


def test_an_input_deleted_before_it_is_read_is_reported_as_vanished(tiny_model, tmp_path):
    inputs, jobs, config = planned_then(tiny_model, tmp_path, "abc")
    inputs[1].unlink()  # after the jobs were planned
    summary = run(jobs, config)
    statuses = {r.job.fasta.name: r.status for r in summary.results}
    assert statuses == {"a.fa": "written", "b.fa": "failed", "c.fa": "written"}
    (failed,) = [r for r in summary.results if r.status == "failed"]
    assert "the input vanished" in failed.message
    ((kind, message),) = logged(tmp_path)
    assert kind == "input_vanished" and "vanished" in message


def test_an_input_deleted_while_it_is_computed_is_reported_as_vanished(
    monkeypatch, tiny_model, tmp_path
):
    inputs, jobs, config = planned_then(tiny_model, tmp_path, "ab")
    compute = pipeline_module.compute_file

    def compute_then_delete(prepared, *args, **kwargs):
        computed = compute(prepared, *args, **kwargs)
        if prepared.job.fasta == inputs[0]:
            inputs[0].unlink()  # read and embedded, deleted before it is written
        return computed

    monkeypatch.setattr(pipeline_module, "compute_file", compute_then_delete)
    summary = run(jobs, config)
    statuses = {r.job.fasta.name: (r.status, r.message) for r in summary.results}
    assert statuses["b.fa"][0] == "written"
    if statuses["a.fa"][0] == "failed":  # reported as vanished, never as a write error
        assert "the input vanished" in statuses["a.fa"][1]
        assert [kind for kind, _ in logged(tmp_path)] == ["input_vanished"]
    else:  # its bytes were read and hashed: the output may be written from them
        assert statuses["a.fa"][0] == "written"
