"""Exit 0 means every output is current: what a manifest vouches for is what is on disk,
and a run with nothing to do never loads the model (the currency rule of README's resume
section)."""

import json
import shutil

import pytest
import torch
from helpers import random_proteins, says, sha256_hex, write_fasta

import fastesm_extract.extract.claim as claim
import fastesm_extract.running.config as config
from fastesm_extract import extract_files
from fastesm_extract.cli.main import main
from fastesm_extract.disk.manifest import read_manifest
from fastesm_extract.disk.store import load_embeddings, save_embeddings_atomic
from fastesm_extract.model.identity import folder_fingerprint


def run(loaded, inputs, out, **options):
    return extract_files(inputs, out, model=loaded, show_progress=False, **options)


def test_the_manifest_vouches_for_the_bytes_parsed_not_the_bytes_hashed_first(
    tiny_model, tmp_path, monkeypatch
):
    fasta = tmp_path / "x.fa"
    old = random_proteins(4, 5, 20, seed=1)
    new = random_proteins(6, 5, 20, seed=2)
    write_fasta(fasta, old)
    out = tmp_path / "out"
    run(tiny_model, [fasta], out, truncation_seq_length=8)  # an output exists: hashed first
    hash_only = claim.known_input_sha256  # recorded (unchanged since), else hashed

    def hash_then_change(job):
        digest = hash_only(job)
        write_fasta(fasta, new)  # the file changes between hashing and parsing
        return digest

    monkeypatch.setattr(claim, "known_input_sha256", hash_then_change)
    summary = run(tiny_model, [fasta], out, redo_stale=True)
    monkeypatch.undo()
    assert summary.count("written") == 1
    output = out / "x_ESM.pt"
    proteins, _ = load_embeddings(output)
    manifest = read_manifest(output)
    assert proteins == [record_id for record_id, _ in new]
    assert manifest["input"]["sha256"] == sha256_hex(fasta)  # the new bytes, as parsed
    assert manifest["input"]["size"] == fasta.stat().st_size
    # The old file back: its output is not current, so it is rebuilt, never skipped.
    write_fasta(fasta, old)
    summary = run(tiny_model, [fasta], out)
    assert summary.count("written") == 1 and summary.ok
    assert load_embeddings(output)[0] == [record_id for record_id, _ in old]


def test_an_output_copied_over_another_is_not_taken_for_it(tiny_model, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_fasta(folder / "x.fa", random_proteins(3, 5, 20, seed=3))
    write_fasta(folder / "y.fa", random_proteins(5, 5, 20, seed=4))
    out = tmp_path / "out"
    run(tiny_model, [folder], out)
    expected = load_embeddings(out / "x_ESM.pt")
    shutil.copy(out / "y_ESM.pt", out / "x_ESM.pt")  # `cp out/y_ESM.pt out/x_ESM.pt`
    summary = run(tiny_model, [folder], out)
    by_name = {result.job.fasta.name: result for result in summary.results}
    assert by_name["x.fa"].status == "written" and by_name["y.fa"].status == "skipped"
    assert "not the output its manifest describes" in by_name["x.fa"].rebuilt_because
    proteins, data = load_embeddings(out / "x_ESM.pt")
    assert proteins == expected[0]
    assert torch.equal(torch.stack(data), torch.stack(expected[1]))
    assert summary.ok


def test_an_output_without_manifest_is_accepted_only_with_its_inputs_ids(tiny_model, tmp_path):
    fasta = write_fasta(tmp_path / "x.fa", random_proteins(4, 5, 20, seed=5))
    other = random_proteins(4, 5, 20, seed=6)
    out = tmp_path / "out"
    out.mkdir()
    # The original pipeline wrote its IDs in batch order: same IDs, another order: kept.
    ids = [record_id for record_id, _ in random_proteins(4, 5, 20, seed=5)]
    save_embeddings_atomic(out / "x_ESM.pt", ids[::-1], [torch.ones(32) for _ in ids])
    summary = run(tiny_model, [fasta], out)
    assert summary.count("skipped") == 1 and summary.ok and not summary.model_loaded
    # Another FASTA's output, same width: not this input's, so rebuilt.
    other_ids = [record_id for record_id, _ in other]
    save_embeddings_atomic(out / "x_ESM.pt", other_ids, [torch.ones(32) for _ in other_ids])
    summary = run(tiny_model, [fasta], out)
    assert summary.count("written") == 1 and summary.ok
    assert "its IDs are not its input's (8 differ)" in summary.results[0].rebuilt_because
    assert load_embeddings(out / "x_ESM.pt")[0] == ids


@pytest.fixture
def finished_folder(tiny_checkpoint, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for part in (1, 2):
        write_fasta(folder / f"output_{part}.fa", random_proteins(5, 5, 30, seed=part))
    out = tmp_path / "out"
    argv = ["extract", str(folder), "-o", str(out), "--model", str(tiny_checkpoint)]
    assert main([*argv, "--device", "cpu", "-q"]) == 0
    return folder, out, argv


def _no_loading(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(config, "load_model", refuse)


def test_a_rerun_with_nothing_to_do_never_loads_the_model(finished_folder, monkeypatch, capsys):
    folder, out, argv = finished_folder
    _no_loading(monkeypatch)
    # Another batch budget (README's GPU advice followed late) changes nothing: still current.
    for extra in ([], ["--toks-per-batch", "8192"]):
        assert main([*argv, "--device", "cpu", *extra]) == 0
        assert says(capsys.readouterr().err, "0 written, 2 skipped")


def test_stale_outputs_fail_the_run_until_rebuilt_or_accepted(finished_folder, capsys):
    folder, out, argv = finished_folder
    before = {p.name: p.read_bytes() for p in out.glob("*_ESM.pt")}
    trunc = ["--device", "cpu", "--truncation-seq-length", "12"]
    assert main([*argv, *trunc]) == 1
    err = capsys.readouterr().err
    assert says(err, "2 stale outputs kept, NOT current")
    assert "--redo-stale rebuilds them, --accept-stale accepts them" in err
    assert says(err, "truncation_seq_length 1024 != 12")
    assert {p.name: p.read_bytes() for p in out.glob("*_ESM.pt")} == before  # never destroyed
    assert main([*argv, *trunc, "--accept-stale"]) == 0
    assert main([*argv, *trunc, "--redo-stale"]) == 0
    assert says(capsys.readouterr().err, "2 written")
    assert main([*argv, *trunc]) == 0


def test_summary_json_says_what_happened_to_every_file(finished_folder, tmp_path, capsys):
    folder, out, argv = finished_folder
    (folder / "output_1.fa").write_text(">a\nMKTAYIAK\n>bad\nMK1\n>dna\n" + "ACGT" * 10 + "\n")
    (folder / "output_3.fa").write_text(">c\nMKV\n")
    summary_path = tmp_path / "summary.json"
    status = main([*argv, "--device", "cpu", "--summary-json", str(summary_path)])
    data = json.loads(summary_path.read_text())
    assert status == data["exit_status"] == 1 and data["ok"] is False
    assert data["files"] == {"written": 2, "skipped": 1}
    assert data["records"]["embedded"] == 2  # embedded by this run: a and c
    assert data["records"]["failed_by_kind"] == {
        "invalid_character": 1,
        "nucleotide_sequence": 1,
    }
    assert data["rebuilt"] == [
        {"output": str(out / "output_1_ESM.pt"), "reason": "the input changed since it was made"}
    ]
    assert data["stale"] == [] and data["model_loaded"] is True
    results = {entry["input"]: entry for entry in data["file_results"]}
    assert results[str(folder / "output_1.fa")]["records"]["failed"] == 2
    # A usage error still leaves a summary a workflow engine can read.
    assert main([*argv, "--device", "bogus", "--summary-json", str(summary_path)]) == 2
    assert json.loads(summary_path.read_text())["exit_status"] == 2


def test_plan_says_what_a_run_would_do_without_loading_the_model(
    finished_folder, monkeypatch, tmp_path, capsys
):
    folder, out, argv = finished_folder
    write_fasta(folder / "output_3.fa", random_proteins(7, 5, 30, seed=9))  # new: write
    write_fasta(folder / "output_2.fa", random_proteins(4, 5, 30, seed=10))  # changed: rebuild
    _no_loading(monkeypatch)
    plan_json = tmp_path / "plan.json"
    status = main(["plan", *argv[1:], "--device", "cpu", "--summary-json", str(plan_json)])
    captured = capsys.readouterr()
    assert status == 0
    expected = {"output_1_ESM.pt": "skip", "output_2_ESM.pt": "rebuild", "output_3_ESM.pt": "write"}
    rows = captured.out.splitlines()[1:]
    assert len(rows) == 3
    for name, action in expected.items():
        assert any(r.startswith(action) and f"{out / name}" in r for r in rows), (name, rows)
    assert says(captured.err, "1 rebuild, 1 skip, 1 write") and "not loaded" in captured.err
    data = json.loads(plan_json.read_text())
    assert data["files"] == {"rebuild": 1, "skip": 1, "write": 1}  # counted, as a run's
    assert {e["output"]: e["action"] for e in data["plan"]["files"]} == {
        str(out / name): action for name, action in expected.items()
    }
    assert data["exit_status"] == 0
    sizes = {entry["output"]: entry["output_bytes"] for entry in data["plan"]["files"]}
    assert sizes[str(out / "output_3_ESM.pt")] == 7 * (32 * 4 + 160)
    # Another truncation: the finished output is stale; plan exits as the run would.
    assert main(["plan", *argv[1:], "--truncation-seq-length", "9"]) == 1
    assert "stale outputs are kept and fail the run" in capsys.readouterr().err
    assert main(["extract", "--dry-run", *argv[1:], "--truncation-seq-length", "9"]) == 1
    assert not (out / "output_3_ESM.pt").exists()  # a plan writes nothing


def test_a_file_of_invalid_records_is_logged_once_per_change_of_input(tiny_model, tmp_path):
    fasta = tmp_path / "bad.fa"
    fasta.write_text("".join(f">r{i}\nMK1\n" for i in range(5)))
    out, log = tmp_path / "out", tmp_path / "out" / "extraction_failures.log"
    first = run(tiny_model, [fasta], out)
    assert first.count("failed") == 1 and len(log.read_text().splitlines()) == 6  # 5 + file
    for _ in range(2):
        again = run(tiny_model, [fasta], out)
        assert again.count("failed") == 1 and not again.ok
        assert again.records_failed == 5 and again.failed_kinds == {"invalid_character": 5}
        assert "unchanged since they were logged" in again.results[0].message
        assert len(log.read_text().splitlines()) == 6  # not logged again
    assert not (out / "bad_ESM.pt").exists()
    fasta.write_text("".join(f">r{i}\nMK2\n" for i in range(5)))  # edited, still invalid
    run(tiny_model, [fasta], out)
    assert len(log.read_text().splitlines()) == 12  # a change of input: logged again
    fasta.write_text(">r0\nMKV\n")  # fixed
    fixed = run(tiny_model, [fasta], out)
    assert fixed.ok and fixed.count("written") == 1


def test_plan_estimates_time_from_the_last_measured_rate(
    finished_folder, tmp_path, monkeypatch, capsys
):
    folder, out, argv = finished_folder
    monkeypatch.setenv("FASTESM_EXTRACT_CACHE", str(tmp_path / "cache"))
    write_fasta(folder / "output_3.fa", random_proteins(40, 5, 30, seed=3))
    assert main(["plan", *argv[1:], "--device", "cpu"]) == 0
    assert "time: unknown for" in capsys.readouterr().err  # no run measured in this cache
    assert main([*argv, "--device", "cpu", "-q"]) == 0  # the run records its rate
    rates = json.loads((tmp_path / "cache" / "rates.json").read_text())
    ((key, entry),) = rates.items()
    # Keyed by the checkpoint's files, not the spelling of --model (issue 27 item 8).
    assert key.startswith(f"files:{folder_fingerprint(argv[5])[:16]} @ cpu")
    assert entry["records_per_s"] > 0
    write_fasta(folder / "output_4.fa", random_proteins(30, 5, 30, seed=4))
    assert main(["plan", *argv[1:], "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "time: about 0:" in err and "for 30 records at" in err


def test_plan_names_outputs_another_run_holds_and_this_shards_share(
    finished_folder, tmp_path, monkeypatch, capsys
):
    from fastesm_extract.disk.locks import OutputLocks

    folder, out, argv = finished_folder
    for part in (3, 4, 5):
        write_fasta(folder / f"output_{part}.fa", random_proteins(3, 5, 30, seed=part))
    _no_loading(monkeypatch)
    locks = OutputLocks()
    assert locks.try_acquire(out / "output_3_ESM.pt") is None  # a live run holds it
    try:
        plan_json = tmp_path / "plan.json"
        status = main(["plan", *argv[1:], "--summary-json", str(plan_json)])
        planned = json.loads(plan_json.read_text())["plan"]["files"]
        actions = {e["output"]: e["action"] for e in planned}
        assert actions[str(out / "output_3_ESM.pt")] == "locked" and status == 1
        assert "held by" in capsys.readouterr().out
        assert main(["plan", *argv[1:], "--shard", "2/2"]) == 0  # output_2 and output_4
        err = capsys.readouterr().err
        assert "(shard 2/2: 2 of 5 files)" in err  # every 2nd file of the sorted list
    finally:
        locks.close()


def test_an_input_edited_to_hold_no_valid_record_loses_its_old_output(tiny_model, tmp_path):
    fasta, out = tmp_path / "x.fa", tmp_path / "out"
    write_fasta(fasta, random_proteins(3, 5, 20, seed=5))
    assert run(tiny_model, [fasta], out).ok
    old_ids = [record_id for record_id, _ in random_proteins(3, 5, 20, seed=5)]
    dna = tmp_path / "x_DNABERT_S.pt"
    items = [{"label": i, "mean_representation": [0.5] * 768} for i in old_ids]
    torch.save({"nucleotide": old_ids, "data": items}, dna)
    fasta.write_text(">r1\nMK1\n>r2\nMK2\n")  # every record invalid now

    summary = run(tiny_model, [fasta], out)

    assert not summary.ok and summary.count("failed") == 1
    assert not (out / "x_ESM.pt").exists() and not (out / "x_ESM.pt.json").exists()
    again = run(tiny_model, [fasta], out)  # reported again, nothing brought back
    assert again.count("failed") == 1 and not (out / "x_ESM.pt").exists()
    merged = tmp_path / "x_merged.pt"
    assert main(["merge", str(dna), str(out / "x_ESM.pt"), "-o", str(merged)]) == 2
    assert not merged.exists()  # merge has no old ESM file to take for this input's
