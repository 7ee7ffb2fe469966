"""A full disk fails one file, never the run.

Two ways: a real small file system that fills up (a tmpfs mounted for the test; skipped
where mounting is not permitted, except in CI or as root on Linux: there it fails), through
the CLI with one process, `--devices` workers, `merge` and `--split-every`; and ENOSPC
injected into the writes in process, so the class is covered everywhere.
"""

import contextlib
import errno
import io
import os
import subprocess
import sys
import uuid

import pytest
import torch
from helpers import cli_command, random_proteins, subprocess_environment, write_fasta
from test_merge import random_block, write_dnabert_s, write_esm

import fastesm_extract.disk.store as store_module
from fastesm_extract import extract_files
from fastesm_extract.cli.main import main
from fastesm_extract.disk.layout import lock_path, temporary_path
from fastesm_extract.disk.store import DiskFullError, atomic_write, save_embeddings_atomic
from fastesm_extract.errors import EXIT_FAILURES

# ----------------------------------------------------------------- a real full file system


@contextlib.contextmanager
def small_file_system(folder, size):
    """`folder` as a tmpfs of `size` (e.g. "256k"), unmounted afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        mount_refused(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def mount_refused(reason):
    """Skip, except where these tests must run (CI, or root on Linux): there a skip would
    drop the only real full-disk coverage of `--devices` and `merge`, so it fails."""
    must_run = os.environ.get("CI") or (sys.platform == "linux" and os.geteuid() == 0)
    if must_run:
        pytest.fail(f"{reason}; the real full-disk tests must run in CI and as root", pytrace=False)
    pytest.skip(reason)


def fill(folder):
    """Fill the file system of `folder` to the last byte; returns the filler file."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle:
        block = b"\0" * 4096
        with contextlib.suppress(OSError):
            while True:
                handle.write(block)
    with contextlib.suppress(OSError), open(filler, "ab", buffering=0) as handle:
        while True:
            handle.write(b"\0")
    return filler


@pytest.mark.parametrize(
    ("ci", "uid", "outcome"),
    [("1", 1000, pytest.fail.Exception), (None, 0, pytest.fail.Exception),
     (None, 1000, pytest.skip.Exception)],
)  # fmt: skip
def test_a_refused_mount_fails_in_ci_and_as_root_and_skips_elsewhere(monkeypatch, ci, uid, outcome):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(os, "geteuid", lambda: uid, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    with pytest.raises(outcome, match="cannot mount"):
        mount_refused("cannot mount a small tmpfs here")


def leftovers(folder):
    return sorted(
        p.name for p in folder.rglob("*") if p.name.startswith(".tmp-") or p.suffix == ".lock"
    )


def run_cli(*args):
    return subprocess.run(
        [*args], env=subprocess_environment(), capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def mixed_inputs(tmp_path_factory):
    """Three small files and one whose output does not fit in 256 KiB (tiny model: 32 dims)."""
    folder = tmp_path_factory.mktemp("disk-full-in")
    for name in ("a", "c", "d"):
        write_fasta(folder / f"{name}.fa", random_proteins(4, 10, 30, seed=ord(name)))
    write_fasta(folder / "b_big.fa", random_proteins(3000, 8, 12, seed=7))
    return folder


@pytest.mark.e2e
@pytest.mark.parametrize("extra", [[], ["--devices", "cpu,cpu"]], ids=["one process", "devices"])
def test_a_full_disk_fails_the_file_that_does_not_fit_and_the_run_goes_on(
    mixed_inputs, tiny_checkpoint, tmp_path, extra
):
    out, log = tmp_path / "out", tmp_path / "failures.log"
    with small_file_system(out, "256k"):
        command = cli_command(mixed_inputs, out, tiny_checkpoint, "--device", "cpu", *extra)
        result = run_cli(*command, "--failure-log", str(log))
        assert result.returncode == EXIT_FAILURES, result.stderr
        assert "internal error" not in result.stderr and "Traceback" not in result.stderr
        assert "worker_died" not in result.stderr
        assert sorted(p.name for p in out.glob("*_ESM.pt")) == ["a_ESM.pt", "c_ESM.pt", "d_ESM.pt"]
        assert "FAILED" in result.stderr and "disk full" in result.stderr
        lines = log.read_text().splitlines()
        assert len(lines) == 1, lines
        file, record, kind, message = lines[0].split("\t")[1:]
        assert (file, record, kind) == (str(mixed_inputs / "b_big.fa"), "-", "write_error")
        assert "disk full" in message and "b_big_ESM.pt" in message
        assert leftovers(out) == []
        assert not (out / "b_big_ESM.pt.json").exists()  # nothing half-done is described


@pytest.mark.e2e
def test_a_full_disk_while_taking_a_lock_leaves_no_lock_that_blocks_the_rerun(
    tiny_checkpoint, tmp_path
):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("x", "y"):
        write_fasta(inputs / f"{name}.fa", random_proteins(3, 10, 20, seed=len(name)))
    out, log = tmp_path / "out", tmp_path / "failures.log"
    with small_file_system(out, "64k"):
        filler = fill(out)
        command = [
            *cli_command(inputs, out, tiny_checkpoint, "--device", "cpu"),
            "--failure-log",
            str(log),
        ]
        result = run_cli(*command)
        assert result.returncode == EXIT_FAILURES, result.stderr
        assert "disk full" in result.stderr and "cannot read" not in result.stderr
        assert leftovers(out) == []  # no 0-byte lock left behind
        kinds = [line.split("\t")[3] for line in log.read_text().splitlines()]
        assert kinds == ["lock_error", "lock_error"]
        filler.unlink()  # space freed: the rerun does everything at once
        rerun = run_cli(*command)
        assert rerun.returncode == 0, rerun.stderr
        assert sorted(p.name for p in out.glob("*_ESM.pt")) == ["x_ESM.pt", "y_ESM.pt"]


def test_merge_on_a_full_disk_fails_the_pair_not_the_command(tmp_path):
    ids = [f"s{i}" for i in range(2000)]
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_dnabert_s(inputs / "big_DNABERT_S.pt", ids, random_block(2000, 768, 1))
    write_esm(inputs / "big_ESM.pt", ids, random_block(2000, 16, 2))
    write_dnabert_s(inputs / "small_DNABERT_S.pt", ids[:3], random_block(3, 768, 3))
    write_esm(inputs / "small_ESM.pt", ids[:3], random_block(3, 16, 4))
    out = tmp_path / "merged"
    with small_file_system(out, "1m"):  # the big pair needs about 6.3 MB
        one = main(["merge", str(inputs / "big_DNABERT_S.pt"), str(inputs / "big_ESM.pt"), "-o",
                    str(out / "big_merged.pt")])  # fmt: skip
        assert one == EXIT_FAILURES
        assert leftovers(out) == []
        assert main(["merge", str(inputs), "-o", str(out)]) == EXIT_FAILURES
        assert [p.name for p in out.glob("*_merged.pt")] == ["small_merged.pt"]
        assert leftovers(out) == []


@pytest.mark.e2e
def test_splitting_onto_a_full_disk_stops_with_disk_full_and_no_temporary(
    tiny_checkpoint, tmp_path
):
    big = write_fasta(tmp_path / "big.fa", random_proteins(3000, 50, 60, seed=3))
    out = tmp_path / "out"
    with small_file_system(out, "64k"):
        command = cli_command(big, out, tiny_checkpoint, "--device", "cpu", "--split-every", "1000")
        result = run_cli(*command, "--failure-log", str(tmp_path / "failures.log"))
        assert result.returncode == EXIT_FAILURES, result.stderr
        assert "disk full" in result.stderr and "output_1.fa" in result.stderr
        assert leftovers(out) == []


# ------------------------------------------------------------ ENOSPC injected in process


class _FullDiskFile(io.FileIO):
    """A file on a disk with `room` bytes left: later writes fail with ENOSPC."""

    room = 1000

    def write(self, data):
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = super().write(bytes(data[: self.room]))
        self.room -= written
        return written


@pytest.fixture
def full_disk_for(monkeypatch):
    """Make temporaries of outputs named in the returned set land on a full disk."""
    names: set[str] = set()
    create = store_module._create_temporary

    def create_on_full_disk(path):
        if path.name not in names:
            return create(path)
        return io.BufferedWriter(_FullDiskFile(temporary_path(path, uuid.uuid4().hex[:8]), "xb"))

    monkeypatch.setattr(store_module, "_create_temporary", create_on_full_disk)
    return names


def test_torch_save_on_a_full_disk_raises_disk_full_and_removes_its_temporary(
    full_disk_for, tmp_path
):
    output = tmp_path / "x_ESM.pt"
    full_disk_for.add(output.name)
    with pytest.raises(DiskFullError, match="disk full") as raised:
        save_embeddings_atomic(output, ["a"] * 50, [torch.ones(32)] * 50)
    assert isinstance(raised.value, OSError) and raised.value.errno == errno.ENOSPC
    assert str(output) in str(raised.value)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DiskFullError):  # plain writes (manifests, parts) say so too
        atomic_write(output, lambda handle: handle.write(b"x" * 5000))


def test_an_output_that_does_not_fit_fails_alone_in_process(full_disk_for, tiny_model, tmp_path):
    inputs = [
        write_fasta(tmp_path / f"{name}.fa", random_proteins(60, 10, 20, seed=i))
        for i, name in enumerate("pqr")
    ]
    out, log = tmp_path / "out", tmp_path / "failures.log"
    full_disk_for.add("q_ESM.pt")
    summary = extract_files(inputs, out, model=tiny_model, failure_log=log, show_progress=False)
    assert [r.status for r in summary.results] == ["written", "failed", "written"]
    assert "disk full" in summary.results[1].message
    assert "disk full" in log.read_text() and "write_error" in log.read_text()
    assert sorted(p.name for p in out.iterdir()) == [
        "p_ESM.pt",
        "p_ESM.pt.json",
        "r_ESM.pt",
        "r_ESM.pt.json",
    ]


def _fail_writes_to(monkeypatch, suffix):
    """os.write into a file whose name ends with `suffix` fails with ENOSPC."""
    write = os.write

    def write_unless_full(descriptor, data):
        if os.readlink(f"/proc/self/fd/{descriptor}").endswith(suffix):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(descriptor, data)

    monkeypatch.setattr(os, "write", write_unless_full)


def test_a_lock_that_cannot_be_written_is_removed_and_named(monkeypatch, tiny_model, tmp_path):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(3, 10, 20))
    out, log = tmp_path / "out", tmp_path / "failures.log"
    _fail_writes_to(monkeypatch, ".lock")
    summary = extract_files([fasta], out, model=tiny_model, failure_log=log, show_progress=False)
    (result,) = summary.results
    assert result.status == "failed" and "disk full" in result.message
    assert "cannot read" not in result.message
    assert not os.path.lexists(lock_path(out / "p_ESM.pt"))
    monkeypatch.undo()
    assert extract_files([fasta], out, model=tiny_model, show_progress=False).ok


def test_a_full_disk_under_the_failure_log_is_reported_as_disk_full(
    monkeypatch, tiny_model, tmp_path
):
    fasta = tmp_path / "p.fa"
    fasta.write_text(">ok\nMKTL\n>bad\nMK1\n")
    _fail_writes_to(monkeypatch, "failures.log")
    summary = extract_files(
        [fasta],
        tmp_path / "out",
        model=tiny_model,
        failure_log=tmp_path / "failures.log",
        show_progress=False,
    )
    assert summary.records_failed == 1
    assert "disk full" in summary.failure_log_problem
