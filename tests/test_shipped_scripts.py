"""The Slurm array script ships as a file (workflow/extract_array.sbatch, which the Slurm
tests submit as it is); docs/cluster.md shows that file word for word, and README points to it."""

import subprocess
from pathlib import Path

from cluster_helpers import readme_block

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "workflow" / "extract_array.sbatch"


def test_the_documented_array_script_is_the_shipped_file():
    assert readme_block("#SBATCH --array") == SCRIPT.read_text()
    assert SCRIPT.stat().st_mode & 0o111  # executable, as a shell script


def test_the_shipped_script_adds_redo_stale_only_when_asked(tmp_path):
    fake = tmp_path / "fastesm-extract"  # prints the arguments the script passes
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "PROTEINS": "p", "ESM_OUT": "o", "MODEL": "m"}

    def arguments(**extra: str) -> list[str]:
        done = subprocess.run(
            ["bash", str(SCRIPT)], env={**env, **extra}, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    plain = ["extract", "p", "-o", "o", "--model", "m", "--device", "cuda"]
    plain += ["--toks-per-batch", "8192"]
    assert arguments() == plain
    assert arguments(REDO_STALE="1") == [*plain, "--redo-stale"]
    readme = (ROOT / "README.md").read_text()
    assert "sbatch --array=1-8 workflow/extract_array.sbatch" in readme
    assert "fastesm_array.sbatch" not in readme + (ROOT / "docs" / "cluster.md").read_text()
