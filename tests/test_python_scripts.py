"""Python scripts as users write them: README's `extract_files(..., devices=[...])` pasted
into a script without `if __name__ == "__main__":`, the drop-in on a chosen device, with the
checkpoint's own tokenizer, and sequences embedded straight from memory."""

import dataclasses
import subprocess
import sys

import pytest
import torch
from helpers import random_proteins, subprocess_environment, write_fasta
from transformers import AutoModel

from fastesm_extract import (
    embed_sequences,
    extract_fast_esm,
)
from fastesm_extract.api.models import models_by_name
from fastesm_extract.errors import ModelLoadError
from fastesm_extract.model.load import DEFAULT_MODEL
from fastesm_extract.running.config import ModelSpec

SCRIPT_WITHOUT_GUARD = """\
import sys
from fastesm_extract import extract_files

print("script body ran", flush=True)
summary = extract_files([sys.argv[1]], sys.argv[2], model=sys.argv[3], devices=["cpu", "cpu"],
                        show_progress=False)
print("written", summary.count("written"), "ok", summary.ok, flush=True)
"""


@pytest.mark.e2e
def test_a_script_without_main_guard_runs_devices_once_and_writes_every_output(
    tiny_checkpoint, tmp_path
):
    proteins = tmp_path / "proteins"
    proteins.mkdir()
    for part in range(3):
        write_fasta(proteins / f"output_{part}.fa", random_proteins(6, 10, 40, seed=part))
    script = tmp_path / "embed.py"
    script.write_text(SCRIPT_WITHOUT_GUARD)
    out = tmp_path / "out"

    done = subprocess.run(
        [sys.executable, str(script), str(proteins), str(out), str(tiny_checkpoint)],
        capture_output=True,
        text=True,
        env=subprocess_environment(),
        cwd=tmp_path,
        timeout=240,
    )

    assert done.returncode == 0, done.stderr
    # The workers never re-run the script's top level: it ran once, in the parent.
    assert done.stdout.count("script body ran") == 1, done.stdout + done.stderr
    assert "written 3 ok True" in done.stdout
    assert sorted(p.name for p in out.glob("*_ESM.pt")) == [
        f"output_{part}_ESM.pt" for part in range(3)
    ]
    assert "Traceback" not in done.stderr and "bootstrapping" not in done.stderr


GUARD_CASES = """\
from fastesm_extract.running.script_guard import called_from_unguarded_script as unguarded


def inner():
    return unguarded()


print("top level", unguarded())
print("function from top level", inner())
if True:
    print("other if", unguarded())

if __name__ == "__main__":
    print("guarded", unguarded())
    print("function from guarded", inner())
"""


@pytest.mark.e2e
def test_only_calls_from_unguarded_top_level_code_of_the_script_are_recognised(tmp_path):
    # Those workers skip importing the script; a guarded script is imported by its workers
    # as before (tests/paused_worker_launcher.py relies on it).
    script = tmp_path / "cases.py"
    script.write_text(GUARD_CASES)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.splitlines() == [
        "top level True",
        "function from top level True",
        "other if True",
        "guarded False",
        "function from guarded False",
    ]


@pytest.fixture
def fasta(tmp_path):
    return write_fasta(tmp_path / "p.fa", random_proteins(12, 5, 50, seed=7))


def test_the_drop_in_loads_a_named_model_on_the_device_asked_for_once(
    tiny_checkpoint, tiny_model, fasta, tmp_path, monkeypatch
):
    models_by_name.cache_clear()
    loads = []
    original = ModelSpec.load

    def counting(spec, device):
        if isinstance(spec.model, str):  # loaded by name, not a model handed over
            loads.append((spec.model, device))
        return original(spec, device)

    monkeypatch.setattr(ModelSpec, "load", counting)
    log = tmp_path / "f.log"
    first = extract_fast_esm(fasta, model=str(tiny_checkpoint), device="cpu", failure_log=log)
    again = extract_fast_esm(fasta, model=str(tiny_checkpoint), device="cpu", failure_log=log)
    reference = extract_fast_esm(fasta, model=tiny_model, failure_log=log)

    assert loads == [(str(tiny_checkpoint), "cpu")]  # loaded once for both calls, on the CPU
    assert first[0] == again[0] == reference[0]
    assert all(torch.equal(a, b) for a, b in zip(first[1], reference[1], strict=True))
    models_by_name.cache_clear()


def test_the_drop_in_without_a_model_loads_the_default_on_that_device(monkeypatch, fasta, tmp_path):
    models_by_name.cache_clear()
    asked = []

    def load(spec, device):
        asked.append((spec.model, device))
        raise ModelLoadError("stop here")

    monkeypatch.setattr(ModelSpec, "load", load)
    with pytest.raises(ModelLoadError, match="stop here"):
        extract_fast_esm(fasta, device="cpu", failure_log=tmp_path / "f.log")
    assert asked == [(DEFAULT_MODEL, "cpu")]


def test_a_model_without_tokenizer_attribute_uses_its_checkpoints_tokenizer(
    tiny_checkpoint, tiny_model, fasta, tmp_path
):
    model = AutoModel.from_pretrained(
        str(tiny_checkpoint), attn_implementation="sdpa", add_pooling_layer=False
    ).eval()
    assert not hasattr(model, "tokenizer")
    log = tmp_path / "f.log"

    proteins, data = extract_fast_esm(fasta, model=model, failure_log=log)
    expected = extract_fast_esm(fasta, model=tiny_model, failure_log=log)

    assert proteins == expected[0]
    assert all(torch.equal(a, b) for a, b in zip(data, expected[1], strict=True))


def test_sequences_in_memory_follow_the_rules_of_a_file_run(tiny_model, tmp_path):
    good = random_proteins(9, 5, 70, seed=3)
    pairs = [
        good[0],
        ("empty", ""),
        good[1],
        ("digits", "MKT123"),
        ("", "MKT"),
        *good[2:],
        ("stop", "MKTAYIAKQR*"),
        ("lower", "mktayiakqr"),
        ("dna", "ACGTTGCAAGCTTGCAACGTTGCAAGCTAGCT"),
    ]
    fasta = write_fasta(tmp_path / "same.fa", [p for p in pairs if p[0]])

    result = embed_sequences(pairs, model=tiny_model, toks_per_batch=64)
    from_file = extract_fast_esm(
        fasta, model=tiny_model, toks_per_batch=64, failure_log=tmp_path / "l"
    )

    expected_ids = [i for i, _ in good[:2]] + [i for i, _ in good[2:]] + ["stop", "lower"]
    assert result.ids == expected_ids == from_file[0]
    assert result.embeddings.dtype == torch.float32
    assert result.embeddings.shape == (len(expected_ids), tiny_model.hidden_size)
    assert torch.equal(result.embeddings, torch.stack(from_file[1]))
    assert torch.equal(result.embeddings[-2], result.embeddings[-1])  # '*' dropped, upper-cased
    kinds = {failure.record_id: failure.kind for failure in result.failures}
    assert kinds == {
        "empty": "empty_sequence",
        "digits": "invalid_character",
        "-": "invalid_header",
        "dna": "nucleotide_sequence",
    }
    assert not (tmp_path / "extraction_failures.log").exists()


class SmallDevice(torch.nn.Module):
    """The model on a device that runs out of memory above 2 sequences per batch."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.config, self.shapes = inner, inner.config, []

    def forward(self, input_ids, attention_mask):
        self.shapes.append(tuple(input_ids.shape))  # (b, l)
        if input_ids.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.inner(input_ids=input_ids, attention_mask=attention_mask)


def test_sequences_in_memory_are_batched_by_the_budget_and_split_on_out_of_memory(tiny_model):
    pairs = random_proteins(16, 20, 30, seed=5)
    budget = 8 * 32
    small = SmallDevice(tiny_model.model)

    result = embed_sequences(
        pairs, model=dataclasses.replace(tiny_model, model=small), toks_per_batch=budget
    )
    one_by_one = embed_sequences(pairs, model=tiny_model, toks_per_batch=1)

    full_batches = [(b, length) for b, length in small.shapes if b > 2]
    assert len(full_batches) >= 2 and all(b * length <= budget for b, length in full_batches)
    assert sum(b for b, _ in small.shapes if b <= 2) == len(pairs)  # all embedded after splits
    assert result.ids == [i for i, _ in pairs] and result.failures == []
    torch.testing.assert_close(result.embeddings, one_by_one.embeddings, rtol=0, atol=1e-5)


def test_sequences_in_memory_with_no_usable_record_give_an_empty_block(tiny_model):
    result = embed_sequences([("a", ""), ("b", "12")], model=tiny_model)
    assert result.ids == [] and result.embeddings.shape == (0, tiny_model.hidden_size)
    assert [f.kind for f in result.failures] == ["empty_sequence", "invalid_character"]
