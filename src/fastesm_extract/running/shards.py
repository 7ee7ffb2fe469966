"""Deterministic shares of the files across nodes: `--shard K/N`, Slurm job arrays, torchrun.

Every share is computed from the same sorted list, so all shards together cover every file
exactly once, and an output is bitwise the same whichever shard computed it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from fastesm_extract.errors import InputError
from fastesm_extract.results import FileJob


@dataclass(frozen=True)
class Shard:
    """This process's share of the files: every `count`-th file from `index` (0-based)."""

    index: int
    count: int
    source: str  # where it came from, for the log: "--shard", "SLURM", "torchrun"
    local_rank: int | None = None  # torchrun: this rank's GPU on its node

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise InputError(
                f"shard index {self.index} of {self.count} ({self.source}): need 0 <= index < count"
            )


def parse_shard(text: str) -> Shard:
    """`"K/N"` with 1 <= K <= N (1-based, as people count array tasks) -> Shard(K-1, N)."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError as error:
        raise InputError(f"--shard {text!r}: expected K/N, e.g. 1/4") from error
    if not 1 <= k <= n:
        raise InputError(f"--shard {text!r}: need 1 <= K <= N")
    return Shard(k - 1, n, "--shard")


_SLURM_HINT = (
    "submit with sbatch --array (which sets SLURM_ARRAY_TASK_ID/COUNT/MIN), unset them, "
    "or give --shard K/N"
)
_TORCHRUN_HINT = (
    "launch with torchrun (which sets RANK, WORLD_SIZE and LOCAL_RANK), unset them, "
    "or give --shard K/N"
)


def _env_int(env, name: str, hint: str, default: int | None = None) -> int | None:
    """The integer in environment variable `name` (`default` when unset); InputError if not."""
    if name not in env:
        return default
    try:
        return int(env[name])
    except ValueError:
        raise InputError(f"{name}={env[name]!r} is not an integer: {hint}") from None


def shard_from_environment(environ: dict | None = None) -> Shard | None:
    """The shard a Slurm job array task or a torchrun rank implies, if any.

    Checked like `--shard`: values that are not a valid share raise `InputError` naming the
    variable and what to set, never a silent empty or wrong share.
    """
    env = os.environ if environ is None else environ
    task = _env_int(env, "SLURM_ARRAY_TASK_ID", _SLURM_HINT)
    if task is not None and "SLURM_ARRAY_TASK_COUNT" in env:
        first = _env_int(env, "SLURM_ARRAY_TASK_MIN", _SLURM_HINT, default=0)
        count = _env_int(env, "SLURM_ARRAY_TASK_COUNT", _SLURM_HINT)
        last = _env_int(env, "SLURM_ARRAY_TASK_MAX", _SLURM_HINT, default=first + count - 1)
        step = _env_int(env, "SLURM_ARRAY_TASK_STEP", _SLURM_HINT, default=1)
        if count >= 1 and (step != 1 or last - first + 1 != count):
            # --array=1,3,5 or 0-6:2: task IDs have gaps, so some shards would have no task.
            raise InputError(
                f"Slurm array task {task}: the array's {count} task IDs ({first} to {last}, "
                f"step {step}) are not consecutive; submit --array={first}-{first + count - 1} "
                "(add %M to run at most M at once), resubmit the whole array to redo some "
                "tasks (finished outputs are skipped), or give --shard K/N"
            )
        index = task - first
        if count < 1 or not 0 <= index < count:
            raise InputError(
                f"SLURM_ARRAY_TASK_ID {task} is outside an array of "
                f"{count} tasks starting at {first}: use --array=0-{max(count, 1) - 1} or "
                f"1-{max(count, 1)} with a step of 1, or give --shard K/N"
            )
        return Shard(index, count, "SLURM")
    if "RANK" in env and "WORLD_SIZE" in env:
        rank = _env_int(env, "RANK", _TORCHRUN_HINT)
        world_size = _env_int(env, "WORLD_SIZE", _TORCHRUN_HINT)
        local_rank = _env_int(env, "LOCAL_RANK", _TORCHRUN_HINT)
        if world_size < 1:
            raise InputError(f"WORLD_SIZE={world_size} must be at least 1: {_TORCHRUN_HINT}")
        if not 0 <= rank < world_size:
            raise InputError(
                f"RANK={rank} with WORLD_SIZE={world_size}: need 0 <= RANK < WORLD_SIZE; "
                + _TORCHRUN_HINT
            )
        if local_rank is not None and local_rank < 0:
            raise InputError(f"LOCAL_RANK={local_rank} must be 0 or more: {_TORCHRUN_HINT}")
        return Shard(rank, world_size, "torchrun", local_rank)
    return None


def shard_jobs(jobs: list[FileJob], shard: Shard) -> list[FileJob]:
    """Deterministic: jobs sorted by output path, then every `count`-th from `index`.

    Every shard computes the same order from the same inputs, so all shards together cover
    every file exactly once.
    """
    ordered = sorted(jobs, key=lambda job: str(job.output))
    return ordered[shard.index :: shard.count]
