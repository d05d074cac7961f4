# Copyright (c) mmbinpc contributors. All rights reserved.
"""Run a packed model (see :mod:`mmbinpc.deploy.export`) on the CPU."""
import os
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from mmbinpc.binary.aggregation import PointPool
from mmbinpc.binary.layers import is_binary_layer
from mmbinpc.errors import PackedFormatError
from .export import _ACT_TYPES, _BN_TYPES
from .format import REEXPORT_FIX, read_packed
from .packed_layers import FusedPoolTail, PackedBinaryLayer
from .plan import PointNetPlan, Unplannable
from .support import NotSupportedError, check_supported

#: ``engine`` values of :meth:`PackedModel.load`.
ENGINES = ('auto', 'plan', 'modules')

_BUILD_ERRORS = (KeyError, TypeError, ValueError, AttributeError, RuntimeError,
                 IndexError, AssertionError, ZeroDivisionError, OverflowError,
                 NotImplementedError)


def _build_model(model_cfg: Dict[str, Any], path: str,
                 stored_values: int) -> nn.Module:
    """Build the architecture described by a (validated) JSON config.

    The config is a plain dict of registered type names (checked by
    :func:`~mmbinpc.deploy.format.check_model_config`); it is turned into
    an mmengine ``ConfigDict`` without parsing any text, so nothing in the
    file is executed or imported. It is first built on PyTorch's ``meta``
    device (no memory) and refused if it has far more parameters than the
    file stores, so an edited width cannot make loading allocate
    gigabytes.
    """
    from mmengine.config import ConfigDict

    import mmbinpc  # noqa: F401  (registers the models)
    from mmbinpc.binary import build_binarized
    try:
        with torch.device('meta'):
            probe = build_binarized(ConfigDict(model_cfg))
        size = sum(p.numel() for p in probe.parameters())
        if size > 2 * stored_values + 4096:
            raise PackedFormatError(
                path, f'its architecture has {size:,} parameters but the '
                f'file stores {stored_values:,} values', REEXPORT_FIX)
        return build_binarized(ConfigDict(model_cfg))
    except _BUILD_ERRORS as err:
        if isinstance(err, PackedFormatError):
            raise
        raise PackedFormatError(
            path, f'its architecture (meta.model_cfg) cannot be built: '
            f'{type(err).__name__}: {err}', REEXPORT_FIX) from None


_LAYER_TYPES = dict(conv1d=nn.Conv1d, conv2d=nn.Conv2d, linear=nn.Linear)


def _replace(model: nn.Module, modules: Dict[str, nn.Module], name: str,
             kinds: Tuple[type,
                          ...], new: nn.Module, path: str, what: str) -> None:
    """Swap ``name`` for ``new`` after checking it is one of ``kinds``."""
    module = modules.get(name)
    if not isinstance(module, kinds):
        found = 'missing' if module is None else type(module).__name__
        raise PackedFormatError(
            path, f'the {what} {name!r} named by the file is {found} in the '
            f'architecture built from its config', REEXPORT_FIX)
    model.set_submodule(name, new)


def _swap_binary_layer(model: nn.Module, modules: Dict[str, nn.Module],
                       entry: Dict[str, Any], arrays: Dict[str, np.ndarray],
                       path: str) -> None:
    """Put the packed form of one binary layer (and its fusions) in place.

    ``entry`` and ``arrays`` are validated against each other already
    (:func:`~mmbinpc.deploy.format.read_packed`); here they are checked
    against the module they replace.
    """
    name = entry['name']
    module = modules.get(name)
    if module is None or not is_binary_layer(module):
        raise PackedFormatError(
            path, f'layer {name!r} is binary in the file but '
            f'{"missing" if module is None else "not binary"} in the '
            f'architecture built from its config', REEXPORT_FIX)
    if not isinstance(module, _LAYER_TYPES[entry['kind']]) or \
            module.binarizer.name != entry['binarizer'] or \
            tuple(module.weight.shape[:2]) != (entry['out_channels'],
                                               entry['in_channels']):
        raise PackedFormatError(
            path, f'layer {name!r} does not match the rebuilt architecture '
            f'({type(module).__name__}, {module.binarizer.name}, '
            f'{tuple(module.weight.shape)}; the file says {entry["kind"]}, '
            f'{entry["binarizer"]}, {entry["out_channels"]}x'
            f'{entry["in_channels"]})', REEXPORT_FIX)
    act, pool = entry['act'], entry['pool']
    packed = PackedBinaryLayer(
        entry['kind'],
        entry['in_channels'],
        entry['out_channels'],
        arrays[f'{name}.weight_words'],
        arrays[f'{name}.out_scale'],
        arrays[f'{name}.out_shift'],
        threshold=arrays.get(f'{name}.threshold'),
        scale_mode=entry['scale_mode'],
        clamp=None if act is None else act['bounds'],
        pool=pool is not None,
        name=name)
    model.set_submodule(name, packed)
    if entry['folded_bn']:
        _replace(model, modules, entry['folded_bn'], _BN_TYPES, nn.Identity(),
                 path, 'folded BatchNorm')
    if act is not None:
        _replace(model, modules, act['name'], _ACT_TYPES, nn.Identity(), path,
                 'fused activation')
    if pool is not None:
        _replace(model, modules, pool['name'], (PointPool, ),
                 FusedPoolTail(packed, pool['mode']), path, 'fused pooling')


class PackedModel:
    """A bit-packed binary point-cloud model running on the CPU.

    Every binary layer of the architecture is replaced by a
    :class:`~mmbinpc.deploy.packed_layers.PackedBinaryLayer` (XNOR +
    popcount on 64-bit words, activations binarized and packed on the fly,
    BatchNorm folded into its output affine map, a following Hardtanh/ReLU
    fused as a clamp and a following global max/EMA pooling fused as an
    on-the-fly max); FP32 layers (the first and last ones, with their
    BatchNorm folded into the weights) and the rest of the forward code
    (T-Net matrix products, remaining pooling) run in PyTorch.

    A PointNet classifier runs by default on a
    :class:`~mmbinpc.deploy.plan.PointNetPlan` (the ``'plan'`` engine: the
    same arithmetic without the module dispatch, channel-last rows, and
    binary layers that write the next layer's packed input); other
    architectures run the model's own forward code (``'modules'``).

    Use :meth:`load`; call the instance on points (B, N, C) to get logits.

    Args:
        model (nn.Module): The architecture with packed layers in place.
        meta (dict): The file's description.
        path (str): The file it came from.
        plan (PointNetPlan, optional): The lean forward pass; None runs
            ``model``'s forward code.
    """

    def __init__(self,
                 model: nn.Module,
                 meta: Dict[str, Any],
                 path: str = '',
                 plan: Optional[PointNetPlan] = None) -> None:
        self.model = model
        self.meta = meta
        self.path = path
        self.plan = plan

    @property
    def engine(self) -> str:
        """``'plan'`` or ``'modules'``: what :meth:`__call__` runs."""
        return 'modules' if self.plan is None else 'plan'

    # ------------------------------------------------------------------ #
    @classmethod
    def load(cls, path: str, engine: str = 'auto') -> 'PackedModel':
        """Load a file written by :func:`~mmbinpc.deploy.export_packed`.

        Args:
            path (str): The packed file.
            engine (str): ``'plan'`` (the lean PointNet forward pass; an
                error if the architecture is not one), ``'modules'`` (the
                model's forward code with packed layers) or ``'auto'`` (the
                plan where possible). Defaults to ``'auto'``.

        Returns:
            PackedModel: Ready to run (eval mode, no gradients).
        """
        if engine not in ENGINES:
            raise ValueError(f'unknown packed engine {engine!r}; valid: '
                             f'{", ".join(ENGINES)}')
        meta, arrays = read_packed(path)
        stored = sum(e['in_channels'] * e['out_channels']
                     for e in meta['binary_layers']) + sum(
                         a.size
                         for k, a in arrays.items() if k.startswith('fp/'))
        model = _build_model(meta['model_cfg'], path, stored)
        model.eval()
        try:
            check_supported(model)
        except NotSupportedError as err:
            raise PackedFormatError(path, str(err), REEXPORT_FIX) from None
        modules = dict(model.named_modules())
        for entry in meta['binary_layers']:
            _swap_binary_layer(model, modules, entry, arrays, path)
        for entry in meta['fp_folded']:
            _replace(model, modules, entry['folded_bn'], _BN_TYPES,
                     nn.Identity(), path, 'folded BatchNorm')
        state = {
            k[3:]: torch.from_numpy(np.array(v))
            for k, v in arrays.items() if k.startswith('fp/')
        }
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as err:  # a tensor of another shape
            raise PackedFormatError(
                path, f'its FP32 tensors do not fit the architecture: '
                f'{str(err).splitlines()[-1].strip()}', REEXPORT_FIX) from None
        missing = [
            k for k in missing if not k.endswith('num_batches_tracked')
            and not k.startswith('data_preprocessor.')
        ]
        if missing or unexpected:
            raise PackedFormatError(
                path, f'its FP32 tensors do not match the architecture: '
                f'missing {missing[:5]}, unexpected {unexpected[:5]}',
                REEXPORT_FIX)
        not_packed = [
            n for n, m in model.named_modules() if is_binary_layer(m)
        ]
        if not_packed:
            raise PackedFormatError(
                path, f'binary layers without packed weights: '
                f'{not_packed[:5]}', REEXPORT_FIX)
        for p in model.parameters():
            p.requires_grad_(False)
        plan = None
        if engine != 'modules':
            try:
                plan = PointNetPlan(model)
            except Unplannable as err:
                if engine == 'plan':
                    raise ValueError(f'{path}: the plan engine cannot run '
                                     f'this model: {err}; use '
                                     f"engine='modules'") from None
        return cls(model, meta, path, plan)

    # ------------------------------------------------------------------ #
    @property
    def packed_layers(self) -> Dict[str, PackedBinaryLayer]:
        """Name -> packed binary layer, in model order."""
        return {
            n: m
            for n, m in self.model.named_modules()
            if isinstance(m, PackedBinaryLayer)
        }

    @property
    def file_bytes(self) -> int:
        """Size of the packed file."""
        return os.path.getsize(self.path) if self.path else 0

    def __call__(self, points: Union[Tensor, np.ndarray]) -> Tensor:
        """Logits for a batch of point clouds.

        Args:
            points (Tensor | np.ndarray): (B, N, C) float points (or (N, C)
                for one cloud).

        Returns:
            Tensor: Logits (B, num_classes).
        """
        if isinstance(points, np.ndarray):
            points = torch.from_numpy(points)
        if not isinstance(points, Tensor):
            raise TypeError(f'points must be a tensor or an array, got '
                            f'{type(points).__name__}')
        if points.dim() == 2:
            points = points.unsqueeze(0)
        if points.dim() != 3:
            raise ValueError(f'points must be (B, N, C), got shape '
                             f'{tuple(points.shape)}')
        points = points.detach().to('cpu', torch.float32)
        with torch.no_grad():
            if self.plan is not None:
                return self.plan(points)
            return self.model._forward(dict(points=points))

    forward = __call__

    def predict(self, points: Union[Tensor, np.ndarray]) -> Tensor:
        """Predicted class indices (B,)."""
        return self(points).argmax(dim=-1)

    def __repr__(self) -> str:
        return (f'PackedModel({self.path!r}, '
                f'{len(self.meta["binary_layers"])} packed binary layers, '
                f'engine={self.engine!r})')
