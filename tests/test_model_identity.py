"""A model is known by what decides its numbers, not by its name (issue 26 item 1).

A local checkpoint folder is its files' fingerprint: the same relative `--model` run from
another folder, a switched symlink, weights or vocabulary replaced in place are another
model (stale: kept, exit 1); an identical copy elsewhere is the same model (current). A
module given in memory is its parameters: changed in place, its old outputs are stale.
"""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest
import torch
from helpers import random_proteins, says, write_fasta

from fastesm_extract import extract_fast_esm
from fastesm_extract.cli.main import main
from fastesm_extract.demo import build_demo_checkpoint
from fastesm_extract.errors import EXIT_FAILURES, EXIT_OK, ExtractError
from fastesm_extract.model.identity import folder_fingerprint, module_fingerprint

SMALL = dict(num_layers=1, hidden_size=16, num_heads=2)


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    """Two checkpoints of one config and other weights (seeds 1 and 2)."""
    root = tmp_path_factory.mktemp("checkpoints")
    return (
        build_demo_checkpoint(root / "v1", seed=1, **SMALL),
        build_demo_checkpoint(root / "v2", seed=2, **SMALL),
    )


@pytest.fixture
def proteins(tmp_path):
    (tmp_path / "in").mkdir()
    return write_fasta(tmp_path / "in" / "p.fa", random_proteins(5, 5, 30, seed=3))


def extract(proteins, out, model, *extra) -> int:
    return main(
        [
            "extract",
            str(proteins),
            "-o",
            str(out),
            "--model",
            str(model),
            "--device",
            "cpu",
            "--quiet",
            *extra,
        ]
    )


def test_the_same_relative_name_in_another_folder_is_another_model(
    tmp_path, proteins, two_checkpoints, monkeypatch, capsys
):
    for where, checkpoint in zip(("a", "b"), two_checkpoints):
        shutil.copytree(checkpoint, tmp_path / where / "ckpt")
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path / "a")
    assert extract(proteins, out, "ckpt") == EXIT_OK
    before = (out / "p_ESM.pt").read_bytes()
    monkeypatch.chdir(tmp_path / "b")
    capsys.readouterr()
    assert extract(proteins, out, "ckpt") == EXIT_FAILURES
    err = capsys.readouterr().err
    assert "model files differ" in err and says(err, "1 stale")
    assert (out / "p_ESM.pt").read_bytes() == before  # kept, never destroyed silently


def test_a_switched_symlink_is_another_model(tmp_path, proteins, two_checkpoints, capsys):
    link, out = tmp_path / "current", tmp_path / "out"
    link.symlink_to(two_checkpoints[0])
    assert extract(proteins, out, link) == EXIT_OK
    link.unlink()
    link.symlink_to(two_checkpoints[1])
    capsys.readouterr()
    assert extract(proteins, out, link) == EXIT_FAILURES
    assert "model files differ" in capsys.readouterr().err
    assert extract(proteins, out, link, "--redo-stale") == EXIT_OK


@pytest.mark.parametrize("change", ["weights", "vocabulary"])
def test_files_replaced_in_place_make_outputs_stale(
    tmp_path, proteins, two_checkpoints, change, capsys
):
    checkpoint, out = tmp_path / "ckpt", tmp_path / "out"
    shutil.copytree(two_checkpoints[0], checkpoint)
    assert extract(proteins, out, checkpoint) == EXIT_OK
    if change == "weights":  # another checkpoint's weights, same config
        shutil.copyfile(two_checkpoints[1] / "model.safetensors", checkpoint / "model.safetensors")
    else:  # two lines of the vocabulary swapped
        lines = (checkpoint / "vocab.txt").read_text().splitlines()
        lines[5], lines[6] = lines[6], lines[5]
        (checkpoint / "vocab.txt").write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert extract(proteins, out, checkpoint) == EXIT_FAILURES
    assert "model files differ" in capsys.readouterr().err


def test_an_identical_copy_elsewhere_is_the_same_model(tmp_path, proteins, two_checkpoints, capsys):
    out = tmp_path / "out"
    assert extract(proteins, out, two_checkpoints[0]) == EXIT_OK
    before = (out / "p_ESM.pt").read_bytes()
    mirror = tmp_path / "mirror" / "other-name"
    shutil.copytree(two_checkpoints[0], mirror)
    capsys.readouterr()
    assert extract(proteins, out, mirror) == EXIT_OK
    assert says(capsys.readouterr().err, "1 skipped")
    assert (out / "p_ESM.pt").read_bytes() == before


def test_a_folder_fingerprint_is_its_files_and_is_cached_by_stat(tmp_path, two_checkpoints):
    checkpoint = tmp_path / "ckpt"
    shutil.copytree(two_checkpoints[0], checkpoint)
    first = folder_fingerprint(checkpoint)
    assert folder_fingerprint(two_checkpoints[0]) == first  # the same files anywhere
    (checkpoint / "README.md").write_text("notes do not change any number\n")
    assert folder_fingerprint(checkpoint) == first
    # Content changed with size and mtime restored: the ctime (stat identity) still tells.
    weights = checkpoint / "model.safetensors"
    stats, data = weights.stat(), bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stats.st_atime_ns, stats.st_mtime_ns))
    assert weights.stat().st_size == stats.st_size
    assert folder_fingerprint(checkpoint) != first
    # The per-file hashes are remembered by stat identity, with hashlib's values.
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    remembered = open(os.path.join(cache, "fastesm-extract", "file-hashes.json")).read()
    assert hashlib.sha256(weights.read_bytes()).hexdigest() in remembered


def test_a_module_changed_in_memory_is_another_model(tmp_path, proteins, two_checkpoints):
    from fastesm_extract import load_model

    loaded = load_model(str(two_checkpoints[0]), device="cpu")
    module = loaded.model
    out = tmp_path / "p_ESM.pt"
    ids, first = extract_fast_esm(proteins, out, model=module, device="cpu")
    fingerprint = module_fingerprint(module)
    assert module_fingerprint(module) == fingerprint  # cached while unchanged
    with torch.no_grad():
        next(module.parameters()).add_(0.5)  # changed in place
    assert module_fingerprint(module) != fingerprint
    with pytest.raises(ExtractError, match="redo_stale=True"):
        extract_fast_esm(proteins, out, model=module, device="cpu")
    ids2, again = extract_fast_esm(proteins, out, model=module, device="cpu", redo_stale=True)
    assert ids2 == ids
    assert not all(torch.equal(a, b) for a, b in zip(first, again))
    stored = torch.load(out, weights_only=True)
    assert all(torch.equal(a, b) for a, b in zip(stored["data"], again))


def test_rates_belong_to_the_checkpoint_not_the_spelling_of_its_path(
    tmp_path, proteins, two_checkpoints, monkeypatch, capsys
):
    """A relative and an absolute path to one checkpoint share a measured rate; another
    checkpoint under the same relative name does not (issue 27 item 8)."""
    monkeypatch.setenv("FASTESM_EXTRACT_CACHE", str(tmp_path / "cache"))
    for where, checkpoint in zip(("a", "b"), two_checkpoints):
        shutil.copytree(checkpoint, tmp_path / where / "ckpt")
    monkeypatch.chdir(tmp_path / "a")
    assert extract(proteins, tmp_path / "out", "ckpt") == EXIT_OK  # measures a rate
    more = write_fasta(tmp_path / "in" / "q.fa", random_proteins(4, 5, 30, seed=4))

    def plan(model) -> str:
        capsys.readouterr()
        main(
            [
                "plan",
                str(more),
                "-o",
                str(tmp_path / "out"),
                "--model",
                str(model),
                "--device",
                "cpu",
            ]
        )
        return capsys.readouterr().err

    assert "time: about" in plan(tmp_path / "a" / "ckpt")  # absolute: the same checkpoint
    assert "time: about" in plan("ckpt")
    monkeypatch.chdir(tmp_path / "b")
    assert "time: unknown" in plan("ckpt")  # the same words, another checkpoint
