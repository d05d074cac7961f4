# Copyright (c) mmbinpc contributors. All rights reserved.
"""Models: backbones, classifiers, heads, losses and the distiller."""
from . import (backbones, binarized, classifiers, distillers,  # noqa: F401
               heads, losses)
from .distillers import BinaryDistiller  # noqa: E402,F401
