"""Merge inputs in the wrong format: the command was given the wrong file, so it exits 2 as
any usage error does (a data problem, such as missing IDs or another width, stays 1); and
README's hand-written DNABERT-S example is a file merge accepts."""

import os
import re
import textwrap
from pathlib import Path

import torch
from helpers import says
from test_merge import random_block, write_dnabert_s, write_esm

from fastesm_extract.cli.main import main
from fastesm_extract.errors import EXIT_FAILURES, EXIT_OK, EXIT_USAGE

IDS = ["a", "b", "c"]
README = Path(__file__).resolve().parents[1] / "README.md"


def readme_blocks(containing: str) -> list[str]:
    """README's fenced code blocks that contain `containing`, list items' ones dedented."""
    blocks = re.findall(r"^( *)```\w*\n(.*?)^\1```$", README.read_text(), flags=re.S | re.M)
    return [textwrap.dedent(block) for _, block in blocks if containing in block]


def dnabert_s_variants(tmp_path):
    """Files given as the DNABERT-S side that are not DNABERT-S files, by what is wrong."""
    block = random_block(3, 768, 0)
    good = [{"label": i, "mean_representation": row} for i, row in zip(IDS, block.tolist())]
    variants = {
        "an _ESM.pt file": {"proteins": IDS, "data": list(random_block(3, 8, 1))},
        "other keys": {"ids": IDS, "data": block},
        "a merged file": {"ids": IDS, "data": torch.cat((block, random_block(3, 8, 1)), 1)},
        "IDs not a list": {"nucleotide": "abc", "data": good},
        "one entry short": {"nucleotide": IDS, "data": good[:2]},
        "no mean_representation": {"nucleotide": IDS, "data": [{"label": i} for i in IDS]},
        "values not numbers": {
            "nucleotide": IDS,
            "data": [{"label": i, "mean_representation": ["x"] * 768} for i in IDS],
        },
    }
    paths = {}
    for name, content in variants.items():
        paths[name] = tmp_path / f"{name.replace(' ', '_')}_DNABERT_S.pt"
        torch.save(content, paths[name])
    paths["not a torch file"] = tmp_path / "text_DNABERT_S.pt"
    paths["not a torch file"].write_text(">a\nACGT\n")
    return paths


def test_a_dnabert_s_side_in_another_format_exits_2_naming_the_file(tmp_path, capsys):
    esm = write_esm(tmp_path / "x_ESM.pt", IDS, random_block(3, 8, 2))
    out = tmp_path / "m.pt"
    for name, path in dnabert_s_variants(tmp_path).items():
        code = main(["merge", str(path), str(esm), "-o", str(out)])
        err = capsys.readouterr().err
        assert code == EXIT_USAGE, (name, err)
        assert err.startswith("fastesm-extract merge: error: ") and str(path) in err, err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert not out.exists()


def test_an_esm_side_in_another_format_exits_2(tmp_path, capsys):
    dnabert = write_dnabert_s(tmp_path / "x_DNABERT_S.pt", IDS, random_block(3, 768, 0))
    nan = random_block(3, 8, 2)
    nan[1, 3] = float("nan")
    wrong = {
        "DNABERT-S given as ESM": dnabert,
        "garbage": tmp_path / "g_ESM.pt",
        "other keys": tmp_path / "k_ESM.pt",
        "NaN values": tmp_path / "n_ESM.pt",
    }
    wrong["garbage"].write_bytes(os.urandom(64))
    torch.save({"proteins": IDS, "data": list(nan), "extra": 1}, wrong["other keys"])
    torch.save({"proteins": IDS, "data": list(nan)}, wrong["NaN values"])
    for name, esm in wrong.items():
        code = main(["merge", str(dnabert), str(esm), "-o", str(tmp_path / "m.pt")])
        err = capsys.readouterr().err
        assert code == EXIT_USAGE, (name, err)
        assert str(esm) in err and "Traceback" not in err
    assert not (tmp_path / "m.pt").exists()


def test_data_problems_between_good_files_still_exit_1(tmp_path, capsys):
    dnabert = write_dnabert_s(tmp_path / "x_DNABERT_S.pt", IDS, random_block(3, 768, 0))
    esm = write_esm(tmp_path / "x_ESM.pt", IDS[:2], random_block(2, 8, 2))
    out = str(tmp_path / "m.pt")
    assert main(["merge", str(dnabert), str(esm), "-o", out]) == EXIT_FAILURES  # missing ID c
    assert says(capsys.readouterr().err, "1 IDs of")
    esm = write_esm(tmp_path / "x_ESM.pt", IDS, random_block(3, 8, 2))
    assert main(["merge", str(dnabert), str(esm), "-o", out, "--expect-dim", "16"]) == 1


def test_a_folder_merge_fails_the_pair_of_a_wrong_file_and_merges_the_others(tmp_path, capsys):
    good = write_dnabert_s(tmp_path / "output_1_DNABERT_S.pt", IDS, random_block(3, 768, 0))
    write_esm(tmp_path / "output_1_ESM.pt", IDS, random_block(3, 8, 1))
    torch.save({"ids": IDS}, tmp_path / "output_2_DNABERT_S.pt")
    write_esm(tmp_path / "output_2_ESM.pt", IDS, random_block(3, 8, 2))
    out = tmp_path / "merged"
    assert main(["merge", str(tmp_path), "-o", str(out)]) == EXIT_FAILURES
    err = capsys.readouterr().err
    assert says(err, "1 written, 0 skipped, 1 failed")
    assert "output_2_DNABERT_S.pt is not a DNABERT-S file" in err
    merged = torch.load(out / "output_1_merged.pt", weights_only=True)
    assert merged["ids"] == IDS and good.exists()


def test_readme_dnabert_s_example_is_a_file_merge_accepts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    [example] = readme_blocks('"mean_representation": v')
    exec(example, {})  # writes output_1_DNABERT_S.pt here
    content = torch.load("output_1_DNABERT_S.pt", weights_only=True)
    protein = random_block(2, 8, 3)
    write_esm(tmp_path / "output_1_ESM.pt", content["nucleotide"], protein)
    code = main(["merge", "output_1_DNABERT_S.pt", "output_1_ESM.pt", "-o", "m.pt"])
    assert code == EXIT_OK
    merged = torch.load("m.pt", weights_only=True)
    assert merged["ids"] == ["read_1", "read_2"]
    expected = torch.cat((torch.tensor([[0.01] * 768, [0.02] * 768]), protein), dim=1)
    assert torch.equal(merged["data"], expected)
