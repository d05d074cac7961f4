# Copyright (c) mmbinpc contributors. All rights reserved.
"""Run a packed model (see :mod:`mmbinpc.deploy.export`) on the CPU."""
import os
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch
from torch import Tensor, nn

from mmbinpc.analysis.complexity import is_binary_layer
from .export import read_meta
from .packed_layers import FusedPoolTail, PackedBinaryLayer
from .plan import PointNetPlan, Unplannable
from .support import check_supported

#: ``engine`` values of :meth:`PackedModel.load`.
ENGINES = ('auto', 'plan', 'modules')


def _build_model(cfg_text: str) -> nn.Module:
    from mmengine.config import Config

    import mmbinpc  # noqa: F401  (registers the models)
    from mmdet3d.registry import MODELS
    cfg = Config.fromstring(cfg_text, '.py')
    return MODELS.build(cfg.model)


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

    def __init__(self, model: nn.Module, meta: Dict[str, Any],
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
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f'packed model {path!r} not found; write one with '
                f'tools/deploy/export_packed.py CONFIG CHECKPOINT OUT')
        meta = read_meta(path)
        model = _build_model(meta['model_cfg'])
        model.eval()
        check_supported(model)
        modules = dict(model.named_modules())
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        replaced: List[str] = []
        for entry in meta['binary_layers']:
            name = entry['name']
            module = modules.get(name)
            if module is None or not is_binary_layer(module):
                raise ValueError(
                    f'{path}: layer {name!r} is binary in the file but '
                    f'{"missing" if module is None else "not binary"} in the '
                    f'architecture built from its config')
            if module.binarizer.name != entry['binarizer'] or \
                    module.weight.shape[:2] != (entry['out_channels'],
                                                entry['in_channels']):
                raise ValueError(
                    f'{path}: layer {name!r} does not match the rebuilt '
                    f'architecture ({module.binarizer.name}, '
                    f'{tuple(module.weight.shape)} vs {entry})')
            act, pool = entry.get('act'), entry.get('pool')
            packed = PackedBinaryLayer(
                entry['kind'], entry['in_channels'], entry['out_channels'],
                arrays[f'{name}.weight_words'], arrays[f'{name}.out_scale'],
                arrays[f'{name}.out_shift'],
                threshold=arrays.get(f'{name}.threshold'),
                scale_mode=entry['scale_mode'],
                clamp=None if act is None else act['bounds'],
                pool=pool is not None, name=name)
            model.set_submodule(name, packed)
            replaced.append(name)
            if entry['folded_bn']:
                model.set_submodule(entry['folded_bn'], nn.Identity())
                replaced.append(entry['folded_bn'])
            if act is not None:
                model.set_submodule(act['name'], nn.Identity())
            if pool is not None:
                model.set_submodule(pool['name'],
                                    FusedPoolTail(packed, pool['mode']))
        for entry in meta['fp_folded']:
            model.set_submodule(entry['folded_bn'], nn.Identity())
            replaced.append(entry['folded_bn'])
        state = {
            k[3:]: torch.from_numpy(np.array(v))
            for k, v in arrays.items() if k.startswith('fp/')
        }
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [
            k for k in missing if not k.endswith('num_batches_tracked')
            and not k.startswith('data_preprocessor.')
        ]
        if missing or unexpected:
            raise ValueError(f'{path}: state does not match the rebuilt '
                             f'architecture; missing {missing[:5]}, '
                             f'unexpected {unexpected[:5]}')
        not_packed = [
            n for n, m in model.named_modules() if is_binary_layer(m)
        ]
        if not_packed:
            raise ValueError(f'{path}: binary layers without packed weights: '
                             f'{not_packed[:5]}')
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
