"""Resume after other models, kills and failures: nothing is replaced or forgotten."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from helpers import random_proteins, says, subprocess_environment, write_fasta

from fastesm_extract import extract_fast_esm, extract_files, load_embeddings, load_model
from fastesm_extract.cli.main import main
from fastesm_extract.demo import build_demo_checkpoint
from fastesm_extract.disk.layout import manifest_path
from fastesm_extract.disk.verify import verify_output
from fastesm_extract.errors import EXIT_FAILURES, EXIT_OK


def run(loaded, inputs, out, **options):
    return extract_files(inputs, out, model=loaded, show_progress=False, **options)


def snapshot(folder):
    return {
        p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in {".pt", ".json"}
    }


@pytest.fixture(scope="module")
def other_size_model(tmp_path_factory):
    """Another ESM2 checkpoint with hidden size 16 (the tiny one has 32)."""
    folder = build_demo_checkpoint(
        tmp_path_factory.mktemp("esm16"), num_layers=1, hidden_size=16, num_heads=2, seed=3
    )
    return load_model(str(folder), device="cpu")


@pytest.fixture
def two_files(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for part in (1, 2):
        write_fasta(folder / f"output_{part}.fa", random_proteins(8, 5, 40, seed=part))
    return folder


# ------------------------------------------------------------------ 3: another model


def test_another_hidden_size_never_replaces_outputs_silently(
    tiny_model, other_size_model, two_files, tmp_path
):
    out = tmp_path / "out"
    run(tiny_model, [two_files], out)
    before = snapshot(out)
    summary = run(other_size_model, [two_files], out)
    assert summary.count("stale") == 2 and summary.count("written") == 0
    assert all(says(result.message, "hidden size 32 != 16") for result in summary.results)
    assert snapshot(out) == before  # kept, bytes and manifests
    assert run(other_size_model, [two_files], out, redo_stale=True).count("written") == 2
    assert load_embeddings(out / "output_1_ESM.pt", 16)
    assert run(tiny_model, [two_files], out, overwrite=True).count("written") == 2
    assert load_embeddings(out / "output_1_ESM.pt", 32)


def test_an_output_of_another_dimension_without_manifest_is_stale_too(
    tiny_model, two_files, tmp_path
):
    # e.g. the original pipeline's 2560-dim ESM2-3B outputs, which have no manifest
    out = tmp_path / "out"
    out.mkdir()
    original = {"proteins": ["prot_1_0"], "data": [torch.ones(2560)]}
    torch.save(original, out / "output_1_ESM.pt")
    before = (out / "output_1_ESM.pt").read_bytes()
    summary = run(tiny_model, [two_files / "output_1.fa"], out)
    assert summary.count("stale") == 1 and not summary.ok  # kept, but not current: exit 1
    assert summary.results[0].message == "2560 dimensions, this model gives 32"
    assert (out / "output_1_ESM.pt").read_bytes() == before
    assert run(tiny_model, [two_files / "output_1.fa"], out, redo_stale=True).count("written") == 1


# ------------------------------------------------- 4: an output and its manifest are one unit

KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import fastesm_extract.disk.manifest as manifest
    from fastesm_extract import extract_files

    step, calls = sys.argv[4], []
    real_write, real_save = manifest.write_manifest, manifest.save_embeddings_atomic

    def kill_if(name):
        calls.append(name)
        if "+".join(calls) == step:
            os.kill(os.getpid(), signal.SIGKILL)

    def write_manifest(output, content):
        real_write(output, content)
        kill_if(content["state"])

    def save(*args):
        real_save(*args)
        kill_if("output")

    manifest.write_manifest, manifest.save_embeddings_atomic = write_manifest, save
    extract_files([sys.argv[1]], sys.argv[2], model=sys.argv[3], device="cpu",
                  show_progress=False, overwrite=os.environ.get("OVERWRITE") == "1")
    """
)


@pytest.mark.e2e
@pytest.mark.parametrize("overwrite", [False, True])
def test_a_kill_at_any_step_of_writing_never_leaves_an_output_taken_as_finished(
    tiny_checkpoint, tiny_model, tmp_path, overwrite
):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(6, 5, 30))
    reference = tmp_path / "reference"
    run(tiny_model, [fasta], reference)
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT)
    # The steps of one write: pending manifest, output, complete manifest.
    for step in ("pending", "pending+output", "pending+output+complete"):
        out = tmp_path / f"out-{step}-{overwrite}"
        if overwrite:  # an earlier, different unit is being replaced
            run(tiny_model, [fasta], out, truncation_seq_length=3)
        env = {**subprocess_environment(), "OVERWRITE": "1" if overwrite else "0"}
        killed = subprocess.run(
            [sys.executable, str(script), str(fasta), str(out), str(tiny_checkpoint), step],
            env=env,
            timeout=300,
        )
        assert killed.returncode == -signal.SIGKILL
        finished_before = step.endswith("complete")
        report = verify_output(out / "p_ESM.pt")
        assert report.ok == finished_before or not (out / "p_ESM.pt").exists()
        summary = run(tiny_model, [fasta], out)
        assert summary.count("written" if not finished_before else "skipped") == 1, step
        assert summary.ok
        # Bitwise when this run rebuilt it; the killed process ran with another thread count.
        got, expected = load_embeddings(out / "p_ESM.pt"), load_embeddings(reference / "p_ESM.pt")
        assert got[0] == expected[0]
        assert torch.allclose(torch.stack(got[1]), torch.stack(expected[1]), atol=1e-6)
        assert json.loads(manifest_path(out / "p_ESM.pt").read_text())["state"] == "complete"


def test_a_full_disk_when_writing_the_manifest_fails_the_file_and_the_next_run_rebuilds_it(
    tiny_model, tmp_path, monkeypatch
):
    import fastesm_extract.disk.manifest as manifest

    fasta = write_fasta(tmp_path / "p.fa", random_proteins(4, 5, 30))
    real_write = manifest.write_manifest

    def disk_full_on_completion(output, content):
        if content["state"] == "complete":
            raise OSError(28, "No space left on device")
        real_write(output, content)

    monkeypatch.setattr(manifest, "write_manifest", disk_full_on_completion)
    summary = run(tiny_model, [fasta], tmp_path / "out")
    assert summary.count("failed") == 1 and not summary.ok
    monkeypatch.setattr(manifest, "write_manifest", real_write)
    assert run(tiny_model, [fasta], tmp_path / "out").count("written") == 1


def test_outputs_of_the_original_pipeline_without_manifest_stay_accepted(tiny_model, tmp_path):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(3, 5, 30))
    proteins, data = extract_fast_esm(fasta, model=tiny_model)
    (tmp_path / "out").mkdir()
    torch.save({"proteins": proteins[::-1], "data": data[::-1]}, tmp_path / "out" / "p_ESM.pt")
    summary = run(tiny_model, [fasta], tmp_path / "out")
    assert summary.count("skipped") == 1 and summary.ok


# ------------------------------------------------------- 5: failed records are not forgotten


class FailingModel(torch.nn.Module):
    """Wraps a model; raises `error` while `broken` is True."""

    def __init__(self, inner, error):
        super().__init__()
        self.inner, self.config, self.error, self.broken = inner, inner.config, error, True

    def forward(self, input_ids, attention_mask):
        if self.broken:
            raise self.error
        return self.inner(input_ids=input_ids, attention_mask=attention_mask)


def test_a_file_with_no_embedding_writes_no_output_and_reruns_retry_it(tiny_model, tmp_path):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(3, 5, 30))
    failing = FailingModel(tiny_model.model, RuntimeError("cuDNN error: CUDNN_STATUS_BAD_PARAM"))
    broken = dataclasses.replace(tiny_model, model=failing)
    for _ in range(2):  # the same on a rerun
        summary = run(broken, [fasta], tmp_path / "out")
        assert summary.count("failed") == 1 and summary.records_failed == 3 and not summary.ok
        assert not (tmp_path / "out" / "p_ESM.pt").exists()
    failing.broken = False
    summary = run(broken, [fasta], tmp_path / "out")
    assert summary.count("written") == 1 and summary.ok


def test_records_that_failed_for_a_passing_reason_are_retried_by_a_rerun(tiny_model, tmp_path):
    records = [("a", "MKT"), ("b", "QQL" * 20), ("c", "MK")]
    fasta = write_fasta(tmp_path / "p.fa", records)
    calls = []

    class OneBadBatch(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.config = inner, inner.config

        def forward(self, input_ids, attention_mask):
            if input_ids.shape[1] > 20 and not calls:  # the long record, once: a passing fault
                calls.append(input_ids.shape)
                raise RuntimeError("NCCL timeout")
            return self.inner(input_ids=input_ids, attention_mask=attention_mask)

    flaky = dataclasses.replace(tiny_model, model=OneBadBatch(tiny_model.model))
    first = run(flaky, [fasta], tmp_path / "out", toks_per_batch=64)
    assert first.records_failed == 1 and not first.ok
    assert len(load_embeddings(tmp_path / "out" / "p_ESM.pt")[0]) == 2
    rerun = run(flaky, [fasta], tmp_path / "out", toks_per_batch=64)
    assert rerun.count("written") == 1 and rerun.ok and rerun.records_failed == 0
    assert load_embeddings(tmp_path / "out" / "p_ESM.pt")[0] == ["a", "b", "c"]


def test_input_invalid_records_are_reported_again_on_a_rerun_with_nothing_to_do(
    tiny_checkpoint, tmp_path, capsys
):
    (tmp_path / "p.fa").write_bytes(b">good\nMKTAYIAK\n>empty\n\n>bad\nMK1T\n")
    argv = ["extract", str(tmp_path / "p.fa"), "-o", str(tmp_path / "out")]
    argv += ["--model", str(tiny_checkpoint), "--device", "cpu", "-q"]
    assert main(argv) == EXIT_FAILURES
    first = capsys.readouterr().err
    assert says(first, "1 written, 0 skipped, 0 failed files; 1 records embedded, 2 failed")
    assert "(2 invalid input)" in first
    before = (tmp_path / "out" / "p_ESM.pt").read_bytes()
    assert main(argv) == EXIT_FAILURES  # the same outputs on disk: the same verdict
    second = capsys.readouterr().err
    assert says(second, "0 written, 1 skipped, 0 failed files; 0 records embedded, 2 failed")
    assert "(2 invalid input)" in second
    assert (tmp_path / "out" / "p_ESM.pt").read_bytes() == before  # not recomputed
    # Workflow engines: input-invalid records are accepted as success, and still reported.
    assert main([*argv, "--accept-invalid"]) == EXIT_OK
    assert "(2 invalid input (accepted))" in capsys.readouterr().err


def test_accept_invalid_does_not_accept_other_failures(tiny_model, tmp_path):
    records = [("a", "MKT"), ("b", "QQL" * 20)]
    fasta = write_fasta(tmp_path / "p.fa", records)

    def fail_long(input_ids):
        return input_ids.shape[1] > 20

    class BreakLong(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.config = inner, inner.config

        def forward(self, input_ids, attention_mask):
            if fail_long(input_ids):
                raise RuntimeError("device-side assert")
            return self.inner(input_ids=input_ids, attention_mask=attention_mask)

    broken = dataclasses.replace(tiny_model, model=BreakLong(tiny_model.model))
    summary = run(broken, [fasta], tmp_path / "out", toks_per_batch=64, accept_invalid=True)
    assert summary.records_failed == 1 and summary.records_invalid == 0 and not summary.ok


def test_the_drop_in_writes_no_file_without_an_embedding(tiny_model, tmp_path):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(2, 5, 30))
    broken = dataclasses.replace(
        tiny_model, model=FailingModel(tiny_model.model, RuntimeError("boom"))
    )
    log = tmp_path / "failures.log"
    proteins, data = extract_fast_esm(fasta, tmp_path / "p_ESM.pt", model=broken, failure_log=log)
    assert (proteins, data) == ([], [])
    assert not os.path.exists(tmp_path / "p_ESM.pt")
