"""Errors say what to do: they name the path, the run goes on where it can, the summary is
printed and no failure is lost."""

import errno
import logging
import os
import subprocess
from pathlib import Path

import pytest
from helpers import cli_command, random_proteins, says, subprocess_environment, write_fasta

import fastesm_extract.disk.store as store
from fastesm_extract import verify_output
from fastesm_extract.cli.main import main
from fastesm_extract.errors import EXIT_FAILURES, EXIT_OK, EXIT_USAGE


def extract(checkpoint, *args):
    return main(["extract", *map(str, args), "--model", str(checkpoint), "--device", "cpu", "-q"])


@pytest.fixture
def two_files(tmp_path):
    """IN/a.fa with one bad record of three, IN/b.fa all good."""
    (tmp_path / "IN").mkdir()
    write_fasta(tmp_path / "IN" / "a.fa", [*random_proteins(2, 5, 20, seed=1), ("bad", "MK1")])
    write_fasta(tmp_path / "IN" / "b.fa", random_proteins(2, 5, 20, seed=2))
    return tmp_path / "IN"


def test_a_folder_as_failure_log_is_refused_before_any_work(tiny_checkpoint, two_files, capsys):
    (two_files.parent / "logs").mkdir()
    out = two_files.parent / "OUT"
    code = extract(
        tiny_checkpoint, two_files, "-o", out, "--failure-log", two_files.parent / "logs"
    )
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "logs is a folder: give a file path" in err and "Errno" not in err
    assert not out.exists()


UNWRITABLE_LOGS = {
    "full_disk": lambda tmp: Path("/dev/full"),  # every write fails with ENOSPC
    "parent_is_a_file": lambda tmp: tmp / "IN" / "a.fa" / "failures.log",
}


@pytest.mark.parametrize("where", list(UNWRITABLE_LOGS))
def test_an_unwritable_failure_log_loses_no_failure_and_the_run_goes_on(
    tiny_checkpoint, two_files, where, capsys, caplog
):
    log_path = UNWRITABLE_LOGS[where](two_files.parent)
    if where == "full_disk" and not log_path.exists():
        pytest.skip("/dev/full is not available")
    out = two_files.parent / "OUT"
    with caplog.at_level(logging.ERROR, logger="fastesm_extract"):
        code = extract(tiny_checkpoint, two_files, "-o", out, "--failure-log", log_path)
    assert code == EXIT_FAILURES  # one record failed
    err = capsys.readouterr().err
    assert says(err, "2 written, 0 skipped, 0 failed files; 4 records embedded, 1 failed")
    assert f"the failure log {log_path} could not be written" in err
    assert "bad\tinvalid_character" in caplog.text  # the failure line itself is kept
    assert str(log_path) in caplog.text


def test_a_full_disk_while_splitting_names_the_part(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    write_fasta(tmp_path / "big.fa", random_proteins(6, 5, 20))

    def full_disk(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store.os, "fsync", full_disk)
    code = extract(tiny_checkpoint, "--split-every", 2, tmp_path / "big.fa", "-o", tmp_path / "o")
    assert code == EXIT_FAILURES
    err = capsys.readouterr().err
    assert f"{tmp_path / 'o' / 'parts' / 'output_1.fa'}: No space left on device" in err
    assert "[Errno" not in err and "rerun" in err


def test_a_cr_only_file_is_read_record_by_record(tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "mac.fa").write_bytes(b">a\rMKTAYIAK\r>b\rQQLL\r>c\rMK\rTL\r")
    assert extract(tiny_checkpoint, tmp_path / "mac.fa", "-o", tmp_path / "o") == EXIT_OK
    err = capsys.readouterr().err
    assert says(err, "3 records embedded, 0 failed") and "no usable records" not in err


@pytest.mark.parametrize("spelling", ["absolute", "dot_relative", "deep_relative"])
def test_a_missing_model_folder_says_so(tmp_path, spelling, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fasta = write_fasta(tmp_path / "a.fa", [("a", "MKT")])
    model = {
        "absolute": str(tmp_path / "models" / "esm2"),
        "dot_relative": "./esm2_checkpoint",
        "deep_relative": "models/esm2/checkpoint",
    }[spelling]
    code = main(["extract", str(fasta), "--model", model, "--device", "cpu", "-q"])
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "no such folder" in err and "Repo id must" not in err
    assert not (tmp_path / "a_ESM.pt").exists()


def test_a_model_path_that_looks_like_a_hub_id_hints_at_the_missing_folder(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    fasta = write_fasta(tmp_path / "a.fa", [("a", "MKT")])
    assert main(["extract", str(fasta), "--model", "models/esm2", "--device", "cpu"]) == 2
    assert f"no local folder {tmp_path / 'models' / 'esm2'}" in capsys.readouterr().err


def test_symlinked_sub_folders_are_followed_once_and_loops_reported(
    tiny_checkpoint, tmp_path, capsys, caplog
):
    data = tmp_path / "data"
    elsewhere = tmp_path / "elsewhere"
    (data / "real").mkdir(parents=True)
    elsewhere.mkdir()
    write_fasta(data / "real" / "a.fa", [("a", "MKT")])
    write_fasta(elsewhere / "b.fa", [("b", "QQL")])
    (data / "linked").symlink_to(elsewhere, target_is_directory=True)  # cluster-style link
    (data / "real" / "loop").symlink_to(data, target_is_directory=True)  # a loop
    (data / "broken").symlink_to(tmp_path / "gone", target_is_directory=True)
    out = tmp_path / "OUT"
    with caplog.at_level(logging.WARNING, logger="fastesm_extract"):
        assert extract(tiny_checkpoint, data, "-o", out) == EXIT_OK
    assert says(capsys.readouterr().err, "2 written")
    assert (out / "real" / "a_ESM.pt").exists() and (out / "linked" / "b_ESM.pt").exists()
    assert "is not searched again" in caplog.text and "broken symlink" in caplog.text
    (tmp_path / "view").mkdir()
    (tmp_path / "view" / "linked_out").symlink_to(out / "linked", target_is_directory=True)
    assert main(["verify", str(tmp_path / "view")]) == EXIT_OK
    assert verify_output(tmp_path / "view" / "linked_out" / "b_ESM.pt").ok


@pytest.mark.e2e
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="/dev/full is not available")
def test_worker_processes_keep_failures_the_log_cannot_hold(tiny_checkpoint, two_files):
    command = cli_command(two_files, two_files.parent / "OUT", tiny_checkpoint)
    command += ["--devices", "cpu,cpu", "--failure-log", "/dev/full"]
    result = subprocess.run(
        command, env=subprocess_environment(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == EXIT_FAILURES, result.stderr
    assert says(result.stderr, "4 records embedded, 1 failed")
    assert "the failure log /dev/full could not be written" in result.stderr
    assert "bad\tinvalid_character" in result.stderr
