"""`audit`: stored rows against records re-embedded one at a time (and against transformers'
own EsmModel), and truncated records named in the manifest, the summary and `verify`."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from fast_esm_checkpoint import REMOTE_DIR, build_fast_esm_checkpoint
from helpers import random_proteins, says, write_fasta
from safetensors.torch import load_file, save_file

from fastesm_extract import ModelLoadError, audit_outputs, extract_files, load_model, verify_output
from fastesm_extract.cli.main import main
from fastesm_extract.demo import build_demo_checkpoint
from fastesm_extract.model.reference import load_esm_reference
from fastesm_extract.running.audit import sample_rows

CPU = ["--device", "cpu"]


def proteins_folder(folder: Path, files: int = 2, records: int = 10) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        write_fasta(folder / f"p{index}.fa", random_proteins(records, 5, 60, seed=index))
    return folder


def extract(folder: Path, out: Path, model, **options) -> None:
    options = {"toks_per_batch": 200, "show_progress": False, "device": "cpu", **options}
    assert extract_files([folder], out, model=model, **options).ok


def rewrite_with_manifest(output: Path, proteins: list[str], data: list[torch.Tensor]) -> None:
    """Write the file with plain torch.save and make its manifest describe it (hashlib)."""
    torch.save({"proteins": proteins, "data": data}, output)
    manifest_file = output.with_name(output.name + ".json")
    manifest = json.loads(manifest_file.read_text())
    content = output.read_bytes()
    manifest["output"] = {"size": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    manifest_file.write_text(json.dumps(manifest))


def remote_checkpoint(folder: Path, model_class: str) -> Path:
    """A FastESM stand-in checkpoint whose AutoModel is one of modeling_leaky_fast_esm's."""
    checkpoint = build_fast_esm_checkpoint(folder, hidden_size=32, num_heads=4, seed=3)
    shutil.copyfile(
        REMOTE_DIR / "modeling_leaky_fast_esm.py", checkpoint / "modeling_leaky_fast_esm.py"
    )
    config = json.loads((checkpoint / "config.json").read_text())
    config["auto_map"]["AutoModel"] = f"modeling_leaky_fast_esm.{model_class}"
    (checkpoint / "config.json").write_text(json.dumps(config))
    return checkpoint


def test_the_sample_is_deterministic_and_holds_the_longest_record():
    lengths = [3, 9, 4, 9, 1, 7, 2, 8]
    first = sample_rows(lengths, 3, seed=5)
    assert first == sample_rows(lengths, 3, seed=5) and len(first) == 3
    assert 1 in first  # the first of the longest
    assert first == sorted(first) and len(set(first)) == 3
    assert all(1 in sample_rows(lengths, 2, seed) for seed in range(20))
    assert {tuple(sample_rows(lengths, 3, seed)) for seed in range(20)} != {tuple(first)}
    assert sample_rows(lengths, 8, 0) == sample_rows(lengths, 50, 0) == list(range(8))


def test_a_clean_folder_audits_0_against_the_model_and_transformers_esm(
    tiny_checkpoint, tmp_path, capsys
):
    folder = proteins_folder(tmp_path / "in")
    extract(folder, tmp_path / "out", str(tiny_checkpoint))
    report = audit_outputs([tmp_path / "out"], sample=4, seed=1, device="cpu", reference="esm")
    assert report.ok and report.exit_status == 0 and len(report.files) == 2
    for audit in report.files:
        assert audit.n_checked == 4 and audit.problems == [] and audit.beyond == []
        assert audit.min_cosine() > 0.99999 and audit.max_abs_diff() < 1e-4
        assert audit.min_cosine("esm") > 0.99999 and audit.max_abs_diff("esm") < 1e-4
        longest = max(range(10), key=lambda row: len(audit_record_lengths(folder, audit)[row]))
        assert longest in {check.row for check in audit.checks}

    summary = tmp_path / "audit.json"
    code = main(["audit", str(tmp_path / "out"), *CPU, "--summary-json", str(summary)])
    printed = capsys.readouterr()
    assert code == 0
    assert says(printed.err, "2 of 2 outputs within tolerance (cosine >= 0.9999")
    data = json.loads(summary.read_text())
    assert data["ok"] is True and data["exit_status"] == 0
    assert [entry["records_checked"] for entry in data["files"]] == [10, 10]  # 32 > 10: all
    assert all(entry["model"]["min_cosine"] > 0.99999 for entry in data["files"])


def audit_record_lengths(folder: Path, audit) -> list[str]:
    """The sequences of the audited file, in FASTA order (all records are embedded here)."""
    stem = audit.output.name.removesuffix("_ESM.pt")
    text = (folder / f"{stem}.fa").read_text()
    return ["".join(block.splitlines()[1:]) for block in text.split(">")[1:]]


def test_swapped_rows_that_verify_calls_fine_audit_1_naming_file_and_records(
    tiny_checkpoint, tmp_path, capsys
):
    folder = proteins_folder(tmp_path / "in", files=1, records=6)
    extract(folder, tmp_path / "out", str(tiny_checkpoint))
    output = tmp_path / "out" / "p0_ESM.pt"
    stored = torch.load(output, weights_only=True)
    data = stored["data"]
    data[1], data[4] = data[4], data[1]
    rewrite_with_manifest(output, stored["proteins"], data)
    assert verify_output(output).ok

    report = audit_outputs([output], device="cpu")
    assert report.exit_status == 1
    (audit,) = report.files
    assert [(c.record_id, c.row) for c in audit.beyond] == [("prot_0_1", 1), ("prot_0_4", 4)]
    assert audit.n_checked == 6 and audit.min_cosine() < 0.99

    assert main(["audit", str(output), *CPU]) == 1
    printed = capsys.readouterr().out
    assert "FAILED        6" in printed and str(output) in printed
    assert "record prot_0_1 (row 1): cosine" in printed
    assert "record prot_0_4 (row 4): cosine" in printed
    assert "prot_0_0" not in printed


def test_a_batched_path_that_leaks_padding_into_the_mean_audits_1(tmp_path, capsys):
    checkpoint = remote_checkpoint(tmp_path / "leaky", "LeakyFastEsmModel")
    records = random_proteins(5, 10, 40, seed=7)
    (tmp_path / "in").mkdir()
    write_fasta(tmp_path / "in" / "p.fa", records)
    extract(tmp_path / "in", tmp_path / "out", str(checkpoint), toks_per_batch=10_000)  # 1 batch
    output = tmp_path / "out" / "p_ESM.pt"
    longest = max(range(5), key=lambda row: len(records[row][1]))

    (audit,) = audit_outputs([output], device="cpu").files
    # Every row but the longest (the one without padding in its batch) took in padding.
    assert [check.row for check in audit.beyond] == [row for row in range(5) if row != longest]
    (within,) = [check for check in audit.checks if check.within]
    assert within.row == longest and within.max_abs_diff < 1e-5

    (audit,) = audit_outputs([output], device="cpu", reference="esm").files
    assert {(c.row, c.against) for c in audit.beyond} == {
        (row, against) for row in range(5) if row != longest for against in ("model", "esm")
    }
    assert main(["audit", str(output), *CPU, "--reference", "esm"]) == 1
    assert "against the esm reference" in capsys.readouterr().out


def test_a_bug_shared_by_batched_and_single_paths_shows_against_the_esm_reference(tmp_path):
    checkpoint = remote_checkpoint(tmp_path / "drifting", "DriftingFastEsmModel")
    folder = proteins_folder(tmp_path / "in", files=1, records=5)
    extract(folder, tmp_path / "out", str(checkpoint))
    output = tmp_path / "out" / "p0_ESM.pt"
    assert audit_outputs([output], device="cpu").ok  # the model agrees with itself
    report = audit_outputs([output], device="cpu", reference="esm")
    assert report.exit_status == 1
    (audit,) = report.files
    assert {check.against for check in audit.beyond} == {"esm"}
    assert {check.row for check in audit.beyond} == set(range(5))


def test_another_model_no_manifest_or_mixed_truncations_are_refused_with_exit_2(
    tiny_checkpoint, tmp_path, capsys
):
    folder = proteins_folder(tmp_path / "in", files=1, records=4)
    extract(folder, tmp_path / "out", str(tiny_checkpoint))
    other = build_demo_checkpoint(
        tmp_path / "other", seed=2, num_layers=2, hidden_size=32, num_heads=4
    )
    assert main(["audit", str(tmp_path / "out"), *CPU, "--model", str(other)]) == 2
    error = capsys.readouterr().err
    assert "was made by another model" in error and "leave out --model" in error
    assert main(["audit", str(tmp_path / "out"), *CPU, "--sample", "0"]) == 2
    assert says(capsys.readouterr().err, "--sample must be at least 1")

    extract(folder, tmp_path / "short", str(tiny_checkpoint), truncation_seq_length=8)
    assert main(["audit", str(tmp_path / "out"), str(tmp_path / "short"), *CPU]) == 2
    assert "different truncation lengths (1024, 8)" in capsys.readouterr().err

    (tmp_path / "out" / "p0_ESM.pt.json").unlink()
    summary = tmp_path / "audit.json"
    assert main(["audit", str(tmp_path / "out"), *CPU, "--summary-json", str(summary)]) == 2
    assert "p0_ESM.pt has no manifest" in capsys.readouterr().err
    assert json.loads(summary.read_text())["exit_status"] == 2


def test_the_summary_json_is_never_written_over_an_output_manifest_or_input(
    tiny_checkpoint, tmp_path, capsys
):
    folder = proteins_folder(tmp_path / "in", files=1, records=3)
    extract(folder, tmp_path / "out", str(tiny_checkpoint))
    output = tmp_path / "out" / "p0_ESM.pt"
    before = {path: path.read_bytes() for path in (output, folder / "p0.fa")}
    for target in (output, tmp_path / "out" / "p0_ESM.pt.json", folder / "p0.fa"):
        assert main(["audit", str(output), *CPU, "--summary-json", str(target)]) == 2
        assert "choose another --summary-json path" in capsys.readouterr().err
    assert {path: path.read_bytes() for path in before} == before


def test_truncated_records_are_named_in_manifest_summary_and_verify(
    tiny_checkpoint, tmp_path, capsys
):
    long_one, short = "ACDEFGHIKLMNPQRSTVWY" * 2 + "ACDEFGHIKL", "MKTAYIAK"  # 50 and 8
    (tmp_path / "in").mkdir()
    write_fasta(tmp_path / "in" / "t.fa", [("short", short), ("long", long_one)])
    summary = extract_files(
        [tmp_path / "in"],
        tmp_path / "out",
        model=str(tiny_checkpoint),
        device="cpu",
        truncation_seq_length=30,
        show_progress=False,
    )
    assert summary.ok and summary.records_truncated == 1
    (result,) = summary.results
    assert [(t.id, t.length) for t in result.truncated] == [("long", 50)]
    entry = summary.to_dict()["file_results"][0]
    assert entry["records"]["truncated"] == 1
    assert entry["truncated_records"] == [{"id": "long", "length": 50}]

    output = tmp_path / "out" / "t_ESM.pt"
    records = json.loads((tmp_path / "out" / "t_ESM.pt.json").read_text())["records"]
    assert records["truncated"] == 1
    assert records["truncated_ids"] == ["long"] and records["truncated_lengths"] == [50]

    assert main(["verify", str(output)]) == 0
    assert "note: 1 records truncated to 30 residues: long (50)" in capsys.readouterr().out
    # The audit re-embeds with the output's own truncation: the long record agrees too.
    report = audit_outputs([output], device="cpu")
    assert report.ok and report.files[0].n_checked == 2


def test_a_checkpoint_whose_weights_do_not_map_onto_esm_is_refused(tmp_path):
    """An ESM weight the checkpoint lacks is refused, never filled with random values."""
    checkpoint = build_fast_esm_checkpoint(tmp_path / "c", hidden_size=32, num_heads=4)
    weights = checkpoint / "model.safetensors"
    state = load_file(weights)
    query = "encoder.layer.0.attention.self.query.weight"
    state[query.replace("query", "qkv")] = state.pop(query)  # another architecture's name
    save_file(state, weights, metadata={"format": "pt"})
    loaded = load_model(str(checkpoint), device="cpu")
    with pytest.raises(ModelLoadError, match="do not map onto transformers' EsmModel") as raised:
        load_esm_reference(loaded)
    assert query in str(raised.value) and raised.value.exit_status == 2


def test_the_esm_reference_reads_weights_under_fastesm2s_esm_prefix(tmp_path):
    """FastESM2_650's files name its weights `esm.embeddings...`, `esm.encoder...` (its model
    wraps the encoder as `self.esm`), beside heads EsmModel has no use for."""
    checkpoint = build_fast_esm_checkpoint(tmp_path / "c", hidden_size=32, num_heads=4, seed=4)
    weights = checkpoint / "model.safetensors"
    state = {f"esm.{key}": value for key, value in load_file(weights).items()}
    state["lm_head.dense.weight"] = torch.zeros(32, 32)
    save_file(state, weights, metadata={"format": "pt"})
    loaded = load_model(str(checkpoint), device="cpu")
    reference = load_esm_reference(loaded)
    ours, theirs = loaded.model.state_dict(), reference.model.state_dict()
    query = "encoder.layer.1.attention.self.query.weight"
    assert torch.equal(state[f"esm.{query}"], ours[query])  # the stand-in strips it too
    assert torch.equal(ours[query], theirs[query])
    folder = proteins_folder(tmp_path / "in", files=1, records=4)
    extract(folder, tmp_path / "out", loaded)
    report = audit_outputs([tmp_path / "out"], model=loaded, reference="esm")
    assert report.ok and report.files[0].min_cosine("esm") > 0.99999
