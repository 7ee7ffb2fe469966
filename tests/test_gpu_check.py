"""benchmarks/gpu_check.py runs blind on a lent GPU: its smoke run, its refusal without CUDA."""

import json
import sys
from pathlib import Path

import pytest
import torch
from helpers import says

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_extract  # noqa: E402
import gpu_check  # noqa: E402
import report  # noqa: E402
from report_gpu import render_gpu  # noqa: E402

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")


@no_cuda
def test_gpu_check_without_cuda_exits_2_before_any_work(tmp_path, capsys):
    assert gpu_check.main(["--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
    assert "CUDA is not available" in capsys.readouterr().err


@no_cuda
def test_benchmark_gpu_mode_without_cuda_fails(tmp_path):
    assert bench_extract.main(["--mode", "gpu", "--output", str(tmp_path / "B.md")]) == 2
    assert not (tmp_path / "B.md").exists()


@pytest.fixture
def one_torch_thread():
    # Two threads spin against each other on a busy 2-core machine: seconds instead of 0.2 s.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_gpu_check_smoke_run_writes_every_step_and_renders(tmp_path, one_torch_thread):
    out = tmp_path / "out"
    steps = "ceilings,model,fidelity,attention,bench"  # `tests` needs a child pytest: slow here
    argv = ["--smoke", "--out", str(out), "--steps", steps, "--records", "60"]
    assert gpu_check.main([*argv, "--budgets", "300,600", "--fidelity-records", "12"]) == 0
    check = json.loads((out / "gpu_check.json").read_text())
    assert {name: entry["status"] for name, entry in check["steps"].items()} == dict.fromkeys(
        steps.split(","), "ok"
    )
    bench = check["steps"]["bench"]["result"]
    assert [b["toks_per_batch"] for b in bench["budgets"]] == [300, 600]
    for budget in bench["budgets"]:
        assert set(budget["variants"]) == {"baseline", "ours", "floor"}
        assert budget["agreement"]["records"] == 60 and budget["agreement"]["proteins_equal"]
        assert budget["agreement"]["max_abs_diff"] < 1e-5
        assert budget["variants"]["floor"]["vs_floor"] == 1.0
    fidelity = check["steps"]["fidelity"]["result"]
    assert fidelity["records"] == 12 and fidelity["float16"]["min_cosine"] > 0.999
    assert check["steps"]["attention"]["result"]["ops"]["aten::scaled_dot_product_attention"] > 0
    markdown = (out / "gpu_check.md").read_text()
    assert "| 600 | ours |" in markdown and "SMOKE RUN" in markdown
    # One command puts it into BENCHMARKS.md: only the gpu section changes.
    benchmarks = tmp_path / "BENCHMARKS.md"
    original = (Path(__file__).resolve().parents[1] / "BENCHMARKS.md").read_text()
    benchmarks.write_text(original)
    render_args = ["--gpu-json", str(out / "gpu_check.json"), "--output", str(benchmarks)]
    assert report.main(render_args) == 0
    begin, end = "<!-- BEGIN bench:gpu -->\n", "<!-- END bench:gpu -->"
    written = benchmarks.read_text()
    assert written.split(begin)[1].split(end)[0] == markdown
    assert written.split(begin)[0] == original.split(begin)[0]
    assert written.split(end)[1] == original.split(end)[1]


def test_gpu_check_compile_step_runs_both_architectures_eager_and_compiled(
    tmp_path, one_torch_thread
):
    # dynamo's "eager" backend: the step's plumbing is checked here, Inductor in test_compile.
    out = tmp_path / "out"
    argv = ["--smoke", "--out", str(out), "--steps", "compile", "--records", "30"]
    argv += ["--compile-budgets", "600", "--compile-backend", "eager", "--fidelity-records", "8"]
    assert gpu_check.main(argv) == 0
    check = json.loads((out / "gpu_check.json").read_text())
    assert check["steps"]["compile"]["status"] == "ok"
    result = check["steps"]["compile"]["result"]
    assert [r["architecture"] for r in result["architectures"]] == ["fastesm", "esm"]
    for record in result["architectures"]:
        first = record["first_compile"]
        assert first["compiled"] and first["graphs"] >= 1 and not record["later_graphs"]
        (budget,) = record["budgets"]
        assert budget["toks_per_batch"] == 600 and budget["compiled"]["records_per_s"] > 0
        assert budget["padded_tokens_bucketed"] > budget["padded_tokens"]
        assert record["warm_start"]["compiled"]
        assert set(record["warm_start"]["first_calls"]) == set(first["first_calls_s"])
        assert record["fidelity"]["records"] == 8 and record["fidelity"]["min_cosine"] > 0.9999
    markdown = (out / "gpu_check.md").read_text()
    assert "| FastESM stand-in (modeling_fastesm) | 600 |" in markdown
    assert "| transformers EsmModel | 600 |" in markdown
    assert "Target: warm start <= 30 s" in markdown and "FELL BACK" not in markdown
    # Into BENCHMARKS.md: its own section (e); section (d), the earlier GPU check, stays.
    benchmarks = tmp_path / "BENCHMARKS.md"
    original = (Path(__file__).resolve().parents[1] / "BENCHMARKS.md").read_text()
    benchmarks.write_text(original)
    render_args = ["--gpu-json", str(out / "gpu_check.json"), "--output", str(benchmarks)]
    assert report.main(render_args) == 0
    written = benchmarks.read_text()
    begin, end = "<!-- BEGIN bench:gpu -->", "<!-- END bench:gpu -->"
    assert written.split(begin)[1].split(end)[0] == original.split(begin)[1].split(end)[0]
    section = written.split("<!-- BEGIN bench:gpu-compile -->\n")[1]
    assert section.startswith("### (e) GPU: compiled forward")
    assert "| transformers EsmModel | 600 |" in section.split("<!-- END bench:gpu-compile -->")[0]


def test_gpu_check_defaults_are_the_prepared_issue_20_run():
    args = gpu_check.parse_args([])
    settings = gpu_check.settings_of(args, cuda=True)
    assert settings["steps"] == ["tests", "ceilings", "compile"] and args.deadline <= 480
    assert settings["records"] == 10_000 and settings["fidelity_records"] == 1_000
    assert settings["compile"] == {
        "architectures": ["fastesm", "esm"],
        "budgets": [2048, 8192, 16384],
        "shapes": "buckets",
        "backend": "inductor",
        "repeats": 1,
    }
    assert settings["model"]["layers"] == 33 and settings["model"]["dtype"] == "float16"


def test_report_names_a_failed_step_and_keeps_the_others():
    check = {
        "steps": {
            "bench": {"status": "error", "error": "OutOfMemoryError: CUDA out of memory"},
            "ceilings": {
                "status": "ok",
                "result": {
                    "matmul_dtype": "float16",
                    "matmul_n": 8192,
                    "matmul_tflops": 750.2,
                    "copy_gb_s": 3000.0,
                },
            },
        }
    }
    text = "\n".join(render_gpu(check))
    assert "- bench: **error**: OutOfMemoryError: CUDA out of memory" in text
    assert says(text, "8192^3 on random data 750 TFLOP/s")
    assert "- fidelity: not run." in text


def test_benchmark_gpu_mode_renders_only_the_benchmark(tmp_path, one_torch_thread):
    import gpu_bench
    from modes import Options
    from workload import write_tokenizer

    options = Options(files=1, records=30, repeats=1, toks_per_batch=0, seed=0, scratch=tmp_path)
    check = gpu_bench.run_gpu_mode(
        options,
        write_tokenizer(tmp_path / "tokenizer"),
        device=torch.device("cpu"),
        shape=gpu_check.SMOKE_SHAPE,
        budgets=[300],
    )
    (budget,) = check["steps"]["bench"]["result"]["budgets"]
    assert budget["agreement"]["records"] == 30 and budget["agreement"]["max_abs_diff"] < 1e-5
    text = "\n".join(render_gpu(check))
    assert "| 300 | floor |" in text and "Fidelity" not in text and "not run" not in text
