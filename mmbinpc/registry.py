# Copyright (c) mmbinpc contributors. All rights reserved.
"""Registries that mmbinpc owns (its models, hooks, metrics, datasets and
transforms live in MMDetection3D's registries).

mmengine looks a scope's registries up as ``<scope>.registry``, so building
from :data:`BINARIZERS` with ``_scope_='mmbinpc'`` finds this module.
"""
from mmengine.registry import Registry

#: binarizer classes by lowercase name: filled by
#: :func:`mmbinpc.binary.register_binarizer`, built by
#: :func:`mmbinpc.binary.build_binarizer`
BINARIZERS = Registry('binarizer', scope='mmbinpc')

__all__ = ['BINARIZERS']
