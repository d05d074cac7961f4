# Copyright (c) mmbinpc contributors. All rights reserved.
"""Models: backbones, classifiers, heads, losses and the distiller."""
from . import backbones, classifiers, distillers, heads, losses  # noqa: F401
from .distillers import BinaryDistiller  # noqa: E402,F401
