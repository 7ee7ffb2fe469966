"""Offline nodes: a hub model ID without network fails at once in one line saying what to
do, a cached one loads from the cache (its commit in the manifest), and a relative folder
given from the wrong place is reported as a missing folder, not a hub problem."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import write_fasta

from fastesm_extract.cli.main import main

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CLI = str(Path(sys.executable).parent / "fastesm-extract")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the socket is: connections refused


def environment(tmp_path: Path, how: str) -> dict[str, str]:
    """No hub: HF_HUB_OFFLINE=1, or a hub endpoint that refuses connections (no network)."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env.update(HF_HOME=str(tmp_path / "hf_home"), OMP_NUM_THREADS="1")
    if how == "HF_HUB_OFFLINE":
        env["HF_HUB_OFFLINE"] = "1"
    else:
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{closed_port()}"
    return env


def extract(tmp_path: Path, env: dict[str, str], model: str, *extra: str):
    fasta = write_fasta(tmp_path / "p.fa", [("a", "MKTAYIAKQR"), ("b", "MKLLV")])
    started = time.monotonic()
    done = subprocess.run(
        [
            CLI,
            "extract",
            str(fasta),
            "-o",
            str(tmp_path / "out"),
            "--model",
            model,
            "--device",
            "cpu",
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    return done, time.monotonic() - started


@pytest.mark.e2e
@pytest.mark.parametrize("how", ["HF_HUB_OFFLINE", "no_network"])
def test_an_uncached_hub_model_offline_fails_in_one_line_within_seconds(tmp_path, how):
    done, seconds = extract(tmp_path, environment(tmp_path, how), "Synthyra/FastESM2_650")

    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert seconds < 10
    line = lines[0]
    assert line.startswith("fastesm-extract: error: cannot load model 'Synthyra/FastESM2_650'")
    assert "`hf download Synthyra/FastESM2_650`" in line and "huggingface-cli" not in line
    assert "not in the local Hugging Face cache" in line and ".." not in line
    if how == "HF_HUB_OFFLINE":
        assert "HF_HUB_OFFLINE=1 is set" in line
    else:
        assert "cannot be reached" in line
    assert not list(tmp_path.rglob("*_ESM.pt"))


@pytest.mark.parametrize("how", ["HF_HUB_OFFLINE", "no_network"])
def test_a_relative_folder_from_the_wrong_place_says_no_such_folder(
    tmp_path, how, monkeypatch, capsys
):
    from huggingface_hub import constants

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_home" / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", how == "HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    fasta = write_fasta(tmp_path / "p.fa", [("a", "MKTAYIAKQR")])
    started = time.monotonic()

    code = main(["extract", str(fasta), "--model", "demo/checkpoint", "--device", "cpu"])

    assert code == 2 and time.monotonic() - started < 10
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"no such folder (no local folder {tmp_path / 'demo' / 'checkpoint'};" in lines[0]
    assert "not in the local Hugging Face cache" in lines[0]  # both readings said
    assert ("HF_HUB_OFFLINE=1 is set" if how == "HF_HUB_OFFLINE" else "cannot be reached") in lines[
        0
    ]


def cache_model(tiny_checkpoint: Path, hf_home: Path, repo: str) -> None:
    """`repo` in the hub cache layout, as `hf download` leaves it: a snapshot and refs/main."""
    root = hf_home / "hub" / ("models--" + repo.replace("/", "--"))
    shutil.copytree(tiny_checkpoint, root / "snapshots" / COMMIT)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(COMMIT)


@pytest.mark.e2e
def test_a_cached_hub_model_loads_without_network_pinned_and_its_commit_is_in_the_manifest(
    tiny_checkpoint, tmp_path
):
    env = environment(tmp_path, "no_network")  # HF_HUB_OFFLINE unset, the hub unreachable
    cache_model(tiny_checkpoint, tmp_path / "hf_home", "someone/tiny-esm")

    done, _ = extract(tmp_path, env, "someone/tiny-esm", "-q", "--revision", COMMIT)

    assert done.returncode == 0, done.stderr
    assert "Retrying" not in done.stderr  # loaded from the cache, no retries
    manifest = json.loads((tmp_path / "out" / "p_ESM.pt.json").read_text())
    assert manifest["model"]["id"] == "someone/tiny-esm"
    assert manifest["model"]["revision"] == COMMIT
    assert manifest["model"]["commit_hash"] == COMMIT
