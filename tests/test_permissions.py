"""Every file the tool creates gets the mode the umask gives, as any program's files do."""

import os
import stat

import pytest
import torch
from helpers import random_proteins, write_fasta

from fastesm_extract import FAILURE_LOG_NAME, extract_files
from fastesm_extract.api.files import extract_split
from fastesm_extract.merge.pairs import merge_files


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_outputs_manifests_parts_merged_files_and_the_log_follow_the_umask(
    tiny_model, tmp_path, umask
):
    expected = 0o666 & ~umask
    fasta = write_fasta(tmp_path / "a.fa", [*random_proteins(3, 5, 20), ("bad", "MK1")])
    extract_files([fasta], tmp_path / "out", model=tiny_model, show_progress=False)
    write_fasta(tmp_path / "big.fa", random_proteins(5, 5, 20))
    extract_split(tmp_path / "big.fa", tmp_path / "split", 2, model=tiny_model, show_progress=False)
    ids = ["prot_0_0", "prot_0_1", "prot_0_2"]
    items = [{"label": i, "mean_representation": [0.5] * 768} for i in ids]
    torch.save({"nucleotide": ids, "data": items}, tmp_path / "a_DNABERT_S.pt")
    merge_files(tmp_path / "a_DNABERT_S.pt", tmp_path / "out" / "a_ESM.pt", tmp_path / "m.pt")
    created = [
        tmp_path / "out" / "a_ESM.pt",
        tmp_path / "out" / "a_ESM.pt.json",
        tmp_path / "out" / FAILURE_LOG_NAME,
        tmp_path / "split" / "parts" / "output_1.fa",
        tmp_path / "split" / "output_3_ESM.pt",
        tmp_path / "split" / "output_3_ESM.pt.json",
        tmp_path / "m.pt",
    ]
    assert {path.name: oct(mode(path)) for path in created} == {
        path.name: oct(expected) for path in created
    }
