"""A recorded sha256 is reused only while the file's stat identity is the recorded one: any
change (edited in place, even at the same size with its mtime put back; copied or moved over;
touched) makes it hashed again. hashlib is the oracle."""

import hashlib
import os
import shutil
import time

from helpers import random_proteins, write_fasta

from fastesm_extract import extract_files
from fastesm_extract.disk.file_identity import (
    IDENTITY_FIELDS,
    recorded_sha256,
    stat_identity,
    unchanged_identity,
)
from fastesm_extract.disk.manifest import read_manifest
from fastesm_extract.disk.manifest_schema import Manifest


def _record(path) -> dict:
    """A manifest section as a run records it: size, hash, stat identity."""
    status = os.stat(path)
    return {
        "size": status.st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        **stat_identity(status),
    }


def _later() -> None:
    """Past the file system's timestamp granularity (a jiffy, at most 10 ms on Linux)."""
    time.sleep(0.05)


def test_an_unchanged_file_gives_its_recorded_hash_without_reading_it(tmp_path):
    path = tmp_path / "x.fa"
    path.write_bytes(b">a\nMKV\n")
    recorded = _record(path) | {"sha256": "recorded, not computed"}
    assert recorded_sha256(path, recorded) == "recorded, not computed"


def test_content_edited_with_the_same_size_and_mtime_put_back_is_hashed_again(tmp_path):
    path = tmp_path / "x.fa"
    path.write_bytes(b">a\nMKV\n")
    recorded = _record(path)
    status = os.stat(path)
    _later()
    path.write_bytes(b">a\nMKW\n")  # same size
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))  # mtime put back
    assert os.stat(path).st_size == recorded["size"]
    assert os.stat(path).st_mtime_ns == recorded["mtime_ns"]
    assert recorded_sha256(path, recorded) is None


def test_a_file_copied_or_moved_over_or_touched_is_hashed_again(tmp_path):
    path, twin = tmp_path / "x_ESM.pt", tmp_path / "twin"
    path.write_bytes(b"same bytes")
    recorded = _record(path)
    _later()
    twin.write_bytes(b"same bytes")
    shutil.copy2(twin, path)  # `cp -p twin x_ESM.pt`: same bytes, size and mtime
    assert recorded_sha256(path, recorded) is None
    recorded = _record(path)
    os.replace(twin, path)  # `mv twin x_ESM.pt`: another inode
    assert recorded_sha256(path, recorded) is None
    recorded = _record(path)
    _later()
    path.touch()
    assert recorded_sha256(path, recorded) is None


def test_a_manifest_without_identity_or_of_another_size_is_hashed(tmp_path):
    path = tmp_path / "x.fa"
    path.write_bytes(b">a\nMKV\n")
    recorded = _record(path)
    assert recorded_sha256(path, {"size": recorded["size"], "sha256": recorded["sha256"]}) is None
    assert recorded_sha256(path, recorded | {"size": recorded["size"] + 1}) is None
    assert recorded_sha256(path, None) is None
    assert recorded_sha256(path, recorded) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_file_that_changed_while_hashed_gets_no_identity(tmp_path):
    path = tmp_path / "x.fa"
    path.write_bytes(b">a\nMKV\n")
    before = os.stat(path)
    assert unchanged_identity(before, os.stat(path)) == stat_identity(before)
    _later()
    path.write_bytes(b">a\nMKW\n")
    assert unchanged_identity(before, os.stat(path)) == {}


def test_a_run_records_the_stat_identity_of_its_input_and_output(tiny_model, tmp_path):
    fasta = write_fasta(tmp_path / "x.fa", random_proteins(3, 5, 20, seed=1))
    extract_files([fasta], tmp_path / "out", model=tiny_model, show_progress=False)
    output = tmp_path / "out" / "x_ESM.pt"
    manifest = read_manifest(output)
    for section, path in (("input", fasta), ("output", output)):
        status = os.stat(path)
        assert {name: manifest[section][name] for name in ("size", "sha256", *IDENTITY_FIELDS)} == {
            "size": status.st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "mtime_ns": status.st_mtime_ns,
            "ctime_ns": status.st_ctime_ns,
            "inode": status.st_ino,
            "device": status.st_dev,
        }
        typed = getattr(Manifest.from_json(manifest), section)
        assert recorded_sha256(path, typed) == manifest[section]["sha256"]
