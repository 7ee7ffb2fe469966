import pytest
import torch
from fast_esm_checkpoint import build_fast_esm_checkpoint
from helpers import random_proteins, write_fasta
from transformers import AutoModel, AutoTokenizer

from fastesm_extract import ModelLoadError, extract_fast_esm, load_model, prepare_model
from fastesm_extract.model.load import resolve_device, resolve_dtype, uses_sdpa


def test_native_checkpoint_loads_with_sdpa_on_cpu_float32(tiny_checkpoint):
    loaded = load_model(str(tiny_checkpoint), device="cpu")
    assert loaded.model.config._attn_implementation == "sdpa"
    assert uses_sdpa(loaded.model)
    assert loaded.device == torch.device("cpu") and loaded.dtype == torch.float32
    assert loaded.hidden_size == 32
    assert loaded.is_demo  # built by build_demo_checkpoint: random weights are announced
    assert not loaded.model.training
    assert loaded.model.pooler is None  # the unused pooler is not built


def test_demo_checkpoint_warns_about_random_weights(tiny_checkpoint, caplog):
    with caplog.at_level("WARNING"):
        load_model(str(tiny_checkpoint), device="cpu")
    assert "RANDOM weights" in caplog.text


def test_cuda_requested_without_cuda_is_an_error_not_a_cpu_fallback(tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelLoadError, match="CUDA is not available.*--device cpu"):
        load_model(str(tiny_checkpoint), device="cuda")
    with pytest.raises(ModelLoadError, match="CUDA is not available"):
        resolve_device("cuda:1")


def test_dtype_rules():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert resolve_dtype(None, cuda) == torch.float16
    assert resolve_dtype("auto", cuda) == torch.float16
    assert resolve_dtype("bfloat16", cuda) == torch.bfloat16
    assert resolve_dtype(None, cpu) == torch.float32
    with pytest.raises(ModelLoadError, match="not supported on the CPU"):
        resolve_dtype("float16", cpu)
    with pytest.raises(ModelLoadError, match="unsupported dtype"):
        resolve_dtype("int8", cuda)
    with pytest.raises(ModelLoadError, match="unsupported device"):
        resolve_device("mps")


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="cannot load model.*local checkpoint folder"):
        load_model(str(tmp_path / "nowhere"), device="cpu")


def test_a_model_without_sdpa_is_refused(tiny_checkpoint):
    eager = AutoModel.from_pretrained(str(tiny_checkpoint), attn_implementation="eager")
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_checkpoint))
    assert not uses_sdpa(eager)
    with pytest.raises(ModelLoadError, match="does not use SDPA"):
        prepare_model(eager, tokenizer)


@pytest.fixture(scope="module")
def fast_esm_folder(tmp_path_factory, tiny_checkpoint):
    """A trust_remote_code FastESM-shaped checkpoint holding the tiny native model's weights."""
    native = AutoModel.from_pretrained(str(tiny_checkpoint), add_pooling_layer=False)
    return build_fast_esm_checkpoint(
        tmp_path_factory.mktemp("fast-esm"),
        num_layers=2,
        hidden_size=32,
        num_heads=4,
        attn_backend="eager",
        state_dict=native.state_dict(),
    )


def test_remote_code_checkpoint_is_switched_to_sdpa(fast_esm_folder):
    on_disk = AutoModel.from_pretrained(str(fast_esm_folder), trust_remote_code=True)
    assert on_disk.config.model_type == "fast_esm"
    assert on_disk.config.attn_backend == "eager" and not uses_sdpa(on_disk)

    loaded = load_model(str(fast_esm_folder), device="cpu")
    assert loaded.model.config.attn_backend == "sdpa"
    backends = {m.attn_backend for m in loaded.model.modules() if hasattr(m, "attn_backend")}
    assert {getattr(b, "value", b) for b in backends} == {"sdpa"}  # str or enum member
    assert loaded.tokenizer is loaded.model.tokenizer  # FastESM's own tokenizer attribute
    assert loaded.hidden_size == 32


def test_remote_code_and_native_models_give_the_same_embeddings(
    tmp_path, fast_esm_folder, tiny_model
):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(40, 1, 300, seed=3))
    remote = load_model(str(fast_esm_folder), device="cpu")
    ids_remote, data_remote = extract_fast_esm(fasta, model=remote)
    ids_native, data_native = extract_fast_esm(fasta, model=tiny_model)
    assert ids_remote == ids_native
    difference = (torch.stack(data_remote) - torch.stack(data_native)).abs().max()
    assert difference < 1e-5


def test_revision_is_kept_and_a_commit_hash_is_recognised(tiny_checkpoint):
    from fastesm_extract.model.hub import resolve_commit

    loaded = load_model(str(tiny_checkpoint), revision="v1.0", device="cpu")
    assert (loaded.revision, loaded.commit_hash) == ("v1.0", None)  # a local folder
    commit = "0123456789abcdef0123456789abcdef01234567"
    assert resolve_commit("Synthyra/FastESM2_650", commit) == commit  # already immutable
    assert resolve_commit("Synthyra/FastESM2_650", "main") is None  # offline: unknown


def test_strict_and_lenient_tokenizers_are_probed_at_load(tmp_path, fast_esm_folder):
    from fastesm_extract.model.tokens import UNKNOWN_REFUSED, UNKNOWN_RUN_AS_ONE_UNK

    strict = load_model(str(fast_esm_folder), device="cpu")  # FastEsmTokenizer: refuses J
    assert type(strict.tokenizer).__name__ == "FastEsmTokenizer"
    assert strict.alphabet.unknown == UNKNOWN_REFUSED
    lenient_folder = build_fast_esm_checkpoint(tmp_path / "lenient", strict_tokenizer=False)
    lenient = load_model(str(lenient_folder), device="cpu")
    assert lenient.alphabet.unknown == UNKNOWN_RUN_AS_ONE_UNK


def test_embeddings_equal_the_stand_ins_own_tokenizer_forward_and_masked_mean(
    tmp_path, fast_esm_folder
):
    """Our tokens, batches and pooling against the checkpoint's own tokenizer (which
    truncates to max_length - 2 residues and refuses J) and a one-sequence forward pass."""
    records = [*random_proteins(12, 1, 60, seed=5), ("long", "MKTAYLAG" * 9), ("x", "MXBZUOK")]
    records += [("with_j", "MKJLA"), ("lower_j", "mkjj"), ("only_j", "J")]
    fasta = write_fasta(tmp_path / "p.fa", records)
    loaded = load_model(str(fast_esm_folder), device="cpu")
    limit = 40
    proteins, data = extract_fast_esm(
        fasta,
        model=loaded,
        truncation_seq_length=limit,
        toks_per_batch=200,
        failure_log=tmp_path / "failures.log",
    )
    tokenizer = loaded.model.tokenizer
    expected = {}
    for record_id, sequence in records:
        try:
            batch = tokenizer(
                sequence.upper(), truncation=True, max_length=limit + 2, return_tensors="pt"
            )
        except KeyError:
            continue  # refused by the checkpoint's tokenizer: must fail on our side too
        with torch.no_grad():
            hidden = loaded.model(**batch).last_hidden_state  # (1, l, d)
        expected[record_id] = hidden[0, 1:-1].float().mean(0)  # residues only
    assert proteins == list(expected)
    assert set(proteins).isdisjoint({"with_j", "lower_j", "only_j"})
    for record_id, embedding in zip(proteins, data):
        assert (embedding - expected[record_id]).abs().max() < 1e-5, record_id
    logged = (tmp_path / "failures.log").read_text().splitlines()
    assert sorted(line.split("\t")[2] for line in logged) == ["lower_j", "only_j", "with_j"]
    assert all(line.split("\t")[3] == "invalid_character" for line in logged)
    assert "'J'" in logged[0] and "refuses" in logged[0]


def test_whatever_checkpoint_code_raises_while_loading_is_a_model_loading_error(
    tmp_path, fast_esm_folder
):
    import shutil

    broken_code = tmp_path / "broken-code"
    shutil.copytree(fast_esm_folder, broken_code)
    with open(broken_code / "modeling_fast_esm.py", "a") as handle:
        handle.write(
            "\n\ndef _broken(self, config):\n    raise RuntimeError('kernel not found')\n\n"
            "FastEsmModel.__init__ = _broken\n"
        )
    with pytest.raises(ModelLoadError, match="broken-code.*RuntimeError: kernel not found"):
        load_model(str(broken_code), device="cpu")

    no_vocab = tmp_path / "no-vocab"
    shutil.copytree(fast_esm_folder, no_vocab)
    (no_vocab / "vocab.txt").unlink()
    with pytest.raises(ModelLoadError, match="no-vocab"):
        load_model(str(no_vocab), device="cpu")


def test_a_model_whose_tokenizer_property_raises_is_a_model_loading_error(fast_esm_folder):
    model = AutoModel.from_pretrained(str(fast_esm_folder), trust_remote_code=True)
    fresh = type(model)(model.config)  # not from_pretrained: its tokenizer cannot be found
    fresh.config.attn_backend = "sdpa"
    fresh.attn_backend = "sdpa"
    with pytest.raises(ModelLoadError, match="tokenizer.*RuntimeError.*from_pretrained"):
        prepare_model(fresh)
