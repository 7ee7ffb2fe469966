"""merge stopped by a signal (issue 26 item 7): the file being written is abandoned with no
temporary left, finished merged files are kept, the exit status is 128 + the signal, and a
temporary a killed merge left is removed when that merged file is written again."""

from __future__ import annotations

import os
import signal

import torch
from helpers import says
from test_merge_currency import STEMS, expected_rows, load, make_pairs, merge

import fastesm_extract.merge.merged_file as merged_file
from fastesm_extract.running.signals import STOP_SIGNALS


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_sigterm_during_a_merge_leaves_no_temporary_and_keeps_finished_files(
    tmp_path, monkeypatch, capsys
):
    folder, out = tmp_path / "f", tmp_path / "m"
    make_pairs(folder, 16)
    real_save = torch.save
    saved = []

    def save_then_signal(content, handle, *args, **kwargs):
        if len(saved) == 1:  # the second merged file: a real SIGTERM mid-write
            handle.write(b"half a file")
            os.kill(os.getpid(), signal.SIGTERM)
        saved.append(handle)
        return real_save(content, handle, *args, **kwargs)

    monkeypatch.setattr(merged_file.torch, "save", save_then_signal)
    handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    capsys.readouterr()
    try:
        assert merge(folder, "-o", out) == 128 + signal.SIGTERM
    finally:  # a stopped CLI ignores later signals on its way out: not this test process
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    err = capsys.readouterr().err
    assert "terminated (SIGTERM); finished merged files are kept, rerun to resume" in err
    assert leftovers(out) == []
    assert sorted(p.name for p in out.glob("*_merged.pt")) == ["output_1_merged.pt"]
    assert torch.equal(load(out / "output_1_merged.pt")["data"], expected_rows(16, 0))
    monkeypatch.setattr(merged_file.torch, "save", real_save)
    assert merge(folder, "-o", out) == 0
    assert says(capsys.readouterr().err, "2 written, 1 skipped")
    for index, stem in enumerate(STEMS):
        assert torch.equal(load(out / f"{stem}_merged.pt")["data"], expected_rows(16, index))


def test_a_killed_merges_temporary_is_removed_when_its_file_is_written(tmp_path, capsys):
    folder, out = tmp_path / "f", tmp_path / "m"
    make_pairs(folder, 16)
    out.mkdir()
    left = out / ".tmp-output_2_merged.pt.k1ll3d.part"  # as a SIGKILL leaves it
    left.write_bytes(b"partial")
    assert merge(folder, "-o", out) == 0
    assert leftovers(out) == []
    assert torch.equal(load(out / "output_2_merged.pt")["data"], expected_rows(16, 1))
