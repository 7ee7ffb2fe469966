"""The machine a benchmark ran on, as a record: CPU, GPU, versions, source commit, date."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import torch
import transformers

import fastesm_extract

REPO_ROOT = Path(__file__).resolve().parent.parent


def cpu_model_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def source_version() -> str:
    """The commit benchmarked (first call: `main` makes it at start, when src/ is imported),
    and whether src/ had uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "git commit unknown"
    return f"git {commit}" + (" + uncommitted src changes" if dirty else "")


def environment(device: torch.device | None = None) -> dict:
    """Everything a reader needs to place a figure: when, on what, with which versions."""
    env = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model_name(),
        "cpu_cores": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "package": fastesm_extract.__version__,
        "source": source_version(),
    }
    if device is not None and device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env |= {
            "gpu": props.name,
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
            "capability": f"{props.major}.{props.minor}",
            "cudnn": torch.backends.cudnn.version(),
            "nvidia_smi": nvidia_smi(),
        }
    return env


def nvidia_smi() -> str:
    """Driver, clocks, power limit and temperature as nvidia-smi reports them (read only)."""
    query = "driver_version,clocks.sm,clocks.max.sm,power.limit,temperature.gpu"
    try:
        return subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unavailable"


def machine_line(env: dict) -> str:
    parts = [
        f"CPU {env['cpu']}, {env['cpu_cores']} logical cores",
        f"torch {env['torch']}",
        f"transformers {env['transformers']}",
        f"Python {env['python']}",
        f"fastesm-extract {env['package']} ({env['source']})",
    ]
    if "gpu" in env:
        parts.insert(1, f"GPU {env['gpu']} (CUDA {env['cuda']})")
    return "; ".join(parts)
