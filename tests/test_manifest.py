import json
import logging

import torch
from helpers import random_proteins, says, sha256_hex, write_fasta

from fastesm_extract import extract_fast_esm, extract_files
from fastesm_extract.disk.layout import manifest_path


def run(loaded, inputs, out, **options):
    return extract_files(inputs, out, model=loaded, show_progress=False, **options)


def test_manifest_records_input_records_model_settings_and_versions(tiny_model, tmp_path):
    fasta = tmp_path / "p.fa"
    fasta.write_bytes(b">a\nMKT\n>bad\nMK1\n>b\nQQL\n")
    run(tiny_model, [fasta], tmp_path / "out", toks_per_batch=512)
    output = tmp_path / "out" / "p_ESM.pt"
    manifest = json.loads(manifest_path(output).read_text())
    assert manifest["format_version"] == 1
    assert manifest["input"]["path"] == str(fasta)
    assert manifest["input"]["size"] == fasta.stat().st_size
    assert manifest["input"]["sha256"] == sha256_hex(fasta)
    assert manifest["state"] == "complete"
    assert manifest["records"] == {
        "read": 3,
        "embedded": 2,
        "failed": 1,
        "failed_ids": ["bad"],
        "failed_kinds": ["invalid_character"],
        "truncated": 0,  # named with their lengths when there are (tests/test_audit.py)
        "truncated_ids": [],
        "truncated_lengths": [],
    }
    assert manifest["model"]["id"] == tiny_model.model_id
    assert manifest["model"]["dtype"] == "float32"
    assert manifest["model"]["device"].startswith("cpu")
    assert manifest["model"]["hidden_size"] == 32
    assert manifest["model"]["commit_hash"] is None  # a local folder has no hub commit
    assert manifest["settings"] == {"truncation_seq_length": 1024, "toks_per_batch": 512}
    versions = manifest["versions"]
    assert versions["torch"] == torch.__version__ and versions["fastesm_extract"] == "0.1.0"
    assert versions["transformers"].split(".")[0] == "5"
    assert manifest["started"] <= manifest["finished"]
    assert manifest["finished"].endswith("Z")


def test_drop_in_writes_a_manifest_beside_its_out_file(tiny_model, tmp_path):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(3, 5, 9))
    extract_fast_esm(fasta, tmp_path / "p_ESM.pt", model=tiny_model)
    manifest = json.loads((tmp_path / "p_ESM.pt.json").read_text())
    assert manifest["records"]["embedded"] == 3


def test_another_truncation_is_stale_and_a_changed_input_is_rebuilt(tiny_model, tmp_path, caplog):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(5, 5, 30))
    out = tmp_path / "out"
    run(tiny_model, [fasta], out)
    before = (out / "p_ESM.pt").read_bytes()

    # Another truncation length: stale, kept (never destroyed silently), and not ok.
    with caplog.at_level(logging.WARNING):
        summary = run(tiny_model, [fasta], out, truncation_seq_length=10)
    assert summary.count("stale") == 1 and summary.count("written") == 0
    assert not summary.ok and summary.exit_status == 1
    assert says(caplog.text, "truncation_seq_length 1024 != 10")
    assert (out / "p_ESM.pt").read_bytes() == before  # kept without --redo-stale
    # ... unless accepted explicitly.
    accepted = run(tiny_model, [fasta], out, truncation_seq_length=10, accept_stale=True)
    assert accepted.count("stale") == 1 and accepted.ok

    # The input changed: its old output describes data that no longer exists: rebuilt.
    write_fasta(fasta, random_proteins(6, 5, 30, seed=4))
    summary = run(tiny_model, [fasta], out)
    assert summary.count("written") == 1 and summary.ok
    assert summary.results[0].rebuilt_because == "the input changed since it was made"
    assert len(torch.load(out / "p_ESM.pt", weights_only=True)["proteins"]) == 6
    assert json.loads((out / "p_ESM.pt.json").read_text())["input"]["sha256"] == sha256_hex(fasta)
    assert run(tiny_model, [fasta], out).count("skipped") == 1


def test_batch_budget_and_dtype_never_make_an_output_stale(tiny_model, tmp_path):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(5, 5, 30))
    out = tmp_path / "out"
    run(tiny_model, [fasta], out, toks_per_batch=64)
    manifest = json.loads((out / "p_ESM.pt.json").read_text())
    manifest["model"]["dtype"] = "float16"  # as if made on a GPU
    manifest["model"]["device"] = "NVIDIA H200"
    (out / "p_ESM.pt.json").write_text(json.dumps(manifest))
    summary = run(tiny_model, [fasta], out, toks_per_batch=4096)
    assert summary.count("skipped") == 1 and summary.ok and not summary.model_loaded


def test_another_model_makes_an_output_stale(tiny_model, tmp_path):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(3, 5, 30))
    run(tiny_model, [fasta], tmp_path / "out")
    manifest_file = tmp_path / "out" / "p_ESM.pt.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["model"]["id"] = "facebook/esm2_t33_650M_UR50D"
    manifest["model"]["local_path"] = None  # a hub model: known by name, not by files
    manifest["model"]["fingerprint"] = manifest["model"]["parameters"] = None
    manifest_file.write_text(json.dumps(manifest))
    summary = run(tiny_model, [fasta], tmp_path / "out")
    assert summary.count("stale") == 1 and summary.exit_status == 1
    assert "model 'facebook/esm2_t33_650M_UR50D' != " in summary.results[0].message


def test_outputs_without_a_manifest_are_validated_and_kept(tiny_model, tmp_path):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(3, 5, 30))
    run(tiny_model, [fasta], tmp_path / "out")
    (tmp_path / "out" / "p_ESM.pt.json").unlink()
    summary = run(tiny_model, [fasta], tmp_path / "out")
    assert summary.count("skipped") == 1
    assert summary.results[0].message == "valid output exists (no manifest)"


def test_the_requested_revision_is_recorded(tiny_checkpoint, tmp_path):
    from fastesm_extract import load_model

    fasta = write_fasta(tmp_path / "p.fa", random_proteins(2, 5, 9))
    loaded = load_model(str(tiny_checkpoint), revision="v1.0", device="cpu")
    run(loaded, [fasta], tmp_path / "out")
    model = json.loads((tmp_path / "out" / "p_ESM.pt.json").read_text())["model"]
    assert (model["revision"], model["commit_hash"]) == ("v1.0", None)


def test_the_typed_manifest_reads_what_was_written_and_old_manifests_too(tiny_model, tmp_path):
    import pytest

    from fastesm_extract.disk.manifest import load_manifest
    from fastesm_extract.disk.manifest_schema import Manifest

    fasta = tmp_path / "p.fa"
    fasta.write_bytes(b">a\nMKT\n>bad\nMK1\n")
    run(tiny_model, [fasta], tmp_path / "out", toks_per_batch=512)
    output = tmp_path / "out" / "p_ESM.pt"
    typed = load_manifest(output)
    raw = json.loads(manifest_path(output).read_text())
    assert typed.state == "complete" and typed.input.sha256 == sha256_hex(fasta)
    assert typed.output.size == output.stat().st_size and typed.output.sha256 == sha256_hex(output)
    assert typed.records.failed_ids == ("bad",) and typed.records.failed_kinds == (
        "invalid_character",
    )
    assert typed.model.hidden_size == 32 and typed.model.id == raw["model"]["id"]
    assert (typed.truncation_seq_length, typed.toks_per_batch) == (1024, 512)
    # A manifest of an older version: no state, output or kinds; absent fields are empty.
    old = Manifest.from_json({"input": {"sha256": "ab"}, "records": {"failed_ids": ["x"]}})
    assert old.state == "complete" and old.output is None and old.records.failed_kinds == ()
    assert old.model.id is None and old.input.sha256 == "ab"
    with pytest.raises(ValueError, match="'model.hidden_size' is \"32\", not integer"):
        Manifest.from_json({"model": {"hidden_size": "32"}})
