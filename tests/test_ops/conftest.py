# Copyright (c) mmbinpc contributors. All rights reserved.
"""Every point-op test runs on both neighbour-query backends."""
import pytest

from mmbinpc.ops.neighbors import BACKENDS, use_backend


@pytest.fixture(autouse=True, params=BACKENDS)
def point_op_backend(request):
    with use_backend(request.param):
        yield request.param
