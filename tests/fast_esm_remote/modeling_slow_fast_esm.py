"""The FastESM stand-in, with a pause before each forward pass for cluster tests.

`FASTESM_TEST_SECONDS_PER_BATCH` (default 0) makes a run last long enough for Slurm to end it
mid-run (a time limit is at least a minute) while leaving the CPU free. The weights and
the embeddings are those of `FastEsmModel`, so a resumed run without the pause gives the
same bytes.
"""

from __future__ import annotations

import os
import time
from typing import Any

from .modeling_fast_esm import FastEsmConfig, FastEsmModel

SECONDS_PER_BATCH = "FASTESM_TEST_SECONDS_PER_BATCH"


class SlowFastEsmModel(FastEsmModel):
    def forward(self, *args: Any, **kwargs: Any):
        time.sleep(float(os.environ.get(SECONDS_PER_BATCH, "0")))
        return super().forward(*args, **kwargs)


__all__ = ["FastEsmConfig", "SlowFastEsmModel"]
