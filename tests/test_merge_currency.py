"""Merged files are outputs like the others: they record what they were made from, a changed
input rebuilds them, one of another width is stale, a failing pair never leaves an old merged
file that looks current, and widths are checked without being told."""

import json
import os

import torch
from helpers import says, sha256_hex
from test_merge import random_block, write_dnabert_s, write_esm

from fastesm_extract.cli.main import main
from fastesm_extract.disk.manifest import write_manifest
from fastesm_extract.errors import EXIT_FAILURES, EXIT_OK, EXIT_USAGE


def ids_of(stem, n):
    return [f"{stem}_{i}" for i in range(n)]


STEMS = ("output_1", "output_2", "output_3")


def make_pairs(folder, width, stems=STEMS, seed=0):
    folder.mkdir(exist_ok=True)
    for index, stem in enumerate(stems):
        ids = ids_of(stem, 4)
        write_dnabert_s(folder / f"{stem}_DNABERT_S.pt", ids, random_block(4, 768, seed + index))
        write_esm(folder / f"{stem}_ESM.pt", ids, random_block(4, width, 50 + seed + index))


def expected_rows(width, index, seed=0):
    """The oracle: merge_data()'s rows are the DNABERT-S row, then the ESM row."""
    return torch.cat(
        [random_block(4, 768, seed + index), random_block(4, width, 50 + seed + index)], 1
    )


def merge(*argv):
    return main(["merge", *map(str, argv)])


def load(path):
    return torch.load(path, weights_only=True)


def test_a_merged_file_records_what_it_was_made_from(tmp_path):
    make_pairs(tmp_path / "f", 16)
    assert merge(tmp_path / "f", "-o", tmp_path / "m", "--label", "viral") == EXIT_OK
    manifest = json.loads((tmp_path / "m" / "output_1_merged.pt.json").read_text())
    esm = tmp_path / "f" / "output_1_ESM.pt"
    assert manifest["inputs"]["esm"]["sha256"] == sha256_hex(esm)
    assert manifest["inputs"]["esm"]["width"] == 16
    assert manifest["inputs"]["dnabert_s"]["width"] == 768
    assert manifest["labels"] == [1] and manifest["rows"] == 4 and manifest["width"] == 784
    assert manifest["output"]["sha256"] == sha256_hex(tmp_path / "m" / "output_1_merged.pt")


def test_a_changed_esm_input_rebuilds_its_merged_file(tmp_path, capsys):
    make_pairs(tmp_path / "f", 16)
    assert merge(tmp_path / "f", "-o", tmp_path / "m") == EXIT_OK
    # output_2 re-extracted: 4 records became 3.
    write_esm(tmp_path / "f" / "output_2_ESM.pt", ids_of("output_2", 3), random_block(3, 16, 9))
    assert merge(tmp_path / "f", "-o", tmp_path / "m", "--allow-missing") == EXIT_OK
    err = capsys.readouterr().err
    assert says(err, "1 written, 2 skipped, 0 failed")
    assert "rebuilt" in err and "its ESM input changed since it was made" in err
    rebuilt = load(tmp_path / "m" / "output_2_merged.pt")
    assert rebuilt["ids"] == ids_of("output_2", 3)
    new_rows = torch.cat([random_block(4, 768, 1)[:3], random_block(3, 16, 9)], 1)
    assert torch.equal(rebuilt["data"], new_rows)


def test_old_merged_files_of_another_model_stale_or_rebuilt(tmp_path, capsys):
    folder, out = tmp_path / "f", tmp_path / "m"
    make_pairs(folder, 16)
    out.mkdir()
    for stem in ("output_1", "output_2", "output_3"):  # old 3328-wide merged files
        torch.save({"ids": ids_of(stem, 4), "data": torch.ones(4, 3328)}, out / f"{stem}_merged.pt")
    old_time = os.stat(folder / "output_1_ESM.pt").st_mtime - 100
    for path in folder.iterdir():  # the inputs are older than the merged files
        os.utime(path, (old_time, old_time))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert merge(folder, "-o", out) == EXIT_FAILURES
    err = capsys.readouterr().err
    assert says(err, "0 written, 0 skipped, 0 failed, 3 stale") and "NOT current" in err
    assert says(err, "3328 wide (another model), its inputs now merge to 784")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # kept, untouched
    assert merge(folder, "-o", out, "--accept-stale") == EXIT_OK
    err = capsys.readouterr().err
    assert says(err, "3 stale merged files kept, accepted (--accept-stale)")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # accepted as they are
    for stem in STEMS:
        kept = load(out / f"{stem}_merged.pt")
        assert kept["ids"] == ids_of(stem, 4) and torch.equal(kept["data"], torch.ones(4, 3328))
    assert merge(folder, "-o", out, "--redo-stale") == EXIT_OK
    assert says(capsys.readouterr().err, "3 written, 0 skipped, 0 failed")
    for index, stem in enumerate(STEMS):  # every one rebuilt from its inputs, row for row
        rebuilt = load(out / f"{stem}_merged.pt")
        assert rebuilt["ids"] == ids_of(stem, 4) and "labels" not in rebuilt
        assert rebuilt["data"].dtype == torch.float32 and rebuilt["data"].shape == (4, 784)
        assert torch.equal(rebuilt["data"], expected_rows(16, index))
    # Old merged files whose inputs were re-extracted after them: rebuilt without a flag.
    for stem in ("output_1", "output_2"):
        torch.save({"ids": ids_of(stem, 4), "data": torch.ones(4, 3328)}, out / f"{stem}_merged.pt")
        (out / f"{stem}_merged.pt.json").unlink()
        os.utime(out / f"{stem}_merged.pt", (old_time - 50, old_time - 50))
    capsys.readouterr()
    assert merge(folder, "-o", out) == EXIT_OK
    err = capsys.readouterr().err
    assert says(err, "2 written, 1 skipped, 0 failed") and "changed since it was made" in err
    for index, stem in enumerate(STEMS):
        assert torch.equal(load(out / f"{stem}_merged.pt")["data"], expected_rows(16, index))


def test_an_old_merged_file_equal_to_its_inputs_merge_is_adopted(tmp_path):
    make_pairs(tmp_path / "f", 16)
    out = tmp_path / "m"
    assert merge(tmp_path / "f", "-o", out) == EXIT_OK
    before = (out / "output_1_merged.pt").read_bytes()
    (out / "output_1_merged.pt.json").unlink()  # as the original pipeline wrote it
    assert merge(tmp_path / "f", "-o", out) == EXIT_OK
    assert (out / "output_1_merged.pt").read_bytes() == before
    assert (out / "output_1_merged.pt.json").is_file()  # adopted: current, manifest added


def test_widths_are_checked_without_being_told(tmp_path, capsys):
    folder, out = tmp_path / "f", tmp_path / "m"
    make_pairs(folder, 16)
    assert merge(folder, "-o", out) == EXIT_OK
    # output_3's ESM file comes back 2560-dim (an ESM2-3B leftover) among 16-dim ones.
    write_esm(folder / "output_3_ESM.pt", ids_of("output_3", 4), random_block(4, 2560, 3))
    capsys.readouterr()
    # No manifest names a model, so no width is taken from a majority: the user is asked.
    assert merge(folder, "-o", out) == EXIT_USAGE
    err = capsys.readouterr().err
    assert says(err, "16 (2 files), 2560 (ESM2-3B?) (1 files); give --expect-dim")
    assert (out / "output_3_merged.pt").exists()  # nothing was touched
    assert merge(folder, "-o", out, "--expect-dim", "16") == EXIT_FAILURES
    err = capsys.readouterr().err
    assert says(err, "0 written, 2 skipped, 0 failed, 1 stale")
    assert says(err, "2560-dim without manifest (another model's features), this merge is 16-dim")
    # Its old merged file no longer looks current: the tool's own (a merge of recorded
    # inputs) is removed with its manifest, not piled up as `.outdated`.
    assert not (out / "output_3_merged.pt").exists()
    assert not (out / "output_3_merged.pt.json").exists()
    assert not (out / "output_3_merged.pt.outdated").exists()
    assert "the old output_3_merged.pt (this tool's merge of earlier inputs) was removed" in err
    # With --expect-dim the explicit width wins.
    assert merge(folder, "-o", out, "--expect-dim", "2560") == EXIT_FAILURES
    assert says(capsys.readouterr().err, "1 written, 0 skipped, 0 failed, 2 stale")


def test_an_esm_file_must_have_the_width_its_manifest_records(tmp_path, capsys):
    folder = tmp_path / "f"
    make_pairs(folder, 16, stems=("output_1",))
    write_manifest(
        folder / "output_1_ESM.pt", {"state": "complete", "model": {"hidden_size": 1280}}
    )
    assert merge(folder, "-o", tmp_path / "m") == EXIT_FAILURES
    assert says(capsys.readouterr().err, "its manifest records hidden size 1280")


def test_another_dnabert_s_width_when_told(tmp_path):
    ids = ids_of("a", 2)
    write_dnabert_s(tmp_path / "a_DNABERT_S.pt", ids, random_block(2, 12, 0))
    write_esm(tmp_path / "a_ESM.pt", ids, random_block(2, 8, 1))
    assert merge(tmp_path, "-o", tmp_path / "m") == EXIT_FAILURES
    assert merge(tmp_path, "-o", tmp_path / "m", "--dnabert-s-dim", "12") == EXIT_OK
    assert load(tmp_path / "m" / "a_merged.pt")["data"].shape == (2, 20)


def test_merge_usage_errors_exit_2(tmp_path, capsys):
    make_pairs(tmp_path / "f", 16)
    (tmp_path / "file").write_text("x")
    assert merge(tmp_path / "f", "-o", tmp_path / "file") == EXIT_USAGE
    assert "is a file: give a folder" in capsys.readouterr().err
    assert merge(tmp_path / "f", "-o", tmp_path / "m", "--dnabert-s-dim", "0") == EXIT_USAGE
    assert merge(tmp_path / "nowhere", "-o", tmp_path / "m") == EXIT_USAGE
