"""Long batch logs: without a terminal (a Slurm job's log file) progress is logged at a
steady interval, `-q` keeps warnings only, and the file count keeps up with the outputs."""

import re
import subprocess
import time

import pytest
from cluster_helpers import SECONDS_PER_BATCH
from helpers import cli_command, random_proteins, subprocess_environment, write_fasta

from fastesm_extract.disk.failures import FailureLog
from fastesm_extract.extract.pipeline import Extractor
from fastesm_extract.extract.progress import LOG_INTERVAL_VARIABLE, RunProgress
from fastesm_extract.running.sources import plan_jobs
from fastesm_extract.settings import ExtractionSettings

PROGRESS_LINE = re.compile(
    r"progress: (\d+)/(\d+) files, (\d+) records embedded, \d+ records/s, "
    r"elapsed \d+:\d\d:\d\d, ETA (\d+:\d\d:\d\d|unknown)"
)


def make_files(folder, files: int, records: int):
    folder.mkdir(parents=True, exist_ok=True)
    for part in range(files):
        write_fasta(folder / f"output_{part}.fa", random_proteins(records, 20, 60, seed=part))
    return folder


class DiskWatcher:
    """A progress sink that, before each batch, compares the files counted with the outputs
    already on disk."""

    def __init__(self, out):
        self.out, self.files_done, self.lags = out, 0, []

    def sequences(self, count):
        time.sleep(0.05)  # the writer thread has long finished a file this small
        on_disk = len(list(self.out.glob("*_ESM.pt")))
        self.lags.append(on_disk - self.files_done)

    def file_done(self, result):
        self.files_done += 1

    def close(self):
        pass


def test_the_file_count_keeps_up_with_the_outputs_on_disk(tiny_model, tmp_path):
    inputs = make_files(tmp_path / "in", 6, 12)
    out = tmp_path / "out"
    watcher = DiskWatcher(out)
    settings = ExtractionSettings(toks_per_batch=200)
    extractor = Extractor(tiny_model, settings, FailureLog(tmp_path / "f.log"), False)

    summary = extractor.run(plan_jobs([inputs], out), progress=watcher)

    assert summary.count("written") == 6 and watcher.files_done == 6
    assert len(watcher.lags) > 6
    assert max(watcher.lags) <= 1, watcher.lags  # it lagged 2 files behind


def test_without_a_terminal_progress_is_logged_at_the_interval_and_every_100_files(
    monkeypatch, caplog
):
    monkeypatch.setenv(LOG_INTERVAL_VARIABLE, "0.1")
    with caplog.at_level("INFO", logger="fastesm_extract"):
        progress = RunProgress(250, enabled=True)  # pytest's stderr is not a terminal
        for _ in range(250):
            progress.sequences(10)
            progress.file_done()
        time.sleep(0.35)
        progress.close()
    messages = [record.getMessage() for record in caplog.records]
    assert "100/250 files done, 1000 sequences embedded" in messages
    assert "200/250 files done, 2000 sequences embedded" in messages
    ticks = [PROGRESS_LINE.fullmatch(m) for m in messages if m.startswith("progress:")]
    assert len(ticks) >= 2 and all(ticks)
    assert ticks[-1].groups()[:3] == ("250", "250", "2500")

    caplog.clear()  # without progress (-q, show_progress=False): no lines at intervals
    with caplog.at_level("INFO", logger="fastesm_extract"):
        RunProgress(3, enabled=False)
        time.sleep(0.3)
    assert not [r for r in caplog.records if r.getMessage().startswith("progress:")]


def run_cli(cluster_checkpoint, tmp_path, *extra):
    inputs = make_files(tmp_path / "in", 4, 6)
    env = {
        **subprocess_environment(),
        LOG_INTERVAL_VARIABLE: "0.2",
        SECONDS_PER_BATCH: "0.25",  # the pausing checkpoint: a slow device
    }
    command = [
        c for c in cli_command(inputs, tmp_path / "out", cluster_checkpoint) if c != "--quiet"
    ]
    return subprocess.run(
        [*command, "--device", "cpu", *extra],
        capture_output=True,  # stderr is a pipe, as in a batch job: no terminal
        text=True,
        env=env,
        timeout=240,
    )


@pytest.mark.e2e
def test_a_batch_job_log_gets_progress_lines_not_a_bar_and_quiet_keeps_warnings_only(
    cluster_checkpoint, tmp_path
):
    done = run_cli(cluster_checkpoint, tmp_path / "logged")

    assert done.returncode == 0, done.stderr
    ticks = [PROGRESS_LINE.search(line) for line in done.stderr.splitlines()]
    ticks = [tick for tick in ticks if tick]
    assert len(ticks) >= 3, done.stderr
    files = [int(tick.group(1)) for tick in ticks]
    assert files == sorted(files) and {tick.group(2) for tick in ticks} == {"4"}
    assert "\r" not in done.stderr and "file/s" not in done.stderr  # no tqdm bar in a file

    quiet = run_cli(cluster_checkpoint, tmp_path / "quiet", "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert "progress:" not in quiet.stderr and " INFO " not in quiet.stderr
    assert quiet.stderr.strip().splitlines()[-1].startswith("fastesm-extract: 4 written")
