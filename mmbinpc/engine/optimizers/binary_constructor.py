# Copyright (c) mmbinpc contributors. All rights reserved.
"""Parameter groups for binary models: scale-relative latent learning rates.

A binary layer's forward pass sees only ``sign(W)`` (times a scale), so what
a training step changes is how many latent weights cross zero. With Adam an
update moves each weight by about the learning rate whatever the gradient's
size, so the share of signs that flip per step grows like ``lr / |W|``. Layers
whose latent weights are much smaller than their peers' therefore flip far
more often: PointNet's T-Net ``transform`` layers start at zero in the FP32
model and end its training with weights about 10x smaller than the other
layers; binarized and trained at the common learning rate, a third of their
signs flipped within four epochs and the 3x3 / 64x64 alignment matrices,
which multiply the data with no BatchNorm after them, turned random.

:class:`BinaryOptimWrapperConstructor` gives each binary layer's latent weight
the learning rate ``lr · clip(std(W) / median_std, min_lr_mult, 1)``, the
median taken over the model's binary layers when the optimizer is built (for
a student initialised from its teacher: the teacher's weights), so every
layer flips at about the same rate.

The binarizers' own parameters (LSR's α, ReAct's thresholds) get the same
multiplier times ``binarizer_lr_mult`` (0.1) and no weight decay. A learned
scale such as α is one scalar whose gradient rarely changes sign, so Adam
moves it by about the full learning rate at every step: at 1e-3 that is a
few percent of a typical α (0.004-0.05) per step. Behind a BatchNorm the
scale cancels out, but the T-Net ``transform`` layers have none: their α
sets the size of the predicted alignment matrix, and at the common rate it
grew within two epochs until the feature transform blew up (the loss jumped
from 1.1 to 6.7). With the multipliers each α moves about 0.3 % per step.
Weight decay is off by default on the latent weights too (it shrinks them
towards zero and so raises their flip rate as training goes on).
"""
import statistics
from typing import Dict, List, Optional

from mmdet3d.registry import (OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS,
                              OPTIMIZERS)
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from torch import nn

from mmbinpc.binary.layers import BinaryMixin

#: The constructor's own ``paramwise_cfg`` keys, with their defaults.
BINARY_PARAMWISE_DEFAULTS = dict(
    latent_lr='scaled',
    min_lr_mult=0.01,
    latent_decay_mult=0.0,
    binarizer_lr_mult=0.1,
    binarizer_decay_mult=0.0)


def _latent_parameter(module: nn.Module) -> Optional[nn.Parameter]:
    """The latent weight parameter of a binary layer (PAConv: its bank)."""
    for name in ('weight', 'weight_bank'):
        param = getattr(module, name, None)
        if isinstance(param, nn.Parameter):
            return param
    return None


def latent_lr_multipliers(model: nn.Module,
                          min_lr_mult: float = 0.01) -> Dict[str, float]:
    """Scale-relative learning-rate multiplier of each binary latent weight.

    Args:
        model (nn.Module): A model with binary layers.
        min_lr_mult (float): Lower bound of a multiplier. Defaults to 0.01.

    Returns:
        dict[str, float]: Parameter name -> ``clip(std(W) / median_std,
        min_lr_mult, 1)``; empty when the model has no binary layer.
    """
    stds = {}
    for name, module in model.named_modules():
        if not isinstance(module, BinaryMixin):
            continue
        param = _latent_parameter(module)
        if param is None or param.numel() < 2:
            continue
        key = f'{name}.weight_bank' if param is getattr(
            module, 'weight_bank', None) else f'{name}.weight'
        stds[key] = float(param.detach().float().std())
    if not stds:
        return {}
    median = statistics.median(stds.values())
    if not median > 0:
        return {key: 1.0 for key in stds}
    return {
        key: min(max(std / median, min_lr_mult), 1.0)
        for key, std in stds.items()
    }


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class BinaryOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor plus the binary-layer groups.

    Use it in a config as::

        optim_wrapper = dict(
            constructor='BinaryOptimWrapperConstructor',
            optimizer=dict(type='Adam', lr=1e-3, weight_decay=1e-4),
            paramwise_cfg=dict(latent_lr='scaled', latent_decay_mult=0.0))

    ``paramwise_cfg`` takes mmengine's usual keys (``custom_keys``,
    ``norm_decay_mult``, ...) and these:

    * ``latent_lr``: ``'scaled'`` (default; see the module docstring) or
      ``'uniform'`` (every latent weight at the optimizer's learning rate).
    * ``min_lr_mult``: lower bound of a scaled multiplier (default 0.01).
    * ``latent_decay_mult``: weight-decay multiplier of the latent weights
      (default 0).
    * ``binarizer_lr_mult``: learning-rate multiplier of the binarizers'
      parameters on top of their layer's latent multiplier (default 0.1).
    * ``binarizer_decay_mult``: weight-decay multiplier of the binarizers'
      parameters, e.g. LSR's α (default 0).

    The multipliers apply on top of whatever mmengine's keys set for the
    same parameter. Models without binary layers (an FP32 teacher) get
    exactly mmengine's default groups. The chosen multipliers are kept in
    ``self.latent_lr_mults`` (parameter name -> multiplier).

    Args:
        optim_wrapper_cfg (dict): The ``optim_wrapper`` config.
        paramwise_cfg (dict, optional): See above.
    """

    def __init__(self,
                 optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None) -> None:
        paramwise_cfg = dict(paramwise_cfg or {})
        own = {
            key: paramwise_cfg.pop(key, default)
            for key, default in BINARY_PARAMWISE_DEFAULTS.items()
        }
        if own['latent_lr'] not in ('scaled', 'uniform'):
            raise ValueError(
                f"paramwise_cfg.latent_lr must be 'scaled' or 'uniform', got "
                f"{own['latent_lr']!r}")
        for key in ('min_lr_mult', 'latent_decay_mult', 'binarizer_lr_mult',
                    'binarizer_decay_mult'):
            if float(own[key]) < 0:
                raise ValueError(f'paramwise_cfg.{key} must be >= 0, got '
                                 f'{own[key]}')
        self.binary_cfg = own
        self.latent_lr_mults: Dict[str, float] = {}
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def __call__(self, model: nn.Module) -> OptimWrapper:
        if hasattr(model, 'module'):
            model = model.module
        cfg = self.binary_cfg
        names = {id(p): n for n, p in model.named_parameters()}
        latent = {}
        binarizer_params: Dict[int, float] = {}
        mults = latent_lr_multipliers(model, float(cfg['min_lr_mult']))
        if cfg['latent_lr'] == 'uniform':
            mults = {key: 1.0 for key in mults}
        self.latent_lr_mults = mults
        for name, module in model.named_modules():
            if not isinstance(module, BinaryMixin):
                continue
            param = _latent_parameter(module)
            mult = 1.0
            if param is not None and names.get(id(param)) in mults:
                mult = latent[id(param)] = mults[names[id(param)]]
            binarizer = getattr(module, 'binarizer', None)
            if isinstance(binarizer, nn.Module):
                for p in binarizer.parameters():
                    binarizer_params[id(p)] = mult * float(
                        cfg['binarizer_lr_mult'])
        if not latent and not binarizer_params:
            return super().__call__(model)  # nothing binary: mmengine's way

        wrapper_cfg = self.optim_wrapper_cfg.copy()
        wrapper_cfg.setdefault('type', 'OptimWrapper')
        optimizer_cfg = self.optimizer_cfg.copy()
        base_lr = float(optimizer_cfg['lr'])
        base_wd = float(optimizer_cfg.get('weight_decay', 0.0))
        groups: List[dict] = []
        self.add_params(groups, model)
        for group in groups:
            param = group['params'][0]
            if id(param) in latent:
                group['lr'] = group.get('lr', base_lr) * latent[id(param)]
                group['weight_decay'] = group.get(
                    'weight_decay', base_wd) * float(cfg['latent_decay_mult'])
            elif id(param) in binarizer_params:
                group['lr'] = group.get('lr',
                                        base_lr) * binarizer_params[id(param)]
                group['weight_decay'] = group.get(
                    'weight_decay', base_wd) * float(
                        cfg['binarizer_decay_mult'])
        optimizer_cfg['params'] = _merge_groups(groups)
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        return OPTIM_WRAPPERS.build(
            wrapper_cfg, default_args=dict(optimizer=optimizer))


def _merge_groups(groups: List[dict]) -> List[dict]:
    """Merge one-parameter groups with identical settings (fewer groups)."""
    merged: Dict[tuple, dict] = {}
    for group in groups:
        key = tuple(sorted((k, v) for k, v in group.items() if k != 'params'))
        if key not in merged:
            merged[key] = dict(group, params=[])
        merged[key]['params'].extend(group['params'])
    return list(merged.values())


__all__ = [
    'BinaryOptimWrapperConstructor', 'latent_lr_multipliers',
    'BINARY_PARAMWISE_DEFAULTS'
]
