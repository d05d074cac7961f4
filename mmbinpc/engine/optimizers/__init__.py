# Copyright (c) mmbinpc contributors. All rights reserved.
"""Optimizer wrapper constructors for binary models."""
from .binary_constructor import (BinaryOptimWrapperConstructor,
                                 latent_lr_multipliers)

__all__ = ['BinaryOptimWrapperConstructor', 'latent_lr_multipliers']
