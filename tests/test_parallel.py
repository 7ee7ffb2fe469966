"""Scale-out: shards across nodes and worker processes across devices give identical outputs."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cluster_helpers import SECONDS_PER_BATCH
from helpers import (
    cli_command as cli,
)
from helpers import (
    finished_outputs as outputs,
)
from helpers import (
    random_proteins,
    says,
    subprocess_environment,
    write_fasta,
)

from fastesm_extract import extract_files, load_embeddings
from fastesm_extract.cli.main import main
from fastesm_extract.disk.manifest import is_complete, read_manifest
from fastesm_extract.errors import EXIT_USAGE, InputError
from fastesm_extract.results import FileJob
from fastesm_extract.running.config import parse_devices
from fastesm_extract.running.shards import Shard, parse_shard, shard_from_environment, shard_jobs


def make_inputs(folder: Path, files: int, records: int = 40) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for part in range(files):
        write_fasta(folder / f"output_{part}.fa", random_proteins(records, 20, 300, seed=part))
    return folder


ENV = subprocess_environment()


def test_shards_cover_every_file_exactly_once_and_deterministically():
    jobs = [FileJob(Path(f"in/{i}.fa"), Path(f"out/{i:02d}_ESM.pt")) for i in range(10)]
    shards = [shard_jobs(list(reversed(jobs)), Shard(k, 3, "test")) for k in range(3)]
    assert sorted(job.output for shard in shards for job in shard) == [j.output for j in jobs]
    assert [len(shard) for shard in shards] == [4, 3, 3]
    assert shards[1] == shard_jobs(jobs, Shard(1, 3, "test"))  # input order does not matter


def test_shard_parsing_and_environment():
    assert parse_shard("2/4") == Shard(1, 4, "--shard")
    for bad in ("0/4", "5/4", "x", "1/2/3"):
        with pytest.raises(InputError):
            parse_shard(bad)
    slurm = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}
    assert shard_from_environment(slurm) == Shard(2, 4, "SLURM")
    assert shard_from_environment(
        {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "2"}
    ) == Shard(0, 2, "SLURM")
    with pytest.raises(InputError, match="outside an array"):
        shard_from_environment({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "2"})
    torchrun = {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}
    assert shard_from_environment(torchrun) == Shard(5, 8, "torchrun", 1)
    assert shard_from_environment({}) is None


BAD_ENVIRONMENTS = [
    ({"RANK": "5", "WORLD_SIZE": "2"}, "RANK=5 with WORLD_SIZE=2.*0 <= RANK < WORLD_SIZE"),
    ({"RANK": "-1", "WORLD_SIZE": "2"}, "RANK=-1 with WORLD_SIZE=2"),
    ({"RANK": "0", "WORLD_SIZE": "0"}, "WORLD_SIZE=0 must be at least 1"),
    ({"RANK": "abc", "WORLD_SIZE": "2"}, "RANK='abc' is not an integer"),
    ({"RANK": "0", "WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not an integer"),
    ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "x"}, "LOCAL_RANK='x' is not an integer"),
    ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "-1"}, "LOCAL_RANK=-1 must be 0 or more"),
    ({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"}, "SLURM_ARRAY_TASK_ID='x'"),
    ({"SLURM_ARRAY_TASK_ID": "x"}, "SLURM_ARRAY_TASK_ID='x' is not an integer"),
    ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "n"}, "SLURM_ARRAY_TASK_COUNT='n'"),
    ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "0"}, "outside an array of 0"),
    (
        {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "?"},
        "SLURM_ARRAY_TASK_MIN='\\?'",
    ),
]


@pytest.mark.parametrize(("environment", "message"), BAD_ENVIRONMENTS)
def test_environment_shards_are_checked_like_the_shard_option(environment, message):
    with pytest.raises(InputError, match=message) as caught:
        shard_from_environment(environment)
    assert "--shard K/N" in str(caught.value)  # says what to set instead


def test_a_shard_outside_its_count_is_refused():
    for index, count in ((2, 2), (-1, 2), (0, 0)):
        with pytest.raises(InputError, match="need 0 <= index < count"):
            Shard(index, count, "test")


def slurm_array_task(task_id: int, count: int, first: int, last: int, step: int = 1) -> dict:
    """The SLURM_ARRAY_* variables Slurm 22.05 sets in an array task (seen under real Slurm)."""
    values = {"ID": task_id, "COUNT": count, "MIN": first, "MAX": last, "STEP": step}
    return {f"SLURM_ARRAY_TASK_{key}": str(value) for key, value in values.items()}


@pytest.mark.parametrize(
    "ids, first, last",
    [(range(0, 4), 0, 3), (range(1, 5), 1, 4), (range(1, 9), 1, 8)],  # 0-3, 1-4, 1-8%2
)
def test_consecutive_slurm_arrays_map_to_every_shard_once(ids, first, last):
    shards = [shard_from_environment(slurm_array_task(i, len(ids), first, last)) for i in ids]
    assert shards == [Shard(k, len(ids), "SLURM") for k in range(len(ids))]


@pytest.mark.parametrize(
    "ids, first, last, step",
    [((1, 3, 5), 1, 5, 1), ((0, 2, 4, 6), 0, 6, 2), ((2, 3, 5), 2, 5, 1)],  # 1,3,5 0-6:2 2,3,5
)
def test_slurm_arrays_with_gaps_or_steps_are_refused_by_every_task(ids, first, last, step):
    # Mapping task IDs to shards here would leave shards undone with every task "succeeding".
    for task_id in ids:
        with pytest.raises(InputError) as refused:
            shard_from_environment(slurm_array_task(task_id, len(ids), first, last, step))
        message = str(refused.value)
        assert f"--array={first}-{first + len(ids) - 1}" in message
        assert "consecutive" in message and "--shard K/N" in message


def test_device_lists():
    assert parse_devices("cuda:0, cuda:1") == ["cuda:0", "cuda:1"]
    assert parse_devices("cpu,cpu") == ["cpu", "cpu"]
    with pytest.raises(InputError):
        parse_devices(" , ")
    for bad in ("cpu,bogus", "cuda:x", "mps", "cuda:-1"):
        with pytest.raises(InputError, match="unknown device.*use cuda, cuda:N or cpu"):
            parse_devices(bad)


def test_torchrun_rank_takes_its_own_gpu_in_the_library(tmp_path, monkeypatch):
    """`extract_files` itself maps LOCAL_RANK to cuda:N, so Python callers get it too."""
    import fastesm_extract.running.config as config

    asked = []

    def record_device(model, *, device, **kwargs):
        asked.append(device)
        raise InputError("stop before loading")

    monkeypatch.setattr(config, "load_model", record_device)
    folder = make_inputs(tmp_path / "in", 2, records=2)
    env = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "3"}
    for options in ({}, {"device": "cuda:1"}, {"devices": ["cuda:2"]}, {"device": "cpu"}):
        with pytest.raises(InputError, match="stop before loading"):
            extract_files([folder], tmp_path / "o", shard=shard_from_environment(env), **options)
    assert asked == ["cuda:3", "cuda:1", "cuda:2", "cpu"]
    with pytest.raises(InputError, match="stop before loading"):
        extract_files([folder], tmp_path / "o", shard=Shard(0, 2, "--shard"))
    assert asked[-1] == "cuda"  # no torchrun rank: the default device as it is
    with pytest.raises(InputError, match="unknown device 'bogus'"):
        extract_files([folder], tmp_path / "o", devices=["cpu", "bogus"])


@pytest.mark.parametrize(("environment", "message"), BAD_ENVIRONMENTS[:4] + BAD_ENVIRONMENTS[7:8])
def test_bad_shard_environments_exit_2_through_the_cli(
    tiny_checkpoint, tmp_path, monkeypatch, capsys, environment, message
):
    for name in [*os.environ]:
        if name.startswith("SLURM_") or name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "a.fa").write_text(">a\nMK\n")
    argv = ["extract", str(tmp_path / "a.fa"), "--model", str(tiny_checkpoint), "--device", "cpu"]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--shard K/N" in err
    assert re.search(message, err)
    assert not (tmp_path / "a_ESM.pt").exists()


def test_a_bogus_device_in_the_list_exits_2_through_the_cli(tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "a.fa").write_text(">a\nMK\n")
    argv = ["extract", str(tmp_path / "a.fa"), "--model", str(tiny_checkpoint)]
    assert main([*argv, "--devices", "cpu,bogus"]) == EXIT_USAGE
    assert "unknown device 'bogus'" in capsys.readouterr().err


def test_the_union_of_all_shards_equals_the_unsharded_run(tiny_model, tmp_path):
    folder = make_inputs(tmp_path / "in", 7, records=15)
    extract_files([folder], tmp_path / "whole", model=tiny_model, show_progress=False)
    for k in range(3):
        summary = extract_files(
            [folder],
            tmp_path / "sharded",
            model=tiny_model,
            shard=Shard(k, 3, "test"),
            show_progress=False,
        )
        assert summary.count("written") == len(range(k, 7, 3))
    assert outputs(tmp_path / "sharded") == outputs(tmp_path / "whole")
    assert len(outputs(tmp_path / "whole")) == 7


@pytest.mark.e2e
def test_shard_from_slurm_environment_through_the_cli(tiny_checkpoint, tmp_path):
    folder = make_inputs(tmp_path / "in", 4, records=5)
    env = {
        **ENV,
        "SLURM_ARRAY_TASK_ID": "2",
        "SLURM_ARRAY_TASK_COUNT": "2",
        "SLURM_ARRAY_TASK_MIN": "1",
    }
    subprocess.run(
        cli(folder, tmp_path / "out", tiny_checkpoint, "--device", "cpu"),
        env=env,
        check=True,
        timeout=300,
    )
    assert sorted(outputs(tmp_path / "out")) == ["output_1_ESM.pt", "output_3_ESM.pt"]


@pytest.mark.e2e
def test_two_cpu_workers_write_outputs_bitwise_identical_to_one_process(
    tiny_checkpoint, tiny_model, tmp_path
):
    folder = make_inputs(tmp_path / "in", 6)
    # One process: this one, with the same checkpoint loaded the same way.
    assert extract_files([folder], tmp_path / "one", model=tiny_model, show_progress=False).ok
    result = subprocess.run(
        cli(folder, tmp_path / "two", tiny_checkpoint, "--devices", "cpu,cpu"),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert says(result.stderr, "6 written, 0 skipped, 0 failed files; 240 records embedded")
    assert len(outputs(tmp_path / "two")) == 6
    assert outputs(tmp_path / "two") == outputs(tmp_path / "one")


def worker_pids(parent: int) -> list[int]:
    pids = []
    for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        if b"spawn_main" in cmdline:
            pids.append(int(child))
    return pids


@pytest.mark.e2e
def test_a_killed_worker_loses_only_its_files_and_a_rerun_completes(cluster_checkpoint, tmp_path):
    folder = make_inputs(tmp_path / "in", 10)
    out = tmp_path / "out"
    # Not quiet: the "worker N ready" lines say when both workers hold a file. Killing a
    # worker still loading its model (a busy machine) would lose nothing and prove nothing.
    # The pausing checkpoint waits before each batch (about 1 s a file): the kill lands
    # mid-run however slowly this test is scheduled, without the CPU doing the waiting.
    command = cli(folder, out, cluster_checkpoint, "--devices", "cpu,cpu")
    command.remove("--quiet")
    slow = {**ENV, SECONDS_PER_BATCH: "0.2"}
    process = subprocess.Popen(command, env=slow, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        ready = sum("ready on" in line for line in list(lines))
        if ready == 2 and len(outputs(out)) >= 1:
            break
        time.sleep(0.02)
    victims = worker_pids(process.pid)
    assert len(victims) == 2, "expected two worker processes"
    os.kill(victims[0], signal.SIGKILL)
    process.wait(timeout=300)
    reader.join(timeout=30)
    stderr = "".join(lines)
    assert process.returncode == 1, stderr
    assert "worker process died" in stderr
    lost = {
        Path(line.split()[1].rstrip(":")).name.replace(".fa", "_ESM.pt")
        for line in stderr.splitlines()
        if line.strip().startswith("FAILED")
    }
    assert lost, "the killed worker's files are reported"
    # The other worker finished everything else. A reported file has no output, or (killed
    # between writing an output and its complete manifest) one that the next run rebuilds.
    assert set(outputs(out)) >= {f"output_{i}_ESM.pt" for i in range(10)} - lost
    finished = [name for name in outputs(out) if is_complete(read_manifest(out / name))]
    missing = 10 - len(finished)
    assert 1 <= missing <= len(lost)

    rerun_completes(folder, out, cluster_checkpoint, written=missing, files=10)


def test_a_dead_workers_files_are_failed_unless_it_finished_them(tiny_model, tmp_path):
    from fastesm_extract.running.parallel import _lost_files

    folder = make_inputs(tmp_path / "in", 2, records=3)
    extract_files([folder / "output_0.fa"], tmp_path / "out", model=tiny_model, show_progress=False)
    jobs = {
        name: FileJob(folder / f"{name}.fa", tmp_path / "out" / f"{name}_ESM.pt")
        for name in ("output_0", "output_1")
    }
    failure_log = tmp_path / "out" / "f.log"
    results = _lost_files({job.output: job for job in jobs.values()}, -9, failure_log)
    assert [(r.job.fasta.name, r.status) for r in results] == [
        ("output_0.fa", "written"),
        ("output_1.fa", "failed"),
    ]
    assert "worker process died (exit code -9)" in results[1].message
    log_line = (tmp_path / "out" / "f.log").read_text().split("\t")
    assert log_line[2:4] == ["-", "worker_died"]


LAUNCHER = Path(__file__).with_name("paused_worker_launcher.py")


def run_with_a_worker_killed(folder: Path, out: Path, checkpoint: Path, at: str) -> tuple:
    """Run `--devices cpu,cpu` with one worker stopped where `at` says (see the launcher),
    kill it there, and return the run's exit status and stderr, or fail if the others hang."""
    hook = out.parent / f"hook-{at}"
    hook.mkdir()
    command = [sys.executable, str(LAUNCHER), *cli(folder, out, checkpoint)[1:]]
    process = subprocess.Popen(
        [*command, "--devices", "cpu,cpu"],
        env={**ENV, "PAUSE_HOOK_DIR": str(hook), "PAUSE_HOOK_AT": at},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (hook / "paused").exists() and process.poll() is None:
            assert time.monotonic() < deadline, "no worker reached the pause"
            time.sleep(0.02)
        os.kill(int((hook / "paused").read_text()), signal.SIGKILL)
        _, stderr = process.communicate(timeout=120)  # the bug: the others waited forever
    finally:
        if process.poll() is None:
            for pid in worker_pids(process.pid):
                os.kill(pid, signal.SIGKILL)
            process.kill()
            process.wait()
    return process.returncode, stderr


def rerun_completes(
    folder: Path, out: Path, checkpoint: Path, written: int, files: int, records: int = 40
) -> None:
    """A rerun on two CPU workers writes exactly `written` files, skips the rest, and leaves
    complete outputs of `records` records and no temporaries or locks."""
    rerun = subprocess.run(
        [*cli(folder, out, checkpoint), "--devices", "cpu,cpu"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert says(rerun.stderr, f"{written} written, {files - written} skipped, 0 failed files")
    for path in out.glob("*_ESM.pt"):
        assert len(load_embeddings(path, 32)[0]) == records
        assert is_complete(read_manifest(path))
    # No temporary or lock left behind by the killed worker.
    leftovers = [p.name for p in out.iterdir() if not p.name.endswith((".pt", ".json", ".log"))]
    assert leftovers == []


@pytest.mark.e2e
def test_a_worker_killed_while_waiting_for_a_task_never_hangs_the_others(tiny_checkpoint, tmp_path):
    """Killed inside its read of the task channel (the OOM killer picks any instant), a
    worker must not take with it a lock the others need: the run ends, the survivor does
    every other file, including the one the victim was being handed, and a rerun completes.
    The victim's current file is never published (see the launcher), so exactly it is lost."""
    folder = make_inputs(tmp_path / "in", 6, records=40)
    out = tmp_path / "out"
    status, stderr = run_with_a_worker_killed(folder, out, tiny_checkpoint, "task-read")
    assert status == 1, stderr
    failed = [line.split() for line in stderr.splitlines() if line.strip().startswith("FAILED")]
    assert len(failed) == 1, stderr
    assert "worker process died (exit code -9)" in stderr
    lost = Path(failed[0][1].rstrip(":")).name.replace(".fa", "_ESM.pt")
    finished = {name for name in outputs(out) if is_complete(read_manifest(out / name))}
    assert finished == {f"output_{i}_ESM.pt" for i in range(6)} - {lost}
    assert says(stderr, "5 written, 0 skipped, 1 failed files")
    rerun_completes(folder, out, tiny_checkpoint, written=1, files=6)


@pytest.mark.e2e
def test_a_worker_killed_while_telling_it_took_a_file_never_hangs_the_others(
    tiny_checkpoint, tmp_path
):
    """Killed inside its write to the parent, before the parent heard that it took a file
    (which it had not begun): the others go on, and that file is done by another worker."""
    folder = make_inputs(tmp_path / "in", 6, records=40)
    out = tmp_path / "out"
    status, stderr = run_with_a_worker_killed(folder, out, tiny_checkpoint, "event-write")
    assert status == 0, stderr
    assert says(stderr, "6 written, 0 skipped, 0 failed files")
    rerun_completes(folder, out, tiny_checkpoint, written=0, files=6)
