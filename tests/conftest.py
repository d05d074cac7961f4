# Copyright (c) mmbinpc contributors. All rights reserved.
"""Shared pytest fixtures. Importing mmbinpc registers everything."""
import random

import numpy as np
import pytest
import torch

import mmbinpc  # noqa: F401


@pytest.fixture(autouse=True)
def _seed_everything():
    """Make every test deterministic."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


# The suite runs on 2-core machines, often beside other work: one intra-op
# thread avoids oversubscription (tests use tiny tensors anyway).
torch.set_num_threads(1)
