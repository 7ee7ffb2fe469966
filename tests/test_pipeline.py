import builtins
import dataclasses
import logging
import re
from pathlib import Path

import pytest
import torch
from helpers import random_proteins, says, write_fasta

import fastesm_extract.api.files as api
import fastesm_extract.extract.pipeline as pipeline
import fastesm_extract.running.config as config
from fastesm_extract import FAILURE_LOG_NAME, extract_fast_esm, extract_files, load_embeddings
from fastesm_extract.errors import InputError
from fastesm_extract.running.sources import plan_jobs

BAD_RECORDS = b">good1\nMKTAYIAK\n>empty\n\n>bad_char\nMK1T\n>good2\nQQLLA*\n"


def run(loaded, inputs, out=None, **options):
    return extract_files(inputs, out, model=loaded, show_progress=False, **options)


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.rglob("*_ESM.pt"))}


@pytest.fixture
def three_files(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for part in (1, 2, 3):
        write_fasta(folder / f"output_{part}.fa", random_proteins(60, 1, 400, seed=part))
    return folder


def test_many_files_written_in_fasta_order_and_equal_to_single_file_calls(
    tiny_model, three_files, tmp_path
):
    summary = run(tiny_model, [three_files], tmp_path / "out")
    assert summary.ok and summary.count("written") == 3 and summary.records_embedded == 180
    for part in (1, 2, 3):
        proteins, data = load_embeddings(tmp_path / "out" / f"output_{part}_ESM.pt", 32)
        assert proteins == [f"prot_{part}_{i}" for i in range(60)]  # FASTA order
        alone = extract_fast_esm(three_files / f"output_{part}.fa", model=tiny_model)
        assert alone[0] == proteins
        assert torch.equal(torch.stack(alone[1]), torch.stack(data))  # bitwise


def test_output_is_bitwise_identical_alone_or_among_files(tiny_model, three_files, tmp_path):
    run(tiny_model, [three_files], tmp_path / "together")
    run(tiny_model, [three_files / "output_2.fa"], tmp_path / "alone")
    together = (tmp_path / "together" / "output_2_ESM.pt").read_bytes()
    assert (tmp_path / "alone" / "output_2_ESM.pt").read_bytes() == together


def test_without_output_dir_outputs_go_beside_inputs(tiny_model, three_files):
    run(tiny_model, [three_files / "output_1.fa"])
    assert (three_files / "output_1_ESM.pt").exists()


def test_folder_layout_is_kept_under_output_dir(tmp_path):
    (tmp_path / "in" / "a" / "b").mkdir(parents=True)
    for name in ("a/x.fa", "a/b/y.faa.gz", "a/b/notes.txt", "z.fasta"):
        (tmp_path / "in" / name).write_text(">s\nMK\n")
    jobs = plan_jobs([tmp_path / "in"], tmp_path / "out")
    assert sorted(str(j.output.relative_to(tmp_path / "out")) for j in jobs) == [
        "a/b/y_ESM.pt",
        "a/x_ESM.pt",
        "z_ESM.pt",
    ]
    with pytest.raises(InputError, match="does not exist"):
        plan_jobs([tmp_path / "missing.fa"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .fa"):
        plan_jobs([tmp_path / "empty"])
    (tmp_path / "in" / "a" / "x.fasta").write_text(">s\nMK\n")
    with pytest.raises(InputError, match="would both write"):
        plan_jobs([tmp_path / "in"], tmp_path / "out")


def test_resume_skips_valid_outputs_without_recomputing(
    tiny_model, three_files, tmp_path, monkeypatch
):
    run(tiny_model, [three_files], tmp_path / "out")
    before = outputs(tmp_path / "out")

    def must_not_compute(*args, **kwargs):
        raise AssertionError("a valid output was recomputed")

    monkeypatch.setattr(pipeline, "compute_file", must_not_compute)
    summary = run(tiny_model, [three_files], tmp_path / "out")
    assert summary.count("skipped") == 3 and summary.ok
    assert outputs(tmp_path / "out") == before


def test_truncated_or_unloadable_outputs_are_reported_and_rebuilt(
    tiny_model, three_files, tmp_path, caplog
):
    out = tmp_path / "out"
    run(tiny_model, [three_files], out)
    before = outputs(out)
    first, second = out / "output_1_ESM.pt", out / "output_2_ESM.pt"
    first.write_bytes(first.read_bytes()[:1000])
    second.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        summary = run(tiny_model, [three_files], out)
    assert (summary.count("written"), summary.count("skipped")) == (2, 1)
    assert outputs(out) == before
    assert caplog.text.count("will be rebuilt") == 2


def test_overwrite_recomputes(tiny_model, three_files, tmp_path):
    run(tiny_model, [three_files], tmp_path / "out")
    summary = run(tiny_model, [three_files], tmp_path / "out", overwrite=True)
    assert summary.count("written") == 3


def test_bad_records_and_bad_files_are_logged_and_the_rest_is_produced(
    tiny_model, tmp_path, monkeypatch
):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a_records.fa").write_bytes(BAD_RECORDS)
    (folder / "b_not_fasta.fa").write_bytes(b"this is not fasta\n")
    (folder / "c_unreadable.fa").write_bytes(b">x\nMK\n")
    write_fasta(folder / "d_good.fa", random_proteins(5, 10, 20))
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if str(file).endswith("c_unreadable.fa"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    out = tmp_path / "out"
    summary = run(tiny_model, [folder], out)
    monkeypatch.setattr(builtins, "open", real_open)

    assert not summary.ok
    assert summary.count("written") == 2 and summary.count("failed") == 2
    proteins, _ = load_embeddings(out / "a_records_ESM.pt", 32)
    assert proteins == ["good1", "good2"]
    assert len(load_embeddings(out / "d_good_ESM.pt", 32)[0]) == 5
    assert not (out / "b_not_fasta_ESM.pt").exists() and not (out / "c_unreadable_ESM.pt").exists()

    lines = [line.split("\t") for line in (out / FAILURE_LOG_NAME).read_text().splitlines()]
    assert all(len(fields) == 5 for fields in lines)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", fields[0]) for fields in lines)
    by_file = {(Path(f[1]).name, f[2], f[3]) for f in lines}
    assert by_file == {
        ("a_records.fa", "empty", "empty_sequence"),
        ("a_records.fa", "bad_char", "invalid_character"),
        ("b_not_fasta.fa", "-", "unreadable_file"),
        ("c_unreadable.fa", "-", "unreadable_file"),
    }
    assert "Permission denied" in next(f[4] for f in lines if f[1].endswith("c_unreadable.fa"))


def test_failure_log_path_can_be_overridden(tiny_model, tmp_path):
    (tmp_path / "a.fa").write_bytes(BAD_RECORDS)
    log_path = tmp_path / "logs" / "mine.log"
    run(tiny_model, [tmp_path / "a.fa"], tmp_path / "out", failure_log=log_path)
    assert len(log_path.read_text().splitlines()) == 2
    assert not (tmp_path / "out" / FAILURE_LOG_NAME).exists()


class FlakyModel(torch.nn.Module):
    """Wraps a model; raises chosen errors for chosen batches, like a GPU would."""

    def __init__(self, inner, fail_when):
        super().__init__()
        self.inner, self.config, self.fail_when, self.calls = inner, inner.config, fail_when, []

    def forward(self, input_ids, attention_mask):
        self.calls.append(input_ids.shape[0])
        error = self.fail_when(input_ids)
        if error is not None:
            raise error
        return self.inner(input_ids=input_ids, attention_mask=attention_mask)


def with_model(loaded, module):
    return dataclasses.replace(loaded, model=module)


def test_out_of_memory_batches_are_split_until_they_fit(tiny_model, tmp_path):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(40, 5, 60, seed=9))
    expected = extract_fast_esm(fasta, model=tiny_model)

    def oom_above_two(input_ids):
        if input_ids.shape[0] > 2:
            return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return None

    flaky = FlakyModel(tiny_model.model, oom_above_two)
    proteins, data = extract_fast_esm(fasta, model=with_model(tiny_model, flaky))
    assert proteins == expected[0]
    assert max(flaky.calls) > 2 and min(flaky.calls) >= 1
    difference = (torch.stack(data) - torch.stack(expected[1])).abs().max()
    assert difference < 1e-5


def test_a_single_sequence_that_does_not_fit_is_a_logged_failure(tiny_model, tmp_path):
    records = [("short1", "MKTAYIAK"), ("huge", "M" * 300), ("short2", "QQLLA")]
    fasta = write_fasta(tmp_path / "p.fa", records)

    def oom_when_long(input_ids):
        if input_ids.shape[1] > 100:
            return torch.cuda.OutOfMemoryError("CUDA out of memory")
        return None

    flaky = with_model(tiny_model, FlakyModel(tiny_model.model, oom_when_long))
    summary = run(flaky, [fasta], tmp_path / "out")
    assert summary.records_failed == 1 and summary.count("written") == 1 and not summary.ok
    assert load_embeddings(tmp_path / "out" / "p_ESM.pt")[0] == ["short1", "short2"]
    log_line = (tmp_path / "out" / FAILURE_LOG_NAME).read_text().split("\t")
    assert log_line[2:4] == ["huge", "out_of_memory"]


def test_a_failing_batch_fails_its_records_and_the_run_goes_on(tiny_model, tmp_path):
    records = [("a", "MK"), ("b", "MKTAYIAKQRQISFVKSHFSRQ" * 5), ("c", "QL")]
    fasta = write_fasta(tmp_path / "p.fa", records)

    def break_long(input_ids):
        return RuntimeError("device-side assert") if input_ids.shape[1] > 50 else None

    flaky = with_model(tiny_model, FlakyModel(tiny_model.model, break_long))
    summary = run(flaky, [fasta], tmp_path / "out", toks_per_batch=60)
    assert load_embeddings(tmp_path / "out" / "p_ESM.pt")[0] == ["a", "c"]
    assert summary.records_failed == 1
    assert "batch_error" in (tmp_path / "out" / FAILURE_LOG_NAME).read_text()


def test_non_finite_embeddings_are_record_failures(tiny_model, tmp_path):
    fasta = write_fasta(tmp_path / "p.fa", [("ok", "MKT"), ("nan", "W" * 40)])

    class NanForLong(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.config = inner, inner.config

        def forward(self, input_ids, attention_mask):
            hidden = self.inner(input_ids=input_ids, attention_mask=attention_mask)
            hidden.last_hidden_state[attention_mask.sum(1) > 10] = float("nan")
            return hidden

    summary = run(with_model(tiny_model, NanForLong(tiny_model.model)), [fasta], tmp_path / "o")
    assert load_embeddings(tmp_path / "o" / "p_ESM.pt")[0] == ["ok"]
    assert summary.records_failed == 1
    assert "non_finite_embedding" in (tmp_path / "o" / FAILURE_LOG_NAME).read_text()


def test_truncation_and_duplicates_are_reported(tiny_model, tmp_path, caplog):
    fasta = write_fasta(tmp_path / "p.fa", [("x", "M" * 50), ("x", "MK"), ("y", "K" * 40)])
    with caplog.at_level(logging.WARNING):
        proteins, data = extract_fast_esm(fasta, model=tiny_model, truncation_seq_length=30)
    assert proteins == ["x", "x", "y"]
    assert says(caplog.text, "2 sequences longer than 30 residues were truncated")
    assert says(caplog.text, "1 duplicate IDs kept in order")
    # Truncation keeps the first 30 residues: same result as giving only those.
    short = write_fasta(tmp_path / "s.fa", [("x", "M" * 30)])
    assert torch.equal(extract_fast_esm(short, model=tiny_model)[1][0], data[0])


def test_drop_in_writes_out_file_and_accepts_a_preloaded_hf_model(tiny_model, tmp_path):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(10, 5, 50))
    out_file = tmp_path / "sub" / "p_ESM.pt"
    proteins, data = extract_fast_esm(
        str(fasta), str(out_file), tiny_model.model, tiny_model.tokenizer, 1024, 2048
    )
    saved = torch.load(out_file, weights_only=True)
    assert saved["proteins"] == proteins
    assert torch.equal(torch.stack(saved["data"]), torch.stack(data))
    assert all(t.shape == (32,) and t.dtype == torch.float32 for t in data)


def test_the_many_files_entry_point_loads_the_model_once(
    tiny_model, three_files, tmp_path, monkeypatch
):
    calls = []

    def counting_load(model_id, **kwargs):
        calls.append(model_id)
        return tiny_model

    monkeypatch.setattr(config, "load_model", counting_load)
    summary = extract_files(
        [three_files], tmp_path / "out", model="some/model", device="cpu", show_progress=False
    )
    assert calls == ["some/model"] and summary.count("written") == 3


def test_an_unexpected_error_in_the_reader_thread_reaches_the_caller(
    tiny_model, three_files, tmp_path, monkeypatch
):
    def broken_iteration():
        yield from plan_jobs([three_files / "output_1.fa"], tmp_path / "out")
        raise RuntimeError("job source broke")

    extractor = pipeline.Extractor(
        tiny_model, pipeline.ExtractionSettings(), pipeline.FailureLog(tmp_path / "f.log"), False
    )
    with pytest.raises(RuntimeError, match="job source broke"):
        extractor.run(broken_iteration(), progress=pipeline.RunProgress(1, enabled=False))
    assert (tmp_path / "out" / "output_1_ESM.pt").exists()  # finished before the error


def test_a_split_batch_keeps_the_halves_that_worked(tiny_model, tmp_path):
    # (not "A" * 30: 20+ letters all of ACGTUN are refused as nucleotides before batching)
    records = [("s1", "M" * 5), ("s2", "K" * 6), ("s3", "L" * 7), ("s4", "W" * 30)]
    fasta = write_fasta(tmp_path / "p.fa", records)

    def oom_then_broken(input_ids):
        if input_ids.shape[0] > 2:
            return torch.cuda.OutOfMemoryError("CUDA out of memory")
        if input_ids.shape[1] > 20:
            return RuntimeError("device-side assert")
        return None

    flaky = with_model(tiny_model, FlakyModel(tiny_model.model, oom_then_broken))
    summary = run(flaky, [fasta], tmp_path / "out")
    assert load_embeddings(tmp_path / "out" / "p_ESM.pt")[0] == ["s1", "s2"]
    assert summary.results[0].n_failed == 2
    lines = [
        line.split("\t") for line in (tmp_path / "out" / FAILURE_LOG_NAME).read_text().splitlines()
    ]
    assert sorted((f[2], f[3]) for f in lines) == [("s3", "batch_error"), ("s4", "batch_error")]


def test_the_drop_in_without_a_model_never_falls_back_to_the_cpu(tmp_path, monkeypatch):
    from fastesm_extract import ModelLoadError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    api.models_by_name.cache_clear()
    fasta = write_fasta(tmp_path / "p.fa", [("a", "MKT")])
    with pytest.raises(ModelLoadError, match="CUDA is not available"):
        extract_fast_esm(fasta)
