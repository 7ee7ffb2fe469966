"""Shared fixtures: tiny checkpoints built locally (no hub access), loaded the way users load."""

import os
import tempfile

# Read by transformers/huggingface_hub at import time: keep remote-code copies out of ~/.cache
# and make any accidental hub access fail fast instead of hanging.
os.environ.setdefault("HF_MODULES_CACHE", tempfile.mkdtemp(prefix="fastesm-test-modules-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from fastesm_extract import load_model  # noqa: E402
from fastesm_extract.demo import build_demo_checkpoint  # noqa: E402


def _find_shared_fixtures() -> Path:
    """`../shared/fixtures/virnucpro` beside the checkout (or FASTESM_SHARED_FIXTURES)."""
    if "FASTESM_SHARED_FIXTURES" in os.environ:
        return Path(os.environ["FASTESM_SHARED_FIXTURES"])
    for folder in Path(__file__).resolve().parents[1:]:
        candidate = folder / "shared" / "fixtures" / "virnucpro"
        if candidate.is_dir():
            return candidate
    return Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "virnucpro"


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
