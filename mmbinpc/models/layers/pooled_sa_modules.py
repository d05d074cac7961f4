# Copyright (c) mmbinpc contributors. All rights reserved.
"""Set-abstraction modules whose local pooling is a pooling site.

mmdet3d's SA modules pool the grouped features inline (``_pool_features``:
max or average over the ``K`` neighbours). Each class here is the mmdet3d
module of the same name without the ``Pooled`` prefix, registered in
mmdet3d's ``SA_MODULES``, that pools through a
:class:`~mmbinpc.binary.aggregation.PointPool` child named ``pool`` instead,
so :func:`mmbinpc.binarize` can switch it to EMA and the distiller can read
its output. Same parameters, same state-dict keys, same output in max mode.

A config selects one by ``sa_cfg=dict(type='PooledPointSAModule', ...)``;
:func:`use_pooled_sa_modules` rewrites a model config that way, and
mmbinpc's builders (``type='Binarized'``, :func:`mmbinpc.build_binarized`,
``BinaryDistiller`` for its student and teacher) call it, so configs name
mmdet3d's SA modules as usual.
"""
import copy
import inspect
from typing import Any, Dict, Mapping

from mmdet3d.models.layers.pointnet_modules import (PAConvSAModule,
                                                    PAConvSAModuleMSG,
                                                    PointSAModule,
                                                    PointSAModuleMSG)
from mmdet3d.models.layers.pointnet_modules.builder import SA_MODULES
from mmdet3d.models.layers.pointnet_modules.paconv_sa_module import (
    PAConvCUDASAModule, PAConvCUDASAModuleMSG)
from mmdet3d.registry import MODELS
from mmengine.config import ConfigDict

from mmbinpc.binary.aggregation import POOL_CHILD, LocalPoolSite, PointPool


class _PooledSA(LocalPoolSite):
    """Adds the ``pool`` child after the mmdet3d module is built."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)  # the mmdet3d module's own
        self._add_pool()

    def _add_pool(self) -> None:
        if self.pool_mod not in ('max', 'avg'):
            raise ValueError(f'{type(self).__name__}: pool_mod must be max '
                             f'or avg, got {self.pool_mod!r}')
        mode = 'avg' if self.pool_mod == 'avg' else 'max'
        self.add_module(POOL_CHILD, PointPool(mode=mode, dim=-1))


@SA_MODULES.register_module()
class PooledPointSAModuleMSG(_PooledSA, PointSAModuleMSG):
    """mmdet3d's ``PointSAModuleMSG`` pooling through ``self.pool``."""


@SA_MODULES.register_module()
class PooledPointSAModule(_PooledSA, PointSAModule):
    """mmdet3d's ``PointSAModule`` pooling through ``self.pool``."""


@SA_MODULES.register_module()
class PooledPAConvSAModuleMSG(_PooledSA, PAConvSAModuleMSG):
    """mmdet3d's ``PAConvSAModuleMSG`` pooling through ``self.pool``."""


@SA_MODULES.register_module()
class PooledPAConvSAModule(_PooledSA, PAConvSAModule):
    """mmdet3d's ``PAConvSAModule`` pooling through ``self.pool``."""


@SA_MODULES.register_module()
class PooledPAConvCUDASAModuleMSG(_PooledSA, PAConvCUDASAModuleMSG):
    """mmdet3d's ``PAConvCUDASAModuleMSG`` pooling through ``self.pool``."""


@SA_MODULES.register_module()
class PooledPAConvCUDASAModule(_PooledSA, PAConvCUDASAModule):
    """mmdet3d's ``PAConvCUDASAModule`` pooling through ``self.pool``."""


#: mmdet3d SA module name -> its pooled variant's name
POOLED_SA_MODULES: Dict[str, str] = {
    base.__name__: f'Pooled{base.__name__}'
    for base in (PointSAModuleMSG, PointSAModule, PAConvSAModuleMSG,
                 PAConvSAModule, PAConvCUDASAModuleMSG, PAConvCUDASAModule)
}


def _default_sa_cfg(type_name: Any) -> Any:
    """The ``sa_cfg`` default of a registered model type, if it has one."""
    if not isinstance(type_name, str):
        return None
    cls = MODELS.get(type_name)
    if cls is None or not inspect.isclass(cls):
        return None
    param = inspect.signature(cls.__init__).parameters.get('sa_cfg')
    if param is None or not isinstance(param.default, Mapping):
        return None
    return dict(param.default)


def use_pooled_sa_modules(cfg: Any) -> Any:
    """A copy of a (model) config with mmbinpc's pooled SA modules.

    Every dict whose ``type`` is one of mmdet3d's SA modules (an
    ``sa_cfg``, or any other SA module config) gets the pooled variant's
    type; a model that takes ``sa_cfg`` but whose config leaves it out gets
    its default ``sa_cfg``, rewritten the same way. Everything else is
    copied unchanged.

    Args:
        cfg (Any): A config dict (or list, or value).

    Returns:
        Any: The rewritten copy (``ConfigDict`` where the input had one).
    """
    if isinstance(cfg, Mapping):
        out = {key: use_pooled_sa_modules(value) for key, value in cfg.items()}
        if out.get('type') in POOLED_SA_MODULES:
            out['type'] = POOLED_SA_MODULES[out['type']]
        if 'sa_cfg' not in out:
            default = _default_sa_cfg(out.get('type'))
            if default is not None and default.get(
                    'type') in POOLED_SA_MODULES:
                out['sa_cfg'] = use_pooled_sa_modules(default)
        # models read parts of a ConfigDict by attribute (e.g. test_cfg.mode)
        return ConfigDict(out) if isinstance(cfg, ConfigDict) else out
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(use_pooled_sa_modules(v) for v in cfg)
    return copy.deepcopy(cfg)
