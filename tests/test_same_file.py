"""No command ever writes over one of its inputs, however the path is spelled: exit 2, and
nothing is written at all."""

import os
from pathlib import Path

import pytest
import torch
from helpers import random_proteins
from helpers import write_fasta as write_fasta_here

from fastesm_extract import InputError, extract_fast_esm
from fastesm_extract.cli.main import main
from fastesm_extract.disk.same_file import refuse_writing_over_inputs
from fastesm_extract.errors import EXIT_USAGE


def write_fasta(path: Path, records) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_fasta_here(path, records)


def tree_state(root: Path) -> dict:
    """Every entry under `root` with what a write would change (no symlink is followed)."""
    state = {}
    for path in sorted(root.rglob("*")):
        status = path.lstat()
        content = path.read_bytes() if path.is_file() and not path.is_symlink() else None
        state[str(path.relative_to(root))] = (status.st_mode, status.st_mtime_ns, content)
    return state


def spellings(target: Path, workdir: Path) -> dict[str, Path]:
    """The same file named six ways: itself, relative with `..`, through a symlink to it,
    through a symlinked folder above it, and as a hard link."""
    (workdir / "links").mkdir(exist_ok=True)
    symlink = workdir / "links" / f"sym_{target.name}"
    symlink.symlink_to(target)
    folder_link = workdir / "links" / "folder"
    if not folder_link.exists():
        folder_link.symlink_to(target.parent, target_is_directory=True)
    hard = workdir / "links" / f"hard_{target.name}"
    os.link(target, hard)
    return {
        "absolute": target,
        "dotdot": target.parent / ".." / target.parent.name / target.name,
        "relative": Path(os.path.relpath(target, Path.cwd())),
        "symlink": symlink,
        "folder_symlink": folder_link / target.name,
        "hard_link": hard,
    }


SPELLINGS = ["absolute", "dotdot", "relative", "symlink", "folder_symlink", "hard_link"]


@pytest.fixture
def project(tmp_path):
    """OUT/parts/output_1.fa of 40 records, as a finished --split-every run leaves it."""
    out = tmp_path / "OUT"
    write_fasta(out / "parts" / "output_1.fa", random_proteins(40, 5, 20))
    return tmp_path


def extract_args(checkpoint, *args):
    return ["extract", *map(str, args), "--model", str(checkpoint), "--device", "cpu", "-q"]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_split_refuses_an_input_among_its_own_parts(tiny_checkpoint, project, spelling, capsys):
    out = project / "OUT"
    source = spellings(out / "parts" / "output_1.fa", project)[spelling]
    before = tree_state(project)
    argv = extract_args(tiny_checkpoint, "--split-every", 15, source, "-o", out)
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "refusing to write" in err and "output_1.fa" in err and "Traceback" not in err
    assert tree_state(project) == before


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_split_refuses_an_input_that_is_one_of_its_outputs(tiny_checkpoint, tmp_path, spelling):
    out = tmp_path / "OUT"
    big = write_fasta(out / "output_2_ESM.pt", random_proteins(40, 5, 20))  # a FASTA, badly named
    source = spellings(big, tmp_path)[spelling]
    before = tree_state(tmp_path)
    assert main(extract_args(tiny_checkpoint, "--split-every", 15, source, "-o", out)) == 2
    assert tree_state(tmp_path) == before


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_extract_refuses_a_failure_log_that_is_an_input(tiny_checkpoint, tmp_path, spelling):
    fasta = write_fasta(tmp_path / "in" / "a.fa", [("ok", "MKT"), ("bad", "MK1")])
    log = spellings(fasta, tmp_path)[spelling]
    before = tree_state(tmp_path)
    argv = extract_args(tiny_checkpoint, fasta, "-o", tmp_path / "out", "--failure-log", log)
    assert main(argv) == EXIT_USAGE
    assert tree_state(tmp_path) == before


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_extract_refuses_an_input_that_another_input_would_write(
    tiny_checkpoint, tmp_path, spelling
):
    fasta = write_fasta(tmp_path / "in" / "a.fa", [("ok", "MKT")])
    precious = write_fasta(tmp_path / "in" / "a_ESM.pt", [("keep", "MKT")])  # named like output
    other = spellings(precious, tmp_path)[spelling]
    before = tree_state(tmp_path)
    assert main(extract_args(tiny_checkpoint, fasta, other)) == EXIT_USAGE
    assert tree_state(tmp_path) == before


def test_extract_refuses_an_input_that_is_a_manifest_it_would_write(tiny_checkpoint, tmp_path):
    fasta = write_fasta(tmp_path / "a.fa", [("ok", "MKT")])
    precious = write_fasta(tmp_path / "a_ESM.pt.json", [("keep", "MKT")])
    before = tree_state(tmp_path)
    assert main(extract_args(tiny_checkpoint, fasta, precious)) == EXIT_USAGE
    assert tree_state(tmp_path) == before


def esm_file(path: Path, ids: list[str], dim: int = 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"proteins": ids, "data": [torch.ones(dim) for _ in ids]}, path)
    return path


def dnabert_file(path: Path, ids: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    items = [{"label": i, "mean_representation": [0.5] * 768} for i in ids]
    torch.save({"nucleotide": ids, "data": items}, path)
    return path


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("which", ["esm", "dnabert_s"])
def test_merge_refuses_to_write_over_either_input(tmp_path, spelling, which, capsys):
    dna = dnabert_file(tmp_path / "DNA" / "x_DNABERT_S.pt", ["a", "b"])
    esm = esm_file(tmp_path / "ESM" / "x_ESM.pt", ["a", "b"])
    target = spellings(esm if which == "esm" else dna, tmp_path)[spelling]
    before = tree_state(tmp_path)
    assert main(["merge", str(dna), str(esm), "-o", str(target)]) == EXIT_USAGE
    assert "refusing to write" in capsys.readouterr().err
    assert tree_state(tmp_path) == before


def test_folder_merge_refuses_before_writing_any_pair(tmp_path):
    for stem in ("a", "b"):
        dnabert_file(tmp_path / "DNA" / f"{stem}_DNABERT_S.pt", ["r1"])
        esm_file(tmp_path / "ESM" / f"{stem}_ESM.pt", ["r1"])
    (tmp_path / "OUT").mkdir()
    # b's merged file would land on an ESM input, through a link planted in OUT
    (tmp_path / "OUT" / "b_merged.pt").symlink_to(tmp_path / "ESM" / "a_ESM.pt")
    before = tree_state(tmp_path)
    argv = ["merge", str(tmp_path / "DNA"), str(tmp_path / "ESM"), "-o", str(tmp_path / "OUT")]
    assert main(argv) == EXIT_USAGE
    assert tree_state(tmp_path) == before  # a_merged.pt, first in order, was not written either


def test_drop_in_refuses_to_write_its_input(tiny_model, tmp_path):
    fasta = write_fasta(tmp_path / "a.fa", [("ok", "MKT")])
    before = tree_state(tmp_path)
    with pytest.raises(InputError, match="same file as the input"):
        extract_fast_esm(fasta, tmp_path / "." / "a.fa", tiny_model, tiny_model.tokenizer)
    assert tree_state(tmp_path) == before


def test_outputs_that_are_other_files_pass(tmp_path):
    fasta = write_fasta(tmp_path / "a.fa", [("ok", "MKT")])
    copy = tmp_path / "copy.fa"
    copy.write_bytes(fasta.read_bytes())  # same content, another file
    refuse_writing_over_inputs([fasta], [copy, tmp_path / "missing" / "x_ESM.pt"])


@pytest.mark.parametrize("spelling", ["absolute", "dotdot", "symlink", "hard_link"])
@pytest.mark.parametrize("target", ["input", "output", "manifest", "failure_log"])
@pytest.mark.parametrize("command", ["extract", "plan"])
def test_summary_json_over_a_file_of_the_run_is_refused(
    tiny_checkpoint, tmp_path, target, spelling, command, capsys
):
    fasta = write_fasta(tmp_path / "in" / "a.fa", [("ok", "MKT"), ("bad", "MK1")])
    out = tmp_path / "out"
    argv = extract_args(tiny_checkpoint, fasta, "-o", out)
    assert main(argv) == 1  # a finished run: output, manifest and failure log exist
    files = {
        "input": fasta,
        "output": out / "a_ESM.pt",
        "manifest": out / "a_ESM.pt.json",
        "failure_log": out / "extraction_failures.log",
    }
    summary = spellings(files[target], tmp_path)[spelling]
    before = tree_state(tmp_path)
    capsys.readouterr()
    assert main([command, *argv[1:], "--summary-json", str(summary)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "refusing to write" in err and "give --summary-json another path" in err
    assert tree_state(tmp_path) == before


def test_summary_json_over_an_output_not_written_yet_is_refused(tiny_checkpoint, tmp_path):
    fasta = write_fasta(tmp_path / "in" / "a.fa", [("ok", "MKT")])
    out = tmp_path / "out"
    before = tree_state(tmp_path)
    log = tmp_path / "failures.log"
    argv = extract_args(tiny_checkpoint, fasta, "-o", out, "--failure-log", log)
    for summary in (out / "a_ESM.pt", out / "a_ESM.pt.json", log):
        assert main([*argv, "--summary-json", str(summary)]) == EXIT_USAGE
    assert tree_state(tmp_path) == before  # no -o folder, no log, no summary


@pytest.mark.parametrize("which", ["a_ESM.pt", "a_ESM.pt.json"])
def test_a_failure_log_over_an_output_or_its_manifest_is_refused(tiny_checkpoint, tmp_path, which):
    fasta = write_fasta(tmp_path / "in" / "a.fa", [("ok", "MKT")])
    out = tmp_path / "out"
    assert main(extract_args(tiny_checkpoint, fasta, "-o", out)) == 0
    before = tree_state(tmp_path)
    argv = extract_args(tiny_checkpoint, fasta, "-o", out, "--failure-log", out / which)
    assert main([*argv, "--overwrite"]) == EXIT_USAGE
    assert tree_state(tmp_path) == before


def test_drop_in_refuses_a_failure_log_that_is_its_output(tiny_model, tmp_path):
    fasta = write_fasta(tmp_path / "a.fa", [("ok", "MKT")])
    before = tree_state(tmp_path)
    with pytest.raises(InputError, match="which this command writes too"):
        extract_fast_esm(
            fasta, tmp_path / "a_ESM.pt", tiny_model, failure_log=tmp_path / "a_ESM.pt"
        )
    assert tree_state(tmp_path) == before


def test_a_merged_manifest_over_an_input_is_refused(tmp_path):
    dna = dnabert_file(tmp_path / "DNA" / "x_DNABERT_S.pt", ["a"])
    esm = esm_file(tmp_path / "ESM" / "x_ESM.pt", ["a"])
    (tmp_path / "OUT").mkdir()
    (tmp_path / "OUT" / "x_merged.pt.json").symlink_to(esm)  # the manifest would land on it
    before = tree_state(tmp_path)
    assert main(["merge", str(dna), str(esm), "-o", str(tmp_path / "OUT" / "x_merged.pt")]) == 2
    assert tree_state(tmp_path) == before


@pytest.mark.parametrize("name", ["parts/output_2.fa", "output_2_ESM.pt", "output_3_ESM.pt.json"])
def test_summary_json_named_like_a_part_of_the_split_is_refused(tiny_checkpoint, tmp_path, name):
    big = write_fasta(tmp_path / "big.fa", random_proteins(40, 5, 20))
    out = tmp_path / "OUT"
    before = tree_state(tmp_path)
    argv = extract_args(tiny_checkpoint, "--split-every", 15, big, "-o", out)
    assert main([*argv, "--summary-json", str(out / name)]) == EXIT_USAGE  # not there yet
    assert tree_state(tmp_path) == before
