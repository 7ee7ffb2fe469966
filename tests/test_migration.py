"""The migration users really do, as one test: a VirNucPro training folder of ESM2-3B
features (2560-dim `_ESM.pt`, some with a manifest naming that model, some without, as the
original pipeline wrote them; 3328-wide merged files) re-extracted with another model in
place, re-merged, then rerun. README's VirNucPro recipe walks exactly this flow."""

import json

import pytest
import torch
from Bio import SeqIO
from helpers import random_proteins, write_fasta
from test_merge import random_block, write_dnabert_s

import fastesm_extract.running.config as config
from fastesm_extract.cli.main import main
from fastesm_extract.disk.manifest import read_manifest, sha256_of, write_manifest
from fastesm_extract.disk.store import load_embeddings, save_embeddings_atomic

STEMS = ("output_1", "output_2", "output_3")
OLD_MODEL = "facebook/esm2_t36_3B_UR50D"


@pytest.fixture
def esm2_3b_folder(tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    for index, stem in enumerate(STEMS):
        records = random_proteins(5, 8, 40, seed=index)
        ids = [record_id for record_id, _ in records]
        fasta = write_fasta(folder / f"{stem}.fa", records)
        save_embeddings_atomic(folder / f"{stem}_ESM.pt", ids, list(random_block(5, 2560, index)))
        if index == 0:  # made by a manifest-writing tool with ESM2-3B
            manifest = {
                "state": "complete",
                "input": {"sha256": sha256_of(fasta)},
                "model": {"id": OLD_MODEL, "hidden_size": 2560},
                "settings": {"truncation_seq_length": 1024},
            }
            write_manifest(folder / f"{stem}_ESM.pt", manifest)
        write_dnabert_s(folder / f"{stem}_DNABERT_S.pt", ids, random_block(5, 768, 10 + index))
        old = {"ids": ids, "data": torch.ones(5, 768 + 2560)}  # merge_data() of the old pair
        torch.save(old, folder / f"{stem}_merged.pt")
    return folder


def test_migrating_a_training_folder_to_another_model_in_place(
    esm2_3b_folder, tiny_checkpoint, tmp_path, monkeypatch, capsys
):
    folder = esm2_3b_folder
    extract = ["extract", str(folder), "--model", str(tiny_checkpoint), "--device", "cpu", "-q"]
    merge = ["merge", str(folder), "-o", str(folder), "--label", "viral"]
    old_bytes = {p.name: p.read_bytes() for p in folder.glob("*_ESM.pt")}

    # 1. Extract into the same folder: the old features are stale, kept, and the run fails.
    assert main(extract) == 1
    err = capsys.readouterr().err
    assert "3 stale outputs kept, NOT current" in err
    assert f"model '{OLD_MODEL}' != " in err and "2560 dimensions, this model gives 32" in err
    assert {p.name: p.read_bytes() for p in folder.glob("*_ESM.pt")} == old_bytes

    # 2. --redo-stale rebuilds them: every _ESM.pt is the new model's, with its manifest,
    #    holding the FASTA's IDs (read by Biopython) in its order.
    assert main([*extract, "--redo-stale"]) == 0
    for stem in STEMS:
        proteins, data = load_embeddings(folder / f"{stem}_ESM.pt", 32)
        fasta_ids = [record.id for record in SeqIO.parse(folder / f"{stem}.fa", "fasta")]
        assert proteins == fasta_ids and len(fasta_ids) == 5
        assert read_manifest(folder / f"{stem}_ESM.pt")["model"]["hidden_size"] == 32

    # 3. Merge: the old 3328-wide merged files are rebuilt from the new features.
    capsys.readouterr()
    assert main(merge) == 0
    assert "3 written, 0 skipped, 0 failed" in capsys.readouterr().err
    for stem in STEMS:
        merged = torch.load(folder / f"{stem}_merged.pt", weights_only=True)
        assert merged["data"].shape == (5, 768 + 32) and merged["labels"] == [1]
        # The oracle: each row is torch.cat(DNABERT-S row, the new ESM row) of its ID.
        dnabert_s = torch.load(folder / f"{stem}_DNABERT_S.pt", weights_only=True)
        esm = torch.load(folder / f"{stem}_ESM.pt", weights_only=True)
        esm_row = dict(zip(esm["proteins"], esm["data"]))
        assert merged["ids"] == dnabert_s["nucleotide"] == esm["proteins"]
        for row, seq_id, entry in zip(merged["data"], merged["ids"], dnabert_s["data"]):
            nucleotide = torch.tensor(entry["mean_representation"])
            assert torch.equal(row, torch.cat((nucleotide, esm_row[seq_id])))
        manifest = json.loads((folder / f"{stem}_merged.pt.json").read_text())
        assert manifest["inputs"]["esm"]["sha256"] == sha256_of(folder / f"{stem}_ESM.pt")
        assert manifest["inputs"]["esm"]["width"] == 32

    # 4. A rerun of both: nothing recomputed, exit 0, the model not even loaded.
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(config, "load_model", refuse)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    summary_json = tmp_path / "summary.json"
    assert main([*extract, "--summary-json", str(summary_json)]) == 0
    summary = json.loads(summary_json.read_text())
    assert summary["files"] == {"skipped": 3} and summary["model_loaded"] is False
    assert main(merge) == 0
    assert "0 written, 3 skipped, 0 failed" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
