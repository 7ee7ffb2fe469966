"""Offline nodes: a hub model ID without network fails at once in one line saying what to
do, a cached one loads from the cache (its commit in the manifest), and a relative folder
given from the wrong place is reported as a missing folder, not a hub problem.

"At once" is asserted by its mechanism, never by the clock: Python's audit hooks record every
socket connection attempted and every `time.sleep` (a retry's back-off), in the CLI's process
too. With HF_HUB_OFFLINE no connection is attempted; without network, one (the probe)."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import write_fasta

from fastesm_extract.cli.main import main

COMMIT = "0123456789abcdef0123456789abcdef01234567"

# The CLI, with audit hooks writing each connection attempt and sleep to $NETWORK_RECORD.
RECORDING_CLI = """
import os, sys
record = open(os.environ["NETWORK_RECORD"], "a", buffering=1)
def hook(event, args):
    if event == "socket.connect":
        record.write(f"connect {args[1]!r}\\n")
    elif event == "time.sleep":
        record.write(f"sleep {args[0]}\\n")
sys.addaudithook(hook)
from fastesm_extract.cli.main import main
sys.exit(main(sys.argv[1:]))
"""

_recorded: list[str] | None = None  # in-process recording, while a test sets it to a list


def _record(event: str, args: tuple) -> None:
    if _recorded is not None and event in ("socket.connect", "time.sleep"):
        _recorded.append(
            f"connect {args[1]!r}" if event == "socket.connect" else f"sleep {args[0]}"
        )


sys.addaudithook(_record)  # audit hooks cannot be removed: it records only when asked


def recorded(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def assert_no_retry(events: list[str], how: str, port: int | None) -> None:
    """No back-off sleep; no connection offline; one probe of the endpoint without network."""
    assert [e for e in events if e.startswith("sleep")] == []
    connects = [e for e in events if e.startswith("connect")]
    if how == "HF_HUB_OFFLINE":
        assert connects == []
    else:
        assert connects == [f"connect {('127.0.0.1', port)!r}"]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the socket is: connections refused


def environment(tmp_path: Path, how: str) -> dict[str, str]:
    """No hub: HF_HUB_OFFLINE=1, or a hub endpoint that refuses connections (no network)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
        and k.lower() not in ("https_proxy", "http_proxy", "all_proxy")
    }
    env.update(HF_HOME=str(tmp_path / "hf_home"), OMP_NUM_THREADS="1")
    env["NETWORK_RECORD"] = str(tmp_path / "network.txt")
    if how == "HF_HUB_OFFLINE":
        env["HF_HUB_OFFLINE"] = "1"
    else:
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{closed_port()}"
    return env


def extract(tmp_path: Path, env: dict[str, str], model: str, *extra: str):
    fasta = write_fasta(tmp_path / "p.fa", [("a", "MKTAYIAKQR"), ("b", "MKLLV")])
    return subprocess.run(
        [
            sys.executable,
            "-c",
            RECORDING_CLI,
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


@pytest.mark.e2e
@pytest.mark.parametrize("how", ["HF_HUB_OFFLINE", "no_network"])
def test_an_uncached_hub_model_offline_fails_in_one_line_without_retrying(tmp_path, how):
    env = environment(tmp_path, how)
    done = extract(tmp_path, env, "Synthyra/FastESM2_650")

    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    port = int(env["HF_ENDPOINT"].rsplit(":", 1)[1]) if "HF_ENDPOINT" in env else None
    assert_no_retry(recorded(tmp_path / "network.txt"), how, port)
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
    port = closed_port()
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    fasta = write_fasta(tmp_path / "p.fa", [("a", "MKTAYIAKQR")])
    global _recorded
    _recorded = events = []
    try:
        code = main(["extract", str(fasta), "--model", "demo/checkpoint", "--device", "cpu"])
    finally:
        _recorded = None

    assert code == 2
    assert_no_retry(events, how, port)
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

    done = extract(tmp_path, env, "someone/tiny-esm", "-q", "--revision", COMMIT)

    assert done.returncode == 0, done.stderr
    assert "Retrying" not in done.stderr  # loaded from the cache, no retries
    manifest = json.loads((tmp_path / "out" / "p_ESM.pt.json").read_text())
    assert manifest["model"]["id"] == "someone/tiny-esm"
    assert manifest["model"]["revision"] == COMMIT
    assert manifest["model"]["commit_hash"] == COMMIT
