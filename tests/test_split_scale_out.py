"""`--split-every` is one more job source: it combines with `--shard` and `--devices` like
folders do, and a part rewritten with the same content keeps its output."""

import subprocess
from pathlib import Path

import pytest
from helpers import finished_outputs as outputs
from helpers import random_proteins, says, subprocess_environment, write_fasta

from fastesm_extract.api.files import extract_split
from fastesm_extract.cli.main import main
from fastesm_extract.disk.manifest import read_manifest
from fastesm_extract.errors import EXIT_OK
from fastesm_extract.running.config import resolve_config

ENV = subprocess_environment()


@pytest.fixture
def big_fasta(tmp_path) -> Path:
    return write_fasta(tmp_path / "big.fa", random_proteins(23, 5, 40, seed=11))


def split_command(fasta: Path, out: Path, checkpoint: Path, *extra: str) -> list[str]:
    return [
        *("extract", str(fasta), "--split-every", "4", "-o", str(out)),
        *("--model", str(checkpoint), "-q", *extra),
    ]


def test_split_shards_share_the_parts_and_together_equal_one_run(
    tiny_checkpoint, big_fasta, tmp_path, capsys
):
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    assert main(split_command(big_fasta, whole, tiny_checkpoint, "--device", "cpu")) == EXIT_OK
    capsys.readouterr()
    first = split_command(big_fasta, sharded, tiny_checkpoint, "--device", "cpu", "--shard")
    assert main([*first, "1/2"]) == EXIT_OK
    assert says(capsys.readouterr().err, "3 written")  # parts 1, 3, 5 (sorted by output name)
    after_first = outputs(sharded)
    stamps = {name: (sharded / name).stat().st_mtime_ns for name in after_first}
    assert main([*first, "2/2"]) == EXIT_OK
    assert says(capsys.readouterr().err, "3 written")  # parts 2, 4, 6
    assert len(outputs(whole)) == 6
    assert outputs(sharded) == outputs(whole)  # bitwise, every part exactly once
    # The second shard split the same file into the same parts: the first one's outputs
    # were neither deleted nor rewritten.
    assert {name: (sharded / name).stat().st_mtime_ns for name in after_first} == stamps
    assert sorted(p.name for p in (sharded / "parts").iterdir()) == [
        f"output_{k}.fa" for k in range(1, 7)
    ]


@pytest.mark.e2e
def test_split_with_two_cpu_workers_equals_one_process(tiny_checkpoint, big_fasta, tmp_path):
    script = Path(__import__("sys").executable).parent / "fastesm-extract"
    runs = {"one": ("--device", "cpu"), "two": ("--devices", "cpu,cpu")}
    for name, extra in runs.items():
        command = [str(script), *split_command(big_fasta, tmp_path / name, tiny_checkpoint)]
        result = subprocess.run(
            [*command, *extra], env=ENV, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr
        assert says(result.stderr, "6 written, 0 skipped, 0 failed files; 23 records embedded")
    assert len(outputs(tmp_path / "two")) == 6
    assert outputs(tmp_path / "two") == outputs(tmp_path / "one")


def test_split_on_a_single_listed_device_runs_there(tiny_checkpoint, big_fasta, tmp_path):
    """`--devices cpu` names the one device: the model loads there, never on CUDA."""
    out = tmp_path / "out"
    assert main(split_command(big_fasta, out, tiny_checkpoint, "--devices", "cpu")) == EXIT_OK
    assert len(outputs(out)) == 6
    devices = {read_manifest(out / name)["model"]["device"] for name in outputs(out)}
    assert len(devices) == 1 and devices.pop().startswith("cpu")
    _, summary = extract_split(
        big_fasta,
        tmp_path / "api",
        4,
        model=str(tiny_checkpoint),
        devices=["cpu"],
        show_progress=False,
    )
    assert summary.ok and summary.count("written") == 6


def test_one_device_however_given_is_the_device_of_the_run():
    assert resolve_config(devices=["cpu"]).devices == ("cpu",)
    assert resolve_config(devices="cpu").devices == ("cpu",)
    assert resolve_config(device="cpu").devices == ("cpu",)
    assert resolve_config(devices="cuda:1,cpu").devices == ("cuda:1", "cpu")
    torchrun = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}
    assert resolve_config(environ=torchrun).devices == ("cuda:1",)
    assert resolve_config(devices="cuda:0", environ=torchrun).devices == ("cuda:0",)


def test_a_part_rewritten_with_the_same_content_keeps_its_output(tiny_model, big_fasta, tmp_path):
    out = tmp_path / "out"
    extract_split(big_fasta, out, 4, model=tiny_model, show_progress=False)
    kept = (out / "output_2_ESM.pt").stat().st_mtime_ns
    (out / "parts" / "output_2.fa").unlink()  # e.g. another shard run writes it again
    parts, summary = extract_split(big_fasta, out, 4, model=tiny_model, show_progress=False)
    assert [p.rewritten for p in parts] == [False, True, False, False, False, False]
    assert (summary.count("written"), summary.count("skipped")) == (0, 6)
    assert (out / "output_2_ESM.pt").stat().st_mtime_ns == kept
