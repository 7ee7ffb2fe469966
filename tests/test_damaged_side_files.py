"""Damaged side files (manifests, outputs, DNABERT-S files) are never fatal: each is reported
for its file, rebuilt where it is ours, and the other files are done, with a summary."""

import json

import pytest
import torch
from helpers import random_proteins, says, write_fasta

from fastesm_extract import verify_output
from fastesm_extract.cli.main import main
from fastesm_extract.disk.manifest import ManifestError, read_manifest
from fastesm_extract.errors import EXIT_FAILURES, EXIT_OK

DAMAGED_MANIFESTS = {
    "input_not_object": lambda m: {**m, "input": "oops"},
    "absolute_path_null": lambda m: {**m, "input": {**m["input"], "absolute_path": None}},
    "sha256_number": lambda m: {**m, "input": {**m["input"], "sha256": 12}},
    "failed_ids_nested": lambda m: {**m, "records": {**m["records"], "failed_ids": [[1, 2]]}},
    "embedded_text": lambda m: {**m, "records": {**m["records"], "embedded": "3"}},
    "hidden_size_bool": lambda m: {**m, "model": {**m["model"], "hidden_size": True}},
    "settings_list": lambda m: {**m, "settings": [1024, 2048]},
    "json_list": lambda m: [m],
}


@pytest.fixture
def finished(tiny_checkpoint, tmp_path):
    """Two FASTA files in IN/ with finished outputs in OUT/; returns (argv, IN, OUT)."""
    inputs = tmp_path / "IN"
    inputs.mkdir()
    write_fasta(inputs / "a.fa", random_proteins(3, 5, 20, seed=1))
    write_fasta(inputs / "b.fa", random_proteins(3, 5, 20, seed=2))
    argv = ["extract", str(inputs), "-o", str(tmp_path / "OUT")]
    argv += ["--model", str(tiny_checkpoint), "--device", "cpu", "-q"]
    assert main(argv) == EXIT_OK
    return argv, inputs, tmp_path / "OUT"


def damage_manifest(out, damage):
    path = out / "a_ESM.pt.json"
    manifest = json.loads(path.read_text())
    path.write_text(damage if isinstance(damage, str) else json.dumps(damage(manifest)))


@pytest.mark.parametrize("redo_stale", [False, True])
@pytest.mark.parametrize("damage", [*DAMAGED_MANIFESTS, "not_json"])
def test_a_damaged_manifest_rebuilds_its_output_and_the_rest_is_done(
    finished, damage, redo_stale, capsys
):
    argv, _, out = finished
    damage_manifest(out, DAMAGED_MANIFESTS.get(damage, "{not json"))
    capsys.readouterr()
    assert main(argv + (["--redo-stale"] if redo_stale else [])) == EXIT_OK
    err = capsys.readouterr().err
    assert says(err, "1 written, 1 skipped, 0 failed files")
    assert read_manifest(out / "a_ESM.pt")["records"]["embedded"] == 3  # rebuilt, usable


@pytest.mark.parametrize("damage", [*DAMAGED_MANIFESTS, "not_json"])
def test_verify_reports_a_damaged_manifest_and_checks_the_other_outputs(finished, damage, capsys):
    _, _, out = finished
    damage_manifest(out, DAMAGED_MANIFESTS.get(damage, "{not json"))
    with pytest.raises(ManifestError, match="a_ESM.pt.json"):
        read_manifest(out / "a_ESM.pt")
    capsys.readouterr()
    assert main(["verify", str(out)]) == EXIT_FAILURES
    captured = capsys.readouterr()
    assert says(captured.err, "1 of 2 outputs OK")
    assert "manifest" in captured.out and "a_ESM.pt.json" in captured.out


def sparse_output(path, ids):
    data = [torch.ones(4).to_sparse() for _ in ids]
    torch.save({"proteins": ids, "data": data}, path)


def test_an_output_of_sparse_tensors_is_rebuilt_and_reported_by_verify(finished, capsys):
    argv, fasta_dir, out = finished
    sparse_output(out / "a_ESM.pt", ["x", "y"])
    assert main(["verify", str(out)]) == EXIT_FAILURES
    captured = capsys.readouterr()
    assert says(captured.err, "1 of 2 outputs OK") and "sparse" in captured.out
    assert main(argv) == EXIT_OK
    assert says(capsys.readouterr().err, "1 written, 1 skipped")
    assert verify_output(out / "a_ESM.pt").ok


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ({"proteins": [], "data": []}, "holds no records"),
        ({"proteins": ["x"], "data": [torch.ones(0)]}, "0-dimensional"),
    ],
)
def test_verify_fails_outputs_without_records_or_dimensions(tmp_path, content, problem):
    torch.save(content, tmp_path / "e_ESM.pt")
    report = verify_output(tmp_path / "e_ESM.pt")
    assert not report.ok and any(problem in p for p in report.problems), report.problems


def dnabert(path, ids, vector=None):
    vector = [0.25] * 768 if vector is None else vector
    items = [{"label": i, "mean_representation": vector} for i in ids]
    torch.save({"nucleotide": ids, "data": items}, path)


def esm(path, ids, dim=4):
    torch.save({"proteins": ids, "data": [torch.ones(dim) for _ in ids]}, path)


@pytest.mark.parametrize(
    "break_pair",
    [
        lambda d: dnabert(d / "a_DNABERT_S.pt", ["r1"], [[0.5]] * 768),  # nested lists
        lambda d: dnabert(d / "a_DNABERT_S.pt", ["r1"], [[0.5, 0.5]] * 768),
        lambda d: dnabert(d / "a_DNABERT_S.pt", ["r1"], [{"x": 1}] * 768),
        lambda d: sparse_output(d / "a_ESM.pt", ["r1"]),
    ],
)
def test_a_folder_merge_reports_a_damaged_pair_and_merges_the_others(tmp_path, break_pair, capsys):
    for stem in ("a", "b"):
        dnabert(tmp_path / f"{stem}_DNABERT_S.pt", ["r1"])
        esm(tmp_path / f"{stem}_ESM.pt", ["r1"])
    break_pair(tmp_path)
    assert main(["merge", str(tmp_path), "-o", str(tmp_path / "merged")]) == EXIT_FAILURES
    err = capsys.readouterr().err
    assert (
        says(err, "1 written, 0 skipped, 1 failed") and "FAILED" in err and "Traceback" not in err
    )
    assert (tmp_path / "merged" / "b_merged.pt").exists()
    assert not (tmp_path / "merged" / "a_merged.pt").exists()


def test_a_sparse_merged_file_is_redone(tmp_path):
    dnabert(tmp_path / "a_DNABERT_S.pt", ["r1"])
    esm(tmp_path / "a_ESM.pt", ["r1"])
    (tmp_path / "merged").mkdir()
    torch.save(
        {"ids": ["r1"], "data": torch.ones(1, 772).to_sparse()}, tmp_path / "merged" / "a_merged.pt"
    )
    assert main(["merge", str(tmp_path), "-o", str(tmp_path / "merged")]) == EXIT_OK
    merged = torch.load(tmp_path / "merged" / "a_merged.pt", weights_only=True)
    assert merged["data"].layout == torch.strided and merged["data"].shape == (1, 772)
