# Copyright (c) mmbinpc contributors. All rights reserved.
"""``type='Binarized'``: any registered point model, built and binarized.

A model factory registered in MMDetection3D's ``MODELS``: the config

.. code-block:: python

    model = dict(type='Binarized',
                 model=dict(type='PointClassifier', ...),  # any model config
                 method='lsr', aggregation='ema')          # binarize() options

builds ``model`` from the registry, passes it through
:func:`mmbinpc.binarize` and returns *that* model, so checkpoints and
state-dict keys are the inner model's. Nothing else in the process changes
how it builds models. A config inheriting an mmdet3d model can write
``model = dict(_delete_=True, type='Binarized', model={{_base_.model}},
method=...)``; inside a :class:`~mmbinpc.models.distillers.BinaryDistiller`
the short ``binarize=dict(...)`` names the student's options, and
``mmbinpc.binary.expand_binarize_key`` turns a model config that carries
``binarize=`` into this form (mmbinpc's tools do that for the configs they
load).
"""
from typing import Any, Mapping, Optional

from mmdet3d.registry import MODELS
from torch import nn


def build_binarized_model(model: Optional[Mapping] = None,
                          data_preprocessor: Optional[Mapping] = None,
                          **options: Any) -> nn.Module:
    """Build ``model`` and binarize it with ``options``.

    Args:
        model (dict): The model config (any type in the registry).
        data_preprocessor (dict, optional): Handed to the inner model when
            its config has none (the Runner adds a top-level
            ``data_preprocessor`` this way).
        **options: Keyword arguments of :func:`mmbinpc.binarize`
            (``method``, ``aggregation``, ``keep_fp``, ...).

    Returns:
        nn.Module: The inner model, binarized in place, with its
        :class:`~mmbinpc.binary.BinarizeReport` as ``binarize_report``.
    """
    from mmbinpc.binary import binarize
    from mmbinpc.models.layers import use_pooled_sa_modules
    if not isinstance(model, Mapping) or 'type' not in model:
        raise TypeError("type='Binarized' needs model=dict(type=..., ...), "
                        f'the config of the model to binarize; got {model!r}')
    cfg = use_pooled_sa_modules(model)  # SA modules with a pooling site
    if 'binarize' in cfg:
        raise ValueError("type='Binarized' got binarize= inside its model "
                         'config too; give the options once, next to '
                         "type='Binarized'")
    if data_preprocessor is not None:
        cfg.setdefault('data_preprocessor', data_preprocessor)
    built = MODELS.build(cfg)
    built.binarize_report = binarize(built, **options)
    return built


MODELS.register_module(name='Binarized', module=build_binarized_model)
