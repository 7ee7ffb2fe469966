"""A failed device stops the run, not the data; allocation failures are split."""

import dataclasses

import pytest
import torch
from helpers import random_proteins, says, write_fasta

import fastesm_extract.running.config as config
from fastesm_extract import FAILURE_LOG_NAME, extract_fast_esm, extract_files, load_embeddings
from fastesm_extract.cli.main import main
from fastesm_extract.disk.manifest import read_manifest
from fastesm_extract.errors import EXIT_FAILURES

ILLEGAL_ACCESS = "CUDA error: an illegal memory access was encountered"


class BreaksFromCall(torch.nn.Module):
    """Wraps a model; from its `first_bad`-th call on, every call raises `make_error()`,
    as a CUDA context does after a sticky fault."""

    def __init__(self, inner, first_bad, make_error):
        super().__init__()
        self.inner, self.config = inner, inner.config
        self.first_bad, self.make_error, self.calls = first_bad, make_error, 0

    def forward(self, input_ids, attention_mask):
        self.calls += 1
        if self.calls >= self.first_bad:
            raise self.make_error()
        return self.inner(input_ids=input_ids, attention_mask=attention_mask)


@pytest.fixture
def three_files(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for part in (1, 2, 3):
        write_fasta(folder / f"output_{part}.fa", random_proteins(40, 5, 40, seed=part))
    return folder


def batches_per_file(loaded, folder) -> int:
    counter = BreaksFromCall(loaded.model, 10**9, RuntimeError)
    extract_fast_esm(folder / "output_1.fa", model=_with(loaded, counter), toks_per_batch=200)
    return counter.calls


def _with(loaded, module):
    return dataclasses.replace(loaded, model=module)


ERRORS = {
    "plain RuntimeError on consecutive batches": lambda: RuntimeError(ILLEGAL_ACCESS),
}
if hasattr(torch, "AcceleratorError"):
    ERRORS["torch.AcceleratorError"] = lambda: torch.AcceleratorError(ILLEGAL_ACCESS)


@pytest.mark.parametrize("make_error", ERRORS.values(), ids=ERRORS.keys())
def test_a_sticky_device_error_stops_the_run_after_what_is_finished(
    tiny_model, three_files, tmp_path, make_error
):
    per_file = batches_per_file(tiny_model, three_files)
    assert per_file >= 4
    broken = BreaksFromCall(tiny_model.model, per_file + 2, make_error)  # 2nd file, 2nd batch
    out = tmp_path / "out"
    summary = extract_files(
        [three_files],
        out,
        model=_with(tiny_model, broken),
        toks_per_batch=200,
        show_progress=False,
    )
    assert not summary.ok and ILLEGAL_ACCESS in summary.stopped
    assert sorted(r.status for r in summary.results) == ["failed", "written"]  # 3rd: not begun
    assert broken.calls <= per_file + 4  # stopped quickly, not after every remaining batch
    assert sorted(p.name for p in out.glob("*_ESM.pt")) == ["output_1_ESM.pt"]
    assert read_manifest(out / "output_1_ESM.pt")["records"]["failed"] == 0
    assert "device_error" in (out / FAILURE_LOG_NAME).read_text()
    assert not list(out.glob("*.lock"))

    rerun = extract_files(
        [three_files], out, model=tiny_model, toks_per_batch=200, show_progress=False
    )
    assert (rerun.count("skipped"), rerun.count("written")) == (1, 2) and rerun.ok


def test_the_cli_exits_1_with_a_message_to_rerun(
    tiny_model, three_files, tmp_path, monkeypatch, capsys
):
    broken = BreaksFromCall(tiny_model.model, 2, lambda: RuntimeError(ILLEGAL_ACCESS))
    monkeypatch.setattr(config, "load_model", lambda *args, **kwargs: _with(tiny_model, broken))
    argv = ["extract", str(three_files), "-o", str(tmp_path / "out"), "--device", "cpu", "-q"]
    assert main([*argv, "--toks-per-batch", "200"]) == EXIT_FAILURES
    err = capsys.readouterr().err
    assert "STOPPED: the device is unusable" in err and "rerun" in err
    assert not list((tmp_path / "out").glob("*_ESM.pt"))  # nothing written as if done


@pytest.mark.parametrize(
    "message",
    [
        "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
        "CUDA error: out of memory",
        "Memory efficient kernel not used because: out of memory",
    ],
)
def test_allocation_failures_raised_as_plain_runtime_errors_are_split_like_oom(
    tiny_model, tmp_path, message
):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(20, 5, 40, seed=4))
    expected = extract_fast_esm(fasta, model=tiny_model)

    class AllocFailsAboveTwo(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.config = inner, inner.config

        def forward(self, input_ids, attention_mask):
            if input_ids.shape[0] > 2:
                raise RuntimeError(message)
            return self.inner(input_ids=input_ids, attention_mask=attention_mask)

    summary = extract_files(
        [fasta],
        tmp_path / "out",
        model=_with(tiny_model, AllocFailsAboveTwo(tiny_model.model)),
        show_progress=False,
    )
    assert summary.ok and summary.records_failed == 0 and summary.stopped is None
    proteins, data = load_embeddings(tmp_path / "out" / "p_ESM.pt")
    assert proteins == expected[0]
    assert torch.allclose(torch.stack(data), torch.stack(expected[1]), atol=1e-5)


BROKEN_MODELING = '''
import os
from transformers import EsmModel


class DeviceFailsOnce(EsmModel):
    """The first process to reach its 3rd forward call claims the marker file and from then
    on fails every call, as a GPU with a sticky fault does; other processes never fail."""

    calls, broken = 0, False

    def forward(self, *args, **kwargs):
        type(self).calls += 1
        marker = os.environ["BROKEN_DEVICE_MARKER"]
        if type(self).calls == 3 and not os.path.exists(marker):
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                type(self).broken = True
            except FileExistsError:
                pass
        if type(self).broken:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return super().forward(*args, **kwargs)
'''


@pytest.mark.e2e
def test_with_devices_a_failed_device_stops_its_worker_and_the_others_go_on(
    tiny_checkpoint, tmp_path
):
    import json
    import shutil
    import subprocess

    from helpers import cli_command, subprocess_environment

    checkpoint = tmp_path / "breaks-once"
    shutil.copytree(tiny_checkpoint, checkpoint)
    (checkpoint / "modeling_broken.py").write_text(BROKEN_MODELING)
    config = json.loads((checkpoint / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_broken.DeviceFailsOnce"}
    (checkpoint / "config.json").write_text(json.dumps(config))
    folder = tmp_path / "in"
    folder.mkdir()
    for part in range(8):
        write_fasta(folder / f"output_{part}.fa", random_proteins(40, 5, 40, seed=part))
    out = tmp_path / "out"
    env = {**subprocess_environment(), "BROKEN_DEVICE_MARKER": str(tmp_path / "marker")}
    command = cli_command(folder, out, checkpoint, "--toks-per-batch", "200")
    result = subprocess.run(
        [*command, "--devices", "cpu,cpu"], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == EXIT_FAILURES, result.stderr
    assert "STOPPED: cpu: the device is unusable" in result.stderr
    assert "Traceback" not in result.stderr
    assert "its worker's device failed" in result.stderr  # the files it had taken
    written = sorted(out.glob("*_ESM.pt"))
    assert 1 <= len(written) < 8  # the other worker went on; the failed one lost its files
    for output in written:  # nothing written with missing records as if done
        assert len(load_embeddings(output)[0]) == 40
        assert read_manifest(output)["records"]["failed"] == 0

    rerun = subprocess.run(
        [*command, "--device", "cpu"], env=env, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr
    assert says(rerun.stderr, f"{8 - len(written)} written, {len(written)} skipped")
