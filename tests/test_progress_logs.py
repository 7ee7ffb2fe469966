"""Long batch logs: without a terminal (a Slurm job's log file) progress is logged at a
steady interval, `-q` keeps warnings only, and the file count keeps up with the outputs."""

import contextlib
import itertools
import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cluster_helpers import SECONDS_PER_BATCH
from helpers import cli_command, random_proteins, subprocess_environment, write_fasta

import fastesm_extract.cli.main as cli_main
import fastesm_extract.extract.pipeline as pipeline
from fastesm_extract.disk.failures import FailureLog
from fastesm_extract.extract.compute import compute_file
from fastesm_extract.extract.pipeline import Extractor
from fastesm_extract.extract.progress import (
    FEW_FILES,
    FIRST_LINE_AFTER_S,
    LOG_INTERVAL_VARIABLE,
    RunProgress,
    tick_delays,
)
from fastesm_extract.results import FileJob, FileResult
from fastesm_extract.running.signals import Terminated
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

    def file_started(self, records):
        pass

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


class Clock:
    """Seconds a test sets by hand."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class StopAfter:
    """Stands for the progress thread's stop event: records each wait, stops after `n`."""

    def __init__(self, n):
        self.waits, self.n = [], n

    def wait(self, seconds):
        self.waits.append(seconds)
        return len(self.waits) >= self.n


def test_the_first_line_comes_within_10_s_then_one_at_each_interval(caplog):
    assert list(itertools.islice(tick_delays(60.0), 3)) == [FIRST_LINE_AFTER_S, 60.0, 60.0]
    assert FIRST_LINE_AFTER_S == 10.0
    assert list(itertools.islice(tick_delays(2.0), 2)) == [2.0, 2.0]  # a short interval
    progress = RunProgress(4, enabled=False, clock=Clock())
    progress._stop = StopAfter(3)
    with caplog.at_level("INFO", logger="fastesm_extract"):
        progress._log_every(60.0)
    assert progress._stop.waits == [10.0, 60.0, 60.0]
    assert [r.getMessage()[:9] for r in caplog.records] == ["progress:", "progress:"]


def test_the_eta_counts_records_not_files():
    clock = Clock()
    progress = RunProgress(4, enabled=False, clock=clock)
    assert progress.status_line().endswith("ETA unknown")  # nothing begun yet
    # The issue's case: 1 of 4 files written after 30 s, but 3 files' records embedded
    # (the writer lags behind the device). By files: 0:01:30 left; by records: 10 s.
    for _ in range(4):
        progress.file_started(100)
    progress.sequences(300)
    progress.file_done()
    clock.now = 30.0
    line = PROGRESS_LINE.fullmatch(progress.status_line())
    assert line.groups() == ("1", "4", "300", "0:00:10")
    # The rate is the one since the previous line: 50 records in 10 s, 50 left -> 10 s.
    progress.sequences(50)
    clock.now = 40.0
    assert PROGRESS_LINE.fullmatch(progress.status_line()).group(4) == "0:00:10"

    # Files not begun count as the mean of those begun: 150 + 8 x 100 left at 5/s.
    clock.now = 0.0
    progress = RunProgress(10, enabled=False, clock=clock)
    progress.file_started(100)
    progress.file_started(100)
    progress.file_started(0)  # an output kept: no records, not in the mean
    progress.sequences(50)
    clock.now = 10.0
    assert PROGRESS_LINE.fullmatch(progress.status_line()).group(4) == "0:02:50"


def result(name, status="written", embedded=5):
    job = FileJob(Path(name), Path(name.replace(".fa", "_ESM.pt")))
    return FileResult(job=job, status=status, n_embedded=embedded, n_read=embedded)


def test_a_run_of_few_files_logs_each_one_a_larger_run_every_100(caplog):
    with caplog.at_level("INFO", logger="fastesm_extract"):
        few = RunProgress(FEW_FILES, enabled=False)
        few.file_done(result("a.fa"))
        few.file_done(result("b.fa", "failed", 0))
    assert [r.getMessage() for r in caplog.records] == [
        f"file 1/{FEW_FILES} done: a.fa written, 5 records embedded",
        f"file 2/{FEW_FILES} done: b.fa failed, 0 records embedded",
    ]
    caplog.clear()
    with caplog.at_level("INFO", logger="fastesm_extract"):
        many = RunProgress(FEW_FILES + 1, enabled=False)
        for index in range(FEW_FILES + 1):
            many.file_done(result(f"f{index}.fa"))
    assert caplog.records == []  # 21 files: only the milestone line, every 100


def test_a_stopped_run_says_how_many_files_are_done_and_its_summary_holds_them(
    tiny_checkpoint, tmp_path, monkeypatch, capsys
):
    inputs = make_files(tmp_path / "in", 4, 3)
    begun = []

    def compute_or_stop(prepared, *args, **kwargs):
        begun.append(prepared.job.fasta.name)
        if len(begun) == 3:  # SIGTERM while the third file is on the device
            raise Terminated(signal.SIGTERM)
        return compute_file(prepared, *args, **kwargs)

    monkeypatch.setattr(pipeline, "compute_file", compute_or_stop)
    # The handlers would stay set in this process after a stop: the raise stands for them.
    monkeypatch.setattr(cli_main, "stop_signals_as_interrupt", contextlib.nullcontext)
    summary_path = tmp_path / "summary.json"
    argv = ["extract", str(inputs), "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint)]
    status = cli_main.main([*argv, "--device", "cpu", "-q", "--summary-json", str(summary_path)])

    assert status == 143
    err = capsys.readouterr().err
    said = "terminated (SIGTERM); finished outputs are kept, 2 of 4 files done; rerun to resume"
    assert f"fastesm-extract: {said}" in err
    summary = json.loads(summary_path.read_text())
    assert (summary["ok"], summary["exit_status"], summary["error"]) == (
        False,
        143,
        "terminated (SIGTERM)",
    )
    assert summary["files"] == {"written": 2} and summary["records"]["embedded"] == 6
    written = sorted(Path(entry["input"]).name for entry in summary["file_results"])
    assert written == sorted(begun[:2])
    assert sorted(p.name for p in (tmp_path / "out").glob("*_ESM.pt")) == [
        name.replace(".fa", "_ESM.pt") for name in written
    ]
