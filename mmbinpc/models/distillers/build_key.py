# Copyright (c) mmbinpc contributors. All rights reserved.
"""Keep a distiller's ``binarize=`` key for the distiller itself.

mmbinpc lets any model config carry ``binarize=dict(...)``: the model is
built and then passed through :func:`mmbinpc.binarize` as a whole
(:mod:`mmbinpc.binary.convert`). For a ``BinaryDistiller`` that would binarize
the teacher too. The distiller's ``binarize`` means "binarize the student",
so this module wraps the ``MODELS`` build functions once more (outside
mmbinpc.binary's wrapper) and hands the key to the distiller as
``student_binarize`` before the generic handling can see it.
"""
import copy
from typing import Callable, Mapping

DISTILLER_TYPES = ('BinaryDistiller', )


def _is_distiller(cfg: Mapping, registry) -> bool:
    obj_type = cfg.get('type')
    if isinstance(obj_type, str):
        return obj_type.split('.')[-1] in DISTILLER_TYPES
    return getattr(obj_type, 'handles_binarize_key', False)


def _wrap(original: Callable) -> Callable:

    def build_func(cfg, *args, registry=None, default_args=None, **kwargs):
        if (isinstance(cfg, Mapping) and 'binarize' in cfg
                and _is_distiller(cfg, registry)):
            cfg = copy.copy(cfg)
            cfg['student_binarize'] = cfg.pop('binarize')
        return original(cfg, *args, registry=registry,
                        default_args=default_args, **kwargs)

    build_func._mmbinpc_distiller_wrapper = True
    # Tell mmbinpc.binary's installer that a wrapper is present (it would
    # otherwise wrap again, outside this one) and where the chain continues.
    build_func._mmbinpc_wrapper = getattr(original, '_mmbinpc_wrapper', False)
    build_func.__wrapped__ = original
    return build_func


def install_distiller_binarize_key() -> None:
    """Wrap the build function of every MODELS registry (idempotent)."""
    from mmengine.registry import MODELS as root
    stack = [root]
    while stack:
        registry = stack.pop()
        stack.extend(registry.children.values())
        if getattr(registry.build_func, '_mmbinpc_distiller_wrapper', False):
            continue
        registry.build_func = _wrap(registry.build_func)


install_distiller_binarize_key()
