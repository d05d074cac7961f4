# Copyright (c) mmbinpc contributors. All rights reserved.
"""Datasets and data transforms."""
from . import transforms  # noqa: F401
