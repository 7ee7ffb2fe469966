"""Shared fixtures: tiny checkpoints built locally (no hub access), loaded the way users load."""

import os
import tempfile

# Read by transformers/huggingface_hub at import time: keep remote-code copies out of ~/.cache
# and make any accidental hub access fail fast instead of hanging.
os.environ.setdefault("HF_MODULES_CACHE", tempfile.mkdtemp(prefix="fastesm-test-modules-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Rates of earlier runs (for `plan`'s time estimates) stay out of ~/.cache.
os.environ.setdefault("FASTESM_EXTRACT_CACHE", tempfile.mkdtemp(prefix="fastesm-test-cache-"))

import signal  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from cluster_helpers import build_pausing_checkpoint, esm_outputs, make_protein_folder  # noqa: E402
from slurm_cluster import SlurmUnavailable, start_cluster  # noqa: E402

from fastesm_extract import extract_files, load_model  # noqa: E402
from fastesm_extract.demo import build_demo_checkpoint  # noqa: E402

# One thread, like the processes the tests start (helpers.subprocess_environment): the tiny
# models gain nothing from more, and on a busy machine threads spinning against each other
# made a tiny-model test file take several times longer.
torch.set_num_threads(1)
# A shell starts a background job (`make test &`) with SIGINT ignored, and every process the
# tests start would inherit that: the CLI would ignore the Ctrl-C of tests/test_signals.py.
# A handler instead of SIG_IGN here is reset to the default in each process started.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _find_shared_fixtures() -> Path:
    """`../shared/fixtures/virnucpro` beside the checkout (or FASTESM_SHARED_FIXTURES)."""
    if "FASTESM_SHARED_FIXTURES" in os.environ:
        return Path(os.environ["FASTESM_SHARED_FIXTURES"])
    for folder in Path(__file__).resolve().parents[1:]:
        candidate = folder / "shared" / "fixtures" / "virnucpro"
        if candidate.is_dir():
            return candidate
    return Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "virnucpro"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items):
    """Every test in no other lane is `unit`, so `-m unit` selects the fast lane.

    Under pytest-xdist (`make test`), the slurm lane is one group ("cluster"), as its tests
    share one cluster, and so is each module marked with a group (fixtures too costly to
    build twice). The longest work starts first (`_longest_first`)."""
    for item in items:
        if item.get_closest_marker("slurm"):
            item.add_marker(pytest.mark.xdist_group("cluster"))
        elif not item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.unit)
    items.sort(key=_longest_first)


def pytest_runtest_setup(item):
    """Fail a grouped test that pytest-xdist did not keep with its group: with pytest 9.2 and
    pytest-xdist 3.8 `--dist loadgroup` silently stops grouping (pytest-dev/pytest-xdist#1386),
    and each worker would then start its own Slurm cluster and compile cache. (A worker
    cannot stop the run legibly: its errors reach the terminal without their message.)"""
    if (
        os.environ.get("PYTEST_XDIST_WORKER")
        and item.config.getvalue("loadgroup")
        and item.get_closest_marker("xdist_group")
        and "@" not in item.nodeid  # where xdist writes the group it keeps the test with
    ):
        pytest.fail(
            f"pytest-xdist does not keep xdist_group tests in one worker under pytest "
            f"{pytest.__version__}: install the test extra's pytest (pip install -e '.[test]')",
            pytrace=False,
        )


def _longest_first(item) -> tuple[bool, bool]:
    """Groups, then the e2e lane, then the short unit tests that fill in at the end."""
    return item.get_closest_marker("xdist_group") is None, not item.get_closest_marker("e2e")


SHARED_FIXTURES = _find_shared_fixtures()
TINY = {"num_layers": 2, "hidden_size": 32, "num_heads": 4}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A native ESM2 checkpoint folder (2 layers x 32, random weights)."""
    return build_demo_checkpoint(tmp_path_factory.mktemp("tiny-esm"), seed=1, **TINY)


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint):
    """The tiny checkpoint loaded through `load_model`, on the CPU in float32."""
    torch.manual_seed(0)
    return load_model(str(tiny_checkpoint), device="cpu")


@pytest.fixture(scope="session")
def virnucpro_fixtures() -> Path:
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"original VirNucPro outputs not found at {SHARED_FIXTURES} (../shared absent)")
    return SHARED_FIXTURES


# ------------------------------------------------ cluster tests (test_slurm.py, test_torchrun.py)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A real one-node Slurm cluster, started once per session and stopped by PID after it."""
    try:
        cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    except SlurmUnavailable as reason:
        pytest.skip(f"no Slurm here: {reason}")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def cluster_checkpoint(tmp_path_factory) -> Path:
    """FastESM-shaped remote-code checkpoint that can pause before each batch on request."""
    return build_pausing_checkpoint(tmp_path_factory.mktemp("pausing") / "checkpoint")


@pytest.fixture(scope="session")
def cluster_proteins(tmp_path_factory) -> Path:
    return make_protein_folder(tmp_path_factory.mktemp("cluster") / "proteins", 10, 30)


@pytest.fixture(scope="session")
def cluster_reference(cluster_proteins, cluster_checkpoint, tmp_path_factory) -> dict[str, bytes]:
    """`*_ESM.pt` bytes of one process's run over `cluster_proteins` (this one, on the CPU),
    with the batch budget of README's cluster scripts: the jobs and ranks must equal it."""
    out = tmp_path_factory.mktemp("cluster-reference")
    loaded = load_model(str(cluster_checkpoint), device="cpu")
    assert extract_files(
        [cluster_proteins], out, model=loaded, toks_per_batch=8192, show_progress=False
    ).ok
    outputs = esm_outputs(out)
    assert len(outputs) == 10
    return outputs
