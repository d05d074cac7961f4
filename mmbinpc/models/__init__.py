# Copyright (c) mmbinpc contributors. All rights reserved.
"""Models: backbones, classifiers, heads, layers, losses, the distiller."""
# isort: off
# importing the modules registers their types
from . import backbones, binarized, classifiers  # noqa: F401
from . import distillers, heads, layers, losses  # noqa: F401
# isort: on
from .distillers import BinaryDistiller  # noqa: F401
