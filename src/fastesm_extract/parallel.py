"""Scale-out: one worker process per device on a node, and deterministic shards across nodes.

Files are the unit of work everywhere, and batches never mix files, so an output is bitwise
the same whichever worker, shard or node computed it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from .failures import WHOLE_FILE, FailureLog, RecordFailure
from .jobs import FileJob, InputError
from .manifest import ManifestError, is_complete, read_manifest, sha256_of
from .model import ModelLoadError, load_model
from .pipeline import ExtractionSettings, Extractor
from .progress import RunProgress
from .signals import Terminated
from .store import OutputError, load_embeddings
from .summary import FAILED, WRITTEN, FileResult, RunSummary

log = logging.getLogger("fastesm_extract")


# ---------------------------------------------------------------- shards (many nodes)


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


def device_for_shard(device: str, shard: Shard | None) -> str:
    """torchrun starts one rank per GPU of a node: the default "cuda" becomes the rank's
    `cuda:LOCAL_RANK`; any other device is kept as asked."""
    if shard is not None and shard.local_rank is not None and device == "cuda":
        return f"cuda:{shard.local_rank}"
    return device


def shard_jobs(jobs: list[FileJob], shard: Shard) -> list[FileJob]:
    """Deterministic: jobs sorted by output path, then every `count`-th from `index`.

    Every shard computes the same order from the same inputs, so all shards together cover
    every file exactly once.
    """
    ordered = sorted(jobs, key=lambda job: str(job.output))
    return ordered[shard.index :: shard.count]


# ------------------------------------------------------------ devices (one node, many GPUs)


def parse_devices(text: str) -> list[str]:
    """`"all"` (every visible GPU) or a comma list such as `"cuda:0,cuda:1"` / `"cpu,cpu"`."""
    if text.strip() == "all":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ModelLoadError("--devices all: no CUDA device is visible")
        return [f"cuda:{index}" for index in range(count)]
    devices = [part.strip() for part in text.split(",") if part.strip()]
    if not devices:
        raise InputError("--devices: give e.g. cuda:0,cuda:1 or all")
    return check_devices(devices)


def check_devices(devices: list[str]) -> list[str]:
    """`devices` unchanged when each names a CUDA device or the CPU; InputError otherwise."""
    for device in devices:
        try:
            kind = torch.device(device).type
        except (RuntimeError, TypeError):
            kind = None
        if kind not in ("cuda", "cpu"):
            raise InputError(
                f"unknown device {device!r} in the device list: use cuda, cuda:N or cpu, "
                "e.g. --devices cuda:0,cuda:1"
            )
    return devices


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs to load its own model and run (picklable)."""

    model_id: str
    revision: str | None
    dtype: str | None
    settings: ExtractionSettings
    failure_log: Path
    cpu_threads: int | None


class _QueueProgress:
    """Progress sink of a worker: forwards sequence counts and file results to the parent."""

    def __init__(self, events, worker: int) -> None:
        self.events, self.worker = events, worker
        self._unsent, self._last = 0, time.monotonic()

    def sequences(self, count: int) -> None:
        self._unsent += count
        if time.monotonic() - self._last > 0.25:  # batch the messages, not one per batch
            self.flush()

    def flush(self) -> None:
        if self._unsent:
            self.events.put(("sequences", self.worker, self._unsent))
        self._unsent, self._last = 0, time.monotonic()

    def file_done(self, result: FileResult) -> None:
        self.flush()
        self.events.put(("done", self.worker, result))

    def close(self) -> None:
        self.flush()


def _jobs_from(tasks, events, worker: int) -> Iterator[FileJob]:
    """Take jobs from the shared queue until the sentinel, telling the parent each one."""
    while (job := tasks.get()) is not None:
        events.put(("took", worker, job))
        yield job


def _stop_worker(signum: int, frame: object) -> None:
    # Once: a second signal (the parent passes SIGTERM on after Ctrl-C) must not cut short
    # the cleanup the first one started. (A no-op handler, not SIG_IGN: a signal already
    # pending would otherwise raise "ignored due to race condition".)
    signal.signal(signal.SIGTERM, _ignore)
    signal.signal(signal.SIGINT, _ignore)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _ignore(signum: int, frame: object) -> None:
    pass


def _worker_main(worker: int, device: str, spec: WorkerSpec, tasks, events) -> None:
    """A worker process: load the model once on `device`, then take files until none are left.

    SIGTERM (from the parent, or from Slurm to every process) and Ctrl-C end it quietly
    after the writes in progress: the parent prints the one message.
    """
    signal.signal(signal.SIGTERM, _stop_worker)
    signal.signal(signal.SIGINT, _stop_worker)
    try:
        _work(worker, device, spec, tasks, events)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: Extractor.run has cleaned up
        events.cancel_join_thread()  # the parent may no longer read: do not wait on it


def _work(worker: int, device: str, spec: WorkerSpec, tasks, events) -> None:
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s [{device}] %(message)s")
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the parent shows the one progress bar
    if spec.cpu_threads:
        torch.set_num_threads(spec.cpu_threads)
    try:
        loaded = load_model(spec.model_id, revision=spec.revision, device=device, dtype=spec.dtype)
    except ModelLoadError as error:
        events.put(("fatal", worker, f"{device}: {error}"))
        return
    events.put(("ready", worker, device))
    progress = _QueueProgress(events, worker)
    extractor = Extractor(loaded, spec.settings, FailureLog(spec.failure_log), False)
    summary = extractor.run(_jobs_from(tasks, events, worker), progress)
    progress.close()
    if summary.stopped:  # this device failed: its worker stops, the others go on
        events.put(("stopped", worker, f"{device}: {summary.stopped}"))
    events.put(("exit", worker, extractor.failure_log.problem))


def run_on_devices(
    jobs: list[FileJob], devices: list[str], spec: WorkerSpec, show_progress: bool = True
) -> RunSummary:
    """Run `jobs` with one spawned worker per device; files are handed out largest first.

    A worker that dies loses only the files it was working on: they are reported as failed
    (and redone by the next run, since they have no valid output); the others go on.
    """
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")  # CUDA cannot be used after fork
    tasks, events = context.Queue(), context.Queue()
    for job in sorted(jobs, key=_input_size, reverse=True):
        tasks.put(job)
    for _ in devices:
        tasks.put(None)
    workers = [
        context.Process(target=_worker_main, args=(i, device, spec, tasks, events), daemon=True)
        for i, device in enumerate(devices)
    ]
    for process in workers:
        process.start()
    summary = RunSummary(failure_log=spec.failure_log, accept_invalid=spec.settings.accept_invalid)
    progress = RunProgress(len(jobs), enabled=show_progress)
    in_flight: dict[int, dict[Path, FileJob]] = {i: {} for i in range(len(workers))}
    finished: set[int] = set()
    fatal: list[str] = []
    try:
        while len(finished) < len(workers):
            try:
                kind, worker, payload = events.get(timeout=0.5)
            except queue.Empty:
                for i, process in enumerate(workers):
                    if i not in finished and not process.is_alive() and events.empty():
                        finished.add(i)
                        summary.results += _lost_files(in_flight[i], process.exitcode, spec)
                continue
            if kind == "took":
                in_flight[worker][payload.output] = payload
            elif kind == "sequences":
                progress.sequences(payload)
            elif kind == "done":
                in_flight[worker].pop(payload.job.output, None)
                summary.results.append(payload)
                progress.file_done(payload)
            elif kind == "ready":
                log.info("worker %d ready on %s", worker, payload)
            elif kind == "fatal":
                fatal.append(payload)
                finished.add(worker)
            elif kind == "stopped":
                log.error("worker %d stopped: %s", worker, payload)
                summary.stopped = "; ".join(filter(None, [summary.stopped, payload]))
            elif kind == "exit":
                finished.add(worker)
                # Files a stopped worker had taken but not begun (read ahead): not done.
                summary.results += [
                    FileResult(job, FAILED, message="not begun: its worker's device failed; rerun")
                    for job in in_flight[worker].values()
                ]
                in_flight[worker].clear()
                summary.failure_log_problem = payload or summary.failure_log_problem
    except KeyboardInterrupt:
        # Ctrl-C reaches the workers too; SIGTERM may reach only this process: pass it on
        # and give them time to finish their writes and remove their locks.
        tasks.cancel_join_thread()  # files nobody will take: do not wait to flush them
        for process in workers:
            if process.is_alive():
                process.terminate()
        for process in workers:
            process.join(timeout=60)
        raise
    finally:
        progress.close()
        for process in workers:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
    if fatal and len(fatal) == len(workers):
        raise ModelLoadError("no worker could load the model: " + "; ".join(fatal))
    for message in fatal:
        log.error("worker failed to start: %s", message)
    done = {result.job.output for result in summary.results}
    for job in jobs:
        if job.output not in done:  # left in the queue when every worker had stopped
            summary.results.append(
                FileResult(job, FAILED, message="not processed: no worker left; rerun")
            )
    summary.seconds = time.perf_counter() - started
    return summary


def _input_size(job: FileJob) -> int:
    try:
        return job.fasta.stat().st_size
    except OSError:
        return 0


def _finished_before_death(job: FileJob) -> bool:
    """True when a dead worker completed `job` (output and its manifest for this very input)
    but died before it could say so."""
    try:
        manifest = read_manifest(job.output)
    except ManifestError:
        return False
    if manifest is None or not is_complete(manifest) or not job.output.exists():
        return False
    try:
        load_embeddings(job.output)
        return manifest.get("input", {}).get("sha256") == sha256_of(job.fasta)
    except (OutputError, OSError):
        return False


def _lost_files(
    jobs: dict[Path, FileJob], exitcode: int | None, spec: WorkerSpec
) -> list[FileResult]:
    """Files a dead worker had taken: reported as failed, to be redone by the next run."""
    message = f"worker process died (exit code {exitcode}); rerun to redo this file"
    failure_log = FailureLog(spec.failure_log)
    results = []
    for job in jobs.values():
        if _finished_before_death(job):
            results.append(FileResult(job, WRITTEN, message="written before its worker died"))
            continue
        log.error("%s: %s", job.fasta, message)
        failure_log.record(job.fasta, RecordFailure(WHOLE_FILE, "worker_died", message))
        results.append(FileResult(job, FAILED, message=message))
    return results
