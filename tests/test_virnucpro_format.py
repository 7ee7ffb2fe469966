"""Compatibility with real outputs of the original VirNucPro pipeline (../shared/fixtures)."""

import pytest
import torch

from fastesm_extract import extract_files, load_embeddings

SETS = ["test_with_orfs", "test_fixed_500bp"]


def merge_data(dnabert_s: dict, esm: dict) -> dict:
    """VirNucPro's merge_data(): dict by ID, torch.cat(DNABERT-S, ESM), rows in DNABERT-S order."""
    nucleotide = {
        label: torch.tensor(item["mean_representation"])
        for label, item in zip(dnabert_s["nucleotide"], dnabert_s["data"])
    }
    protein = dict(zip(esm["proteins"], esm["data"]))
    rows = [
        torch.cat((nucleotide[label], protein[label]), dim=-1)
        for label in dnabert_s["nucleotide"]
        if label in nucleotide and label in protein
    ]
    return {"ids": dnabert_s["nucleotide"], "data": torch.stack(rows)}


def structure(content: dict) -> tuple:
    data = content["data"]
    return (
        sorted(content),
        type(content["proteins"]).__name__,
        {type(p).__name__ for p in content["proteins"]},
        type(data).__name__,
        {(type(t).__name__, t.dim(), t.dtype) for t in data},
    )


@pytest.mark.parametrize("name", SETS)
def test_our_output_has_the_structure_of_the_original(
    virnucpro_fixtures, tiny_model, tmp_path, name
):
    folder = virnucpro_fixtures / name
    original = torch.load(folder / "output_1_ESM.pt", weights_only=True)
    summary = extract_files(
        [folder / "output_1_protein.fa"], tmp_path, model=tiny_model, show_progress=False
    )
    assert summary.ok
    ours = torch.load(tmp_path / "output_1_protein_ESM.pt", weights_only=True)
    assert structure(ours) == structure(original)
    assert sorted(ours["proteins"]) == sorted(original["proteins"])
    # The original's own file passes our validation at its 2560 dimensions.
    assert len(load_embeddings(folder / "output_1_ESM.pt", hidden_size=2560)[0]) == 4


@pytest.mark.parametrize("name", SETS)
def test_merge_data_reimplementation_reproduces_the_original_merged_file(virnucpro_fixtures, name):
    folder = virnucpro_fixtures / name
    dnabert = torch.load(folder / "output_1_DNABERT_S.pt", weights_only=True)
    esm = torch.load(folder / "output_1_ESM.pt", weights_only=True)
    merged = torch.load(folder / "output_1_merged.pt", weights_only=True)
    ours = merge_data(dnabert, esm)
    assert ours["ids"] == merged["ids"]
    assert torch.equal(ours["data"], merged["data"])


@pytest.mark.parametrize("name", SETS)
def test_our_output_merges_with_dnabert_s(virnucpro_fixtures, tiny_model, tmp_path, name):
    folder = virnucpro_fixtures / name
    extract_files([folder / "output_1_protein.fa"], tmp_path, model=tiny_model, show_progress=False)
    ours = torch.load(tmp_path / "output_1_protein_ESM.pt", weights_only=True)
    dnabert = torch.load(folder / "output_1_DNABERT_S.pt", weights_only=True)
    merged = merge_data(dnabert, ours)
    assert merged["data"].shape == (4, 768 + tiny_model.hidden_size)
    assert merged["data"].dtype == torch.float32
    row = merged["ids"].index(ours["proteins"][0])
    assert torch.equal(merged["data"][row, 768:], ours["data"][0])
