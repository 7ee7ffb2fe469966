"""--compile: the torch.compile'd forward equals eager, compiles a known number of
graphs (out-of-memory splits included), reuses the on-disk cache and falls back to eager.

Compiling costs seconds per graph on 2 cores, so the inputs keep to one width bucket (66-76
residues: widths 68-78, all padded to 80) unless a test is about buckets, and counting tests
use dynamo's "eager" backend: which graphs get compiled is dynamo's decision, not Inductor's.
"""

import json
import logging
import os
from pathlib import Path

import pytest
import torch
from fast_esm_checkpoint import build_fast_esm_checkpoint
from helpers import random_proteins, write_fasta
from torch._dynamo.utils import counters

from fastesm_extract import extract_fast_esm, extract_files, load_embeddings, load_model
from fastesm_extract.cli.main import main
from fastesm_extract.errors import EXIT_USAGE, InputError
from fastesm_extract.extract.batching import BatchInputs
from fastesm_extract.extract.compute import compute_file
from fastesm_extract.extract.forward import Forward, bucket_width
from fastesm_extract.extract.prepare import prepare_file
from fastesm_extract.results import FileJob
from fastesm_extract.running.config import resolve_config
from fastesm_extract.settings import ExtractionSettings

# One xdist worker for the module: its compile cache and models are built once.
pytestmark = pytest.mark.xdist_group("compile")

ONE_BUCKET = (66, 76)  # residues; + <cls>/<eos> = widths 68-78 -> bucket 80


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory) -> Path:
    """One cache folder for the module: the first compile is cold, later ones load from it."""
    return tmp_path_factory.mktemp("compile-cache")


@pytest.fixture(scope="module")
def fast_esm_model(tmp_path_factory):
    """The FastESM stand-in (the architecture that ships), 1 layer: compiles in seconds."""
    folder = tmp_path_factory.mktemp("fast-esm-1-layer")
    build_fast_esm_checkpoint(folder, num_layers=1, hidden_size=32, num_heads=4, seed=3)
    return load_model(str(folder), device="cpu")


@pytest.fixture(scope="module")
def one_bucket_files(tmp_path_factory) -> Path:
    """Two FASTA files; tests write their outputs elsewhere (-o), never beside them."""
    folder = tmp_path_factory.mktemp("in")
    for part, count in ((1, 14), (2, 9)):
        write_fasta(folder / f"output_{part}.fa", random_proteins(count, *ONE_BUCKET, seed=part))
    return folder


@pytest.fixture(scope="module")
def warm_cache(tiny_model, one_bucket_files, compile_cache, tmp_path_factory) -> Path:
    """`compile_cache` holding the tiny model's graphs for `one_bucket_files`."""
    out = tmp_path_factory.mktemp("warming")
    options = {"toks_per_batch": 400, "compile": True, "compile_cache": compile_cache}
    assert run(tiny_model, [one_bucket_files], out, **options).ok
    assert manifest(out / "output_1_ESM.pt")["model"]["compiled"] is True
    return compile_cache


def run(loaded, inputs, out, **options):
    return extract_files(inputs, out, model=loaded, show_progress=False, **options)


def embeddings(path: Path) -> torch.Tensor:
    return torch.stack(load_embeddings(path)[1])


def manifest(path: Path) -> dict:
    return json.loads(Path(f"{path}.json").read_text())


def test_widths_round_up_to_four_buckets_per_doubling_never_past_the_longest():
    assert [bucket_width(w) for w in (3, 8, 9, 33, 64, 65, 68, 80, 81, 101, 129)] == [
        8, 8, 16, 40, 64, 80, 80, 80, 96, 112, 160,
    ]  # fmt: skip
    assert bucket_width(1000) == 1024 and bucket_width(1026) == 1280
    assert bucket_width(1026, max_width=1026) == 1026  # truncation 1024: no 1280 bucket
    assert bucket_width(1000, max_width=1026) == 1024
    assert bucket_width(1100, max_width=1026) == 1100  # never below the batch itself
    assert all(bucket_width(w) <= 1.25 * w for w in range(32, 5000))  # padding <= 25%
    assert all(bucket_width(w) < w + 8 for w in range(1, 32))


@pytest.mark.parametrize("model_name", ["tiny_model", "fast_esm_model"])
def test_compiled_forward_equals_eager_within_1e5_and_manifests_record_it(
    model_name, request, one_bucket_files, compile_cache, tmp_path
):
    loaded = request.getfixturevalue(model_name)
    eager = run(loaded, [one_bucket_files], tmp_path / "eager", toks_per_batch=400)
    compiled = run(
        loaded,
        [one_bucket_files],
        tmp_path / "compiled",
        toks_per_batch=400,
        compile=True,
        compile_cache=compile_cache,
    )
    assert eager.ok and compiled.ok and compiled.records_embedded == 23
    for name in ("output_1_ESM.pt", "output_2_ESM.pt"):
        reference, result = tmp_path / "eager" / name, tmp_path / "compiled" / name
        assert load_embeddings(result)[0] == load_embeddings(reference)[0]
        difference = (embeddings(result) - embeddings(reference)).abs().max()
        assert difference < 1e-5  # padded to 80 and fused, yet within float32 noise
        assert manifest(reference)["model"]["compiled"] is False
        assert manifest(result)["model"]["compiled"] is True
    assert (compile_cache / "fxgraph").is_dir()  # Inductor's graphs went to the given cache


def test_compiled_output_is_bitwise_identical_alone_or_among_files(
    tiny_model, one_bucket_files, compile_cache, tmp_path
):
    # Another file first, with other batch sizes in the same bucket; each run starts from a
    # fresh dynamo state, so each traces its graphs anew.
    other = write_fasta(tmp_path / "first.fa", random_proteins(31, *ONE_BUCKET, seed=7))
    alone_file = one_bucket_files / "output_2.fa"
    options = {"toks_per_batch": 300, "compile": True, "compile_cache": compile_cache}
    torch._dynamo.reset()
    run(tiny_model, [other, alone_file], tmp_path / "together", **options)
    torch._dynamo.reset()
    run(tiny_model, [alone_file], tmp_path / "alone", **options)
    together = (tmp_path / "together" / "output_2_ESM.pt").read_bytes()
    assert (tmp_path / "alone" / "output_2_ESM.pt").read_bytes() == together
    assert manifest(tmp_path / "alone" / "output_2_ESM.pt")["model"]["compiled"] is True


class OutOfMemoryAbove(Forward):
    """A forward whose device runs out of memory for batches of more than `rows` rows."""

    def __init__(self, *args, rows: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rows, self.sizes = rows, []

    def __call__(self, batch: BatchInputs) -> torch.Tensor:
        self.sizes.append(len(batch.rows))
        if len(batch.rows) > self.rows:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return super().__call__(batch)


def graphs_compiled() -> int:
    return counters["stats"]["unique_graphs"]


def expected_graphs(prepared, max_width: int) -> set[str]:
    """One graph per width bucket for batches of several rows, one per bucket for 1 row."""
    return {
        f"{bucket_width(b.input_ids.shape[1], max_width)}x{'1' if len(b.rows) == 1 else 'N'}"
        for b in prepared.batches
    }


def test_out_of_memory_halves_reuse_the_bucket_graphs(tiny_model, tmp_path):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(40, *ONE_BUCKET, seed=11))
    settings = ExtractionSettings(toks_per_batch=700)
    prepared = prepare_file(FileJob(fasta, tmp_path / "p_ESM.pt"), tiny_model, settings)
    assert {len(b.rows) for b in prepared.batches} >= {9}  # split 9 -> 4 + 5 -> 2 + 2 + 2 + 3..
    torch._dynamo.reset()
    before = graphs_compiled()
    forward = OutOfMemoryAbove(tiny_model, True, max_width=1026, backend="eager", rows=2)
    computed = compute_file(prepared, tiny_model, forward=forward)
    assert not computed.failures and computed.compiled and min(forward.sizes) == 1
    assert set(forward.first_calls) == {"80xN", "80x1"}  # halves of every size: 2 graphs
    assert graphs_compiled() - before == 2
    eager = compute_file(prepared, tiny_model)
    assert (computed.block - eager.block).abs().max() < 1e-5


def test_a_run_compiles_one_graph_per_bucket_whatever_the_batch_sizes(tiny_model, tmp_path):
    # Lengths 3-150 cut at 100: batches in 5 buckets, 3-40 rows; nothing compiled twice.
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(70, 3, 150, seed=5))
    settings = ExtractionSettings(toks_per_batch=400, truncation_seq_length=100)
    prepared = prepare_file(FileJob(fasta, tmp_path / "p_ESM.pt"), tiny_model, settings)
    expected = expected_graphs(prepared, 102)
    widths = {key.split("x")[0] for key in expected}
    assert len(widths) >= 5 and "102" in widths and "112" not in widths  # cap, not 112
    torch._dynamo.reset()
    before = graphs_compiled()
    forward = Forward(tiny_model, True, max_width=102, backend="eager")
    for _ in range(2):  # a second pass over the same batches compiles nothing
        computed = compute_file(prepared, tiny_model, forward=forward)
    assert set(forward.first_calls) == expected
    assert graphs_compiled() - before == len(expected) <= 2 * len(widths)
    assert (computed.block - compute_file(prepared, tiny_model).block).abs().max() < 1e-5


def test_dynamic_widths_compile_two_graphs_for_every_bucket(tiny_model, tmp_path):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(70, 3, 150, seed=5))
    settings = ExtractionSettings(toks_per_batch=400, truncation_seq_length=100)
    prepared = prepare_file(FileJob(fasta, tmp_path / "p_ESM.pt"), tiny_model, settings)
    assert len(expected_graphs(prepared, 102)) >= 5
    torch._dynamo.reset()
    before = graphs_compiled()
    forward = Forward(tiny_model, True, max_width=102, backend="eager", dynamic_width=True)
    computed = compute_file(prepared, tiny_model, forward=forward)
    assert set(forward.first_calls) <= {"anyxN", "anyx1"} and "anyxN" in forward.first_calls
    assert graphs_compiled() - before == len(forward.first_calls)
    assert (computed.block - compute_file(prepared, tiny_model).block).abs().max() < 1e-5


def failing_backend(graph, example_inputs):
    raise RuntimeError("this backend cannot compile anything")


def test_a_failing_compile_warns_once_and_the_run_goes_on_eager(
    tiny_model, one_bucket_files, tmp_path, caplog, monkeypatch
):
    import fastesm_extract.extract.pipeline as pipeline

    def forward_with_failing_backend(loaded, settings):
        return Forward(loaded, settings.compile, backend=failing_backend)

    monkeypatch.setattr(pipeline, "forward_for", forward_with_failing_backend)
    run(tiny_model, [one_bucket_files], tmp_path / "eager", toks_per_batch=400)
    with caplog.at_level(logging.WARNING, logger="fastesm_extract"):
        summary = run(
            tiny_model, [one_bucket_files], tmp_path / "o", toks_per_batch=400, compile=True
        )
    assert summary.ok and summary.records_embedded == 23
    warnings = [r.getMessage() for r in caplog.records if "--compile" in r.getMessage()]
    assert len(warnings) == 1 and "this backend cannot compile anything" in warnings[0]
    for name in ("output_1_ESM.pt", "output_2_ESM.pt"):  # eager from the failing batch on
        assert (tmp_path / "o" / name).read_bytes() == (tmp_path / "eager" / name).read_bytes()
        assert manifest(tmp_path / "o" / name)["model"]["compiled"] is False


def test_without_a_cpp_compiler_the_drop_in_runs_eager(tiny_model, tmp_path, caplog, monkeypatch):
    # A real compile failure: Inductor cannot find its C++ compiler. An empty cache and a
    # width bucket (224) no other test compiles: it must compile, not load.
    import torch._inductor.config as inductor_config

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "empty-cache"))
    fasta = write_fasta(tmp_path / "long.fa", random_proteins(6, 200, 210, seed=4))
    torch._dynamo.reset()
    missing = str(tmp_path / "no-such-c++")
    with inductor_config.patch({"cpp.cxx": (missing,)}):
        with caplog.at_level(logging.WARNING, logger="fastesm_extract"):
            proteins, data = extract_fast_esm(
                fasta, tmp_path / "c_ESM.pt", tiny_model, compile=True
            )
    torch._dynamo.reset()  # nothing half-compiled left for later tests
    warnings = [r.getMessage() for r in caplog.records if "running eager instead" in r.getMessage()]
    assert len(warnings) == 1 and "no-such-c++" in warnings[0]
    assert torch.equal(torch.stack(data), torch.stack(extract_fast_esm(fasta, None, tiny_model)[1]))
    assert manifest(tmp_path / "c_ESM.pt")["model"]["compiled"] is False


def test_compiled_flag_never_makes_an_output_stale(tiny_model, one_bucket_files, tmp_path):
    out = tmp_path / "out"
    assert run(tiny_model, [one_bucket_files], out, toks_per_batch=400).count("written") == 2
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*_ESM.pt")}
    again = run(tiny_model, [one_bucket_files], out, toks_per_batch=400, compile=True)
    assert again.count("skipped") == 2 and again.count("stale") == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*_ESM.pt")} == before


def test_compile_options_reach_the_config_from_the_cli_and_the_api(tmp_path, capsys):
    config = resolve_config(device="cpu", compile=True, compile_cache=tmp_path / "c")
    assert config.settings.compile and config.settings.compile_cache == str(tmp_path / "c")
    assert not resolve_config(device="cpu").settings.compile
    with pytest.raises(InputError, match="needs --compile"):
        resolve_config(device="cpu", compile_cache=tmp_path / "c")
    fasta = write_fasta(tmp_path / "a.fa", [("a", "MKT")])
    argv = ["extract", str(fasta), "--device", "cpu", "--compile-cache", str(tmp_path)]
    assert main(argv) == EXIT_USAGE
    assert "--compile-cache (compile_cache) needs --compile" in capsys.readouterr().err


def cache_entries(cache: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (cache / "fxgraph").rglob("*") if p.is_file()}


def test_cli_compile_with_workers_loads_graphs_from_the_shared_cache(
    tiny_checkpoint, one_bucket_files, warm_cache, tmp_path, monkeypatch
):
    # The two worker processes load the graphs of the warm cache instead of compiling them:
    # no entry is added or rewritten there, and none goes to the cache they inherit.
    entries = cache_entries(warm_cache)
    assert entries
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inherited"))
    argv = ["extract", str(one_bucket_files), "-o", str(tmp_path / "o"), "--model"]
    argv += [str(tiny_checkpoint), "--devices", "cpu,cpu", "--toks-per-batch", "400", "-q"]
    assert main([*argv, "--compile", "--compile-cache", str(warm_cache)]) == 0
    for name in ("output_1_ESM.pt", "output_2_ESM.pt"):
        assert manifest(tmp_path / "o" / name)["model"]["compiled"] is True
    assert cache_entries(warm_cache) == entries
    assert not (tmp_path / "inherited" / "fxgraph").exists()


def _refuse_loading(monkeypatch):
    import fastesm_extract.running.config as config

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(config, "load_model", refuse)


def test_a_compile_cache_that_is_a_file_is_a_usage_error_before_the_model_loads(
    tiny_checkpoint, one_bucket_files, tmp_path, monkeypatch, capsys
):
    _refuse_loading(monkeypatch)
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    argv = ["extract", str(one_bucket_files), "-o", str(tmp_path / "out"), "--device", "cpu"]
    argv += ["--model", str(tiny_checkpoint), "--compile", "--compile-cache", str(cache)]
    assert main(argv) == EXIT_USAGE
    assert f"--compile-cache {cache} is a file: give a folder" in capsys.readouterr().err
    assert cache.read_text() == "not a folder" and not (tmp_path / "out").exists()


@pytest.mark.parametrize("mode, refused", [(0o777, True), (0o1777, False), (0o755, False)])
def test_a_compile_cache_writable_by_all_is_refused_unless_sticky(tmp_path, mode, refused):
    cache = tmp_path / "cache"
    cache.mkdir()
    os.chmod(cache, mode)
    if refused:
        with pytest.raises(InputError, match="is writable by every user"):
            resolve_config(device="cpu", compile=True, compile_cache=cache)
    else:
        config = resolve_config(device="cpu", compile=True, compile_cache=cache)
        assert config.settings.compile_cache == str(cache.resolve())


def test_a_compile_cache_of_another_user_is_refused(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    if os.geteuid() == 0:  # root can give it away for real
        os.chown(cache, 65534, 65534)
    else:  # as if the process ran as another user than the folder's owner
        me = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: me + 1)
    with pytest.raises(InputError, match=r"is owned by another user \(uid \d+\)"):
        resolve_config(device="cpu", compile=True, compile_cache=cache)
    missing = tmp_path / "new" / "cache"  # made by the run, as its own: fine
    assert resolve_config(device="cpu", compile=True, compile_cache=missing).settings.compile_cache
