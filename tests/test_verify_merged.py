"""`verify` reads the merge's files too: `_DNABERT_S.pt` inputs and `_merged.pt` outputs
(width, finite values, counts, IDs aligned with rows), covers a merged folder, and reports a
merged file whose ESM input was rebuilt after it as out of date (exit 1)."""

import os

import torch
from helpers import says
from test_merge import random_block, write_dnabert_s, write_esm

from fastesm_extract.cli.main import main
from fastesm_extract.errors import EXIT_FAILURES, EXIT_OK
from fastesm_extract.merge.verify import verify_file

IDS = ["a", "b", "c", "d"]


def training_folder(tmp_path, stems=("output_1", "output_2")):
    """DNABERT-S and 16-dim ESM files of the same IDs, as a training folder holds them."""
    folder = tmp_path / "train"
    folder.mkdir()
    for seed, stem in enumerate(stems):
        write_dnabert_s(folder / f"{stem}_DNABERT_S.pt", IDS, random_block(4, 768, seed))
        write_esm(folder / f"{stem}_ESM.pt", IDS[::-1], random_block(4, 16, 10 + seed))
    return folder


def table(out: str) -> dict[str, tuple[str, str, str]]:
    """verify's table as {file name: (status, records, dim)}."""
    rows = [line.split() for line in out.splitlines()[1:] if line and not line[0].isspace()]
    return {os.path.basename(row[3]): (row[0], row[1], row[2]) for row in rows}


def test_a_merged_folder_verifies_and_an_esm_input_rebuilt_after_it_is_out_of_date(
    tmp_path, capsys, monkeypatch
):
    folder = training_folder(tmp_path)
    merged = tmp_path / "merged"
    assert main(["merge", str(folder), "-o", str(merged), "--label", "viral"]) == EXIT_OK
    capsys.readouterr()

    assert main(["verify", str(merged), "--expect-dim", "16"]) == EXIT_OK
    out = capsys.readouterr()
    assert table(out.out) == {
        "output_1_merged.pt": ("OK", "4", "784"),
        "output_2_merged.pt": ("OK", "4", "784"),
    }
    assert says(out.err, "2 of 2 outputs OK")

    # output_2's ESM file is rebuilt (another extraction) after its merged file was made.
    write_esm(folder / "output_2_ESM.pt", IDS, random_block(4, 16, 99))
    monkeypatch.chdir(tmp_path.parent)  # absolute paths in the manifest find the inputs
    assert main(["verify", str(merged)]) == EXIT_FAILURES
    out = capsys.readouterr().out
    assert table(out)["output_1_merged.pt"][0] == "OK"
    assert table(out)["output_2_merged.pt"][0] == "FAILED"
    assert (
        f"problem: out of date: its ESM input {folder / 'output_2_ESM.pt'} changed (rebuilt) "
        "since it was made; rerun merge"
    ) in out
    assert main(["merge", str(folder), "-o", str(merged), "--label", "viral"]) == EXIT_OK
    assert main(["verify", str(merged)]) == EXIT_OK


def test_a_training_folder_verifies_all_three_kinds(tmp_path, capsys):
    folder = training_folder(tmp_path)
    assert main(["merge", str(folder), "-o", str(folder)]) == EXIT_OK
    capsys.readouterr()
    assert main(["verify", str(folder)]) == EXIT_OK
    rows = table(capsys.readouterr().out)
    assert rows == {
        f"output_{k}_{kind}.pt": ("OK", "4", dim)
        for k in (1, 2)
        for kind, dim in (("DNABERT_S", "768"), ("ESM", "16"), ("merged", "784"))
    }


def test_dnabert_s_problems(tmp_path):
    good = write_dnabert_s(tmp_path / "g_DNABERT_S.pt", IDS, random_block(4, 768, 0))
    report = verify_file(good)
    assert report.ok and (report.n_records, report.hidden_size) == (4, 768)
    block = random_block(4, 768, 0)
    entries = [{"label": i, "mean_representation": row} for i, row in zip(IDS, block.tolist())]
    entries[1]["label"], entries[2]["label"] = "c", "b"  # data not in the order of the IDs
    torch.save({"nucleotide": IDS, "data": entries}, tmp_path / "s_DNABERT_S.pt")
    assert verify_file(tmp_path / "s_DNABERT_S.pt").problems == [
        "2 entries whose 'label' is not the ID at their place in 'nucleotide' (IDs and data "
        "not aligned): b, c"
    ]
    torch.save({"nucleotide": IDS, "data": entries[:3]}, tmp_path / "n_DNABERT_S.pt")
    assert "one entry per ID" in verify_file(tmp_path / "n_DNABERT_S.pt").problems[0]
    write_dnabert_s(tmp_path / "w_DNABERT_S.pt", IDS, random_block(4, 512, 0))
    assert "must have 768 dimensions" in verify_file(tmp_path / "w_DNABERT_S.pt").problems[0]
    block[3, 0] = float("inf")
    write_dnabert_s(tmp_path / "f_DNABERT_S.pt", IDS, block)
    assert "NaN or infinite values: d" in verify_file(tmp_path / "f_DNABERT_S.pt").problems[0]
    write_esm(tmp_path / "e_DNABERT_S.pt", IDS, random_block(4, 16, 0))
    assert "is an _ESM.pt file" in verify_file(tmp_path / "e_DNABERT_S.pt").problems[0]


def test_merged_file_problems(tmp_path):
    folder = training_folder(tmp_path, ("output_1",))
    merged = folder / "output_1_merged.pt"
    assert main(["merge", str(folder), "-o", str(folder)]) == EXIT_OK
    assert verify_file(merged, expected_dim=16).ok
    assert verify_file(merged, expected_dim=1280).problems == [
        "784 wide: 768 DNABERT-S + 16 ESM, expected 768 + 1280"
    ]
    content = torch.load(merged, weights_only=True)
    content["data"][2, 5] = float("nan")
    torch.save(content, merged)  # changed after its manifest was written
    assert verify_file(merged).problems == [
        "rows with NaN or infinite values: c",
        "it is not the merged file its manifest describes: rerun merge",
    ]
    (folder / "output_1_merged.pt.json").unlink()
    # The original merge_data()'s bug: IDs listed without a row, so IDs and rows misalign.
    torch.save({"ids": [*IDS, "e"], "data": torch.zeros(4, 784), "labels": [2]}, merged)
    assert verify_file(merged).problems == [
        "5 IDs but 4 rows: IDs and rows not aligned",
        "labels [2]: expected [1] (viral) or [0] (host)",
    ]
    torch.save({"proteins": IDS, "data": list(torch.zeros(4, 16))}, merged)
    assert verify_file(merged).problems == [
        "not a merged file: expected keys ids, data (labels); got ['data', 'proteins']"
    ]


def test_merged_file_without_manifest_is_out_of_date_when_an_input_beside_it_is_newer(tmp_path):
    folder = training_folder(tmp_path, ("output_1",))
    merged = folder / "output_1_merged.pt"
    torch.save({"ids": IDS, "data": torch.zeros(4, 784)}, merged)
    report = verify_file(merged, expected_dim=16)
    assert report.ok and report.notes == [
        "no manifest (original pipeline): inputs compared by time only"
    ]
    esm = folder / "output_1_ESM.pt"
    os.utime(esm, (merged.stat().st_mtime + 10,) * 2)
    assert verify_file(merged).problems == [
        f"out of date: its ESM input {esm} is newer; rerun merge"
    ]


def test_original_pipeline_merged_file_verifies_at_3328(virnucpro_fixtures, tmp_path):
    folder = virnucpro_fixtures / "test_with_orfs"
    merged = tmp_path / "output_1_merged.pt"  # copied alone: no inputs beside it
    merged.write_bytes((folder / "output_1_merged.pt").read_bytes())
    report = verify_file(merged, expected_dim=2560)
    assert report.ok and (report.n_records, report.hidden_size) == (4, 3328)
    assert verify_file(folder / "output_1_DNABERT_S.pt").ok
