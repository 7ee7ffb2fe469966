"""The drop-in `extract_fast_esm(fasta, out_file)` keeps the CLI's resume rules:
a finished output is returned without running, or even loading, the model."""

import pytest
import torch
from helpers import random_proteins, says, sha256_hex, write_fasta

import fastesm_extract.api.files as api
import fastesm_extract.extract.pipeline as pipeline
import fastesm_extract.running.config as config
from fastesm_extract import extract_fast_esm
from fastesm_extract.disk.layout import manifest_path
from fastesm_extract.disk.manifest import (
    Provenance,
    build_manifest,
    read_manifest,
    utc_now,
    write_manifest,
)
from fastesm_extract.disk.manifest_schema import InputRead
from fastesm_extract.disk.store import save_embeddings_atomic
from fastesm_extract.errors import StaleOutputError
from fastesm_extract.model.load import DEFAULT_MODEL


@pytest.fixture
def computed(monkeypatch):
    """Counts the files the drop-in really embeds (through the pipeline's compute stage, the
    one every entry point goes through)."""
    calls = []
    original = pipeline.compute_file

    def counting(prepared, loaded, *args, **kwargs):
        calls.append(prepared.job.fasta)
        return original(prepared, loaded, *args, **kwargs)

    monkeypatch.setattr(pipeline, "compute_file", counting)
    return calls


@pytest.fixture
def fasta(tmp_path):
    records = random_proteins(20, 5, 60, seed=21) + [("long", "MKTAYIAKQR" * 6)]
    return write_fasta(tmp_path / "p.fa", records)


def snapshot(out):
    return out.read_bytes(), out.stat().st_mtime_ns, manifest_path(out).read_bytes()


def same(result, expected) -> bool:
    return result[0] == expected[0] and all(
        torch.equal(a, b) for a, b in zip(result[1], expected[1], strict=True)
    )


def test_a_finished_output_is_returned_without_running_the_model(
    tiny_model, fasta, tmp_path, computed
):
    out = tmp_path / "p_ESM.pt"
    first = extract_fast_esm(fasta, out, model=tiny_model, failure_log=tmp_path / "f.log")
    assert len(computed) == 1
    before = snapshot(out)

    again = extract_fast_esm(fasta, out, model=tiny_model, failure_log=tmp_path / "f.log")
    assert same(again, first) and len(computed) == 1
    assert snapshot(out) == before  # not rewritten, manifest untouched
    # The README's form: a Hugging Face model and its tokenizer.
    plain = extract_fast_esm(fasta, str(out), tiny_model.model, tiny_model.tokenizer)
    assert same(plain, first) and len(computed) == 1


def test_the_default_model_is_not_loaded_for_a_finished_output(
    fasta, tmp_path, monkeypatch, caplog
):
    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded")

    api.models_by_name.cache_clear()
    monkeypatch.setattr(config, "load_model", no_loading)
    records = [line[1:] for line in fasta.read_text().splitlines() if line.startswith(">")]
    data = [torch.randn(1280) for _ in records]
    out = tmp_path / "p_ESM.pt"

    # The original pipeline's output (no manifest), 1280-dim as FastESM2_650's: accepted.
    save_embeddings_atomic(out, records, data)
    assert same(extract_fast_esm(fasta, out), (records, data))

    # A manifest of the default model and settings: current, returned.
    provenance = Provenance(
        model_id=DEFAULT_MODEL,
        revision=None,
        commit_hash=None,
        dtype="float16",
        device="NVIDIA H100",
        hidden_size=1280,
        truncation_seq_length=1024,
        toks_per_batch=2048,
    )
    n = len(records)
    source = InputRead(path=fasta, size=fasta.stat().st_size, sha256=sha256_hex(fasta))
    manifest = build_manifest(provenance, source, n, n, [], utc_now())
    write_manifest(out, manifest)
    assert same(extract_fast_esm(fasta, out), (records, data))

    # Another setting: stale, kept; the drop-in refuses to hand its features on as this
    # setting's (issue 27 item 3), names why and the way out, still without loading.
    with pytest.raises(StaleOutputError, match="redo_stale=True") as refused:
        extract_fast_esm(fasta, out, truncation_seq_length=30)
    assert says(str(refused.value), "truncation_seq_length 1024 != 30")
    with caplog.at_level("WARNING"):  # taken on purpose
        kept = extract_fast_esm(fasta, out, truncation_seq_length=30, accept_stale=True)
        assert same(kept, (records, data))
    assert "is stale" in caplog.text and says(caplog.text, "truncation_seq_length 1024 != 30")

    # Rebuilding needs the model: redo_stale or overwrite load it.
    for options in ({"truncation_seq_length": 30, "redo_stale": True}, {"overwrite": True}):
        with pytest.raises(AssertionError, match="was loaded"):
            extract_fast_esm(fasta, out, **options)
    # An output of another size (ESM2-3B's 2560, no manifest) is stale too: kept, refused
    # (returned only with accept_stale) without loading; only redo_stale rebuilds it.
    other = [torch.randn(2560) for _ in records]
    save_embeddings_atomic(out, records, other)
    manifest_path(out).unlink()
    with pytest.raises(StaleOutputError, match="2560 dimensions, this model gives 1280"):
        extract_fast_esm(fasta, out)
    with caplog.at_level("WARNING"):
        assert same(extract_fast_esm(fasta, out, accept_stale=True), (records, other))
    assert says(caplog.text, "2560 dimensions, this model gives 1280")
    with pytest.raises(AssertionError, match="was loaded"):
        extract_fast_esm(fasta, out, redo_stale=True)


def test_stale_invalid_and_overwritten_outputs_follow_the_cli_rules(
    tiny_model, fasta, tmp_path, computed, caplog
):
    out = tmp_path / "p_ESM.pt"
    log = tmp_path / "f.log"
    first = extract_fast_esm(fasta, out, model=tiny_model, failure_log=log)

    # Stale (another truncation): kept and refused unless accepted, not recomputed.
    with pytest.raises(StaleOutputError, match="accept_stale=True"):
        extract_fast_esm(fasta, out, tiny_model, truncation_seq_length=20, failure_log=log)
    with caplog.at_level("WARNING"):
        kept = extract_fast_esm(
            fasta, out, tiny_model, truncation_seq_length=20, failure_log=log, accept_stale=True
        )
    assert same(kept, first) and len(computed) == 1
    assert "is stale" in caplog.text
    # ... rebuilt with redo_stale: the manifest now records the new setting.
    redone = extract_fast_esm(
        fasta, out, tiny_model, truncation_seq_length=20, failure_log=log, redo_stale=True
    )
    assert len(computed) == 2 and not same(redone, first)
    assert read_manifest(out)["settings"]["truncation_seq_length"] == 20

    # Invalid (does not load): reported and rebuilt.
    out.write_bytes(b"not a torch file")
    caplog.clear()
    with caplog.at_level("WARNING"):
        rebuilt = extract_fast_esm(fasta, out, model=tiny_model, failure_log=log)
    assert "will be rebuilt" in caplog.text and len(computed) == 3
    assert same(rebuilt, first)

    # overwrite recomputes a valid, current output.
    extract_fast_esm(fasta, out, model=tiny_model, failure_log=log, overwrite=True)
    assert len(computed) == 4

    # The input changed: its old output describes data that no longer exists: rebuilt.
    with open(fasta, "a") as handle:
        handle.write(">new\nMKT\n")
    grown = extract_fast_esm(fasta, out, model=tiny_model, failure_log=log)
    assert grown[0] == [*first[0], "new"] and len(computed) == 5


def test_without_out_file_the_model_always_runs(tiny_model, fasta, tmp_path, computed):
    extract_fast_esm(fasta, model=tiny_model, failure_log=tmp_path / "f.log")
    extract_fast_esm(fasta, model=tiny_model, failure_log=tmp_path / "f.log")
    assert len(computed) == 2


def test_embed_sequences_fails_bad_pairs_alone_never_raising(tiny_model):
    from fastesm_extract import embed_sequences

    pairs = [("a", "MKV"), ("b", None), ("c", 5), ("d", "MKLL"), ("e",), None]
    result = embed_sequences(pairs, tiny_model)
    alone = embed_sequences([("a", "MKV"), ("d", "MKLL")], tiny_model)
    assert result.ids == ["a", "d"]
    assert torch.equal(result.embeddings, alone.embeddings)
    kinds = [(failure.record_id, str(failure.kind)) for failure in result.failures]
    assert kinds == [
        ("b", "empty_sequence"),
        ("c", "invalid_character"),
        ("-", "invalid_header"),  # ("e",): no sequence
        ("-", "invalid_header"),  # None: no pair at all
    ]


def test_readmes_drop_in_takes_a_module_without_a_tokenizer_attribute(tiny_checkpoint, tmp_path):
    """README's snippet, `extract_fast_esm(fasta, out, model)`, on an ESM-family module that
    has no `tokenizer` attribute (transformers' EsmModel): the checkpoint's tokenizer is used,
    and the rows equal a run of the same checkpoint by name (issue 27 item 3)."""
    from transformers import EsmModel

    module = EsmModel.from_pretrained(
        tiny_checkpoint, attn_implementation="sdpa", add_pooling_layer=False
    ).eval()
    assert not hasattr(module, "tokenizer")
    records = random_proteins(4, 5, 30, seed=9)
    fasta = write_fasta(tmp_path / "p.fa", records)
    ids, data = extract_fast_esm(fasta, tmp_path / "p_ESM.pt", module, device="cpu")
    by_name = extract_fast_esm(fasta, tmp_path / "q_ESM.pt", str(tiny_checkpoint), device="cpu")
    assert ids == by_name[0] == [record_id for record_id, _ in records]
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(data, by_name[1]))
