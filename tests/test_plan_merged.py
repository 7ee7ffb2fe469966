"""`plan` covers the merged files beside its outputs (issue 26 item 7): after an ESM output
is rebuilt, or while it is about to be, its `X_merged.pt` is listed as `merge` and plan
exits 1, until `merge` has run again."""

from __future__ import annotations

import json

from helpers import random_proteins, says, write_fasta
from test_merge import random_block, write_dnabert_s

from fastesm_extract.cli.main import main


def plan(folder, checkpoint, summary=None):
    extra = ["--summary-json", str(summary)] if summary else []
    return main(["plan", str(folder), "--model", str(checkpoint), "--device", "cpu", *extra])


def test_plan_lists_merged_files_made_from_older_esm_outputs(tiny_checkpoint, tmp_path, capsys):
    folder = tmp_path / "train"
    folder.mkdir()
    records = random_proteins(4, 5, 30, seed=5)
    fasta = write_fasta(folder / "output_1.fa", records)
    ids = [record_id for record_id, _ in records]
    write_dnabert_s(folder / "output_1_DNABERT_S.pt", ids, random_block(4, 768, 1))
    argv = [str(folder), "--model", str(tiny_checkpoint), "--device", "cpu", "-q"]
    assert main(["extract", *argv]) == 0
    assert main(["merge", str(folder), "-o", str(folder), "--label", "viral"]) == 0
    capsys.readouterr()
    assert plan(folder, tiny_checkpoint) == 0  # everything current, merged file included
    assert "merge " not in capsys.readouterr().out

    with open(fasta, "a") as handle:  # the input grows: its output and merged file are old
        handle.write(">new\nMKTAYIAKQR\n")
    write_dnabert_s(folder / "output_1_DNABERT_S.pt", [*ids, "new"], random_block(5, 768, 1))
    assert plan(folder, tiny_checkpoint, tmp_path / "plan.json") == 1
    out = capsys.readouterr().out
    assert "output_1_merged.pt  (its ESM input output_1_ESM.pt is to be written" in out
    merged = json.loads((tmp_path / "plan.json").read_text())["plan"]["merged"]
    assert [entry["output"] for entry in merged] == [str(folder / "output_1_merged.pt")]

    assert main(["extract", *argv]) == 0  # rebuilt: the merged file still holds the old rows
    capsys.readouterr()
    assert plan(folder, tiny_checkpoint) == 1
    captured = capsys.readouterr()
    assert "rebuild: its DNABERT-S input changed since it was made" in captured.out
    assert says(captured.err, "1 merged files beside these outputs are not current")

    assert main(["merge", str(folder), "-o", str(folder), "--label", "viral"]) == 0
    capsys.readouterr()
    assert plan(folder, tiny_checkpoint) == 0
