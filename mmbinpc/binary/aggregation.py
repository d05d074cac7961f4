# Copyright (c) mmbinpc contributors. All rights reserved.
"""Point aggregation (pooling) modules, including entropy-maximizing EMA.

Every pooling site of a point model that mmbinpc knows about is a
:class:`PointPool` module (our own models use it directly; mmdet3d's pooling
sites get one attached by :func:`mmbinpc.binary.convert.binarize`). That makes
the sites switchable between ``max`` and ``ema`` and gives the distiller one
module per site whose forward output is the pooled tensor.
"""
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmdet3d.registry import MODELS
from torch import Tensor, nn

from mmbinpc.stats import ema_offset

POOL_MODES = ('max', 'ema', 'avg', 'max+avg', 'ema+avg')


class _SharedMax(torch.autograd.Function):
    """``x.amax(dim)`` with the same gradient (shared equally by the tied
    maxima) in fewer passes over ``x``: autograd's ``amax`` backward builds
    the tie mask, converts it to floats twice and divides; this one writes
    the mask as floats once, counts the ties on it and scales it in place."""

    @staticmethod
    def forward(ctx, x: Tensor, dim: int, keepdim: bool) -> Tensor:
        out = x.amax(dim=dim, keepdim=True)
        ctx.save_for_backward(x, out)
        ctx.dim = dim
        return out if keepdim else out.squeeze(dim)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, out = ctx.saved_tensors
        if grad.dim() < x.dim():
            grad = grad.unsqueeze(ctx.dim)
        tied = torch.empty_like(x)
        torch.eq(x, out, out=tied)  # 1.0 at the maxima, 0.0 elsewhere
        count = tied.sum(dim=ctx.dim, keepdim=True)
        return tied.mul_(grad / count), None, None


def shared_max(x: Tensor, dim: int = -1, keepdim: bool = False) -> Tensor:
    """``x.amax(dim, keepdim)``, whose gradient the tied maxima share
    equally, with a cheaper backward (:class:`_SharedMax`)."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _SharedMax.apply(x, dim, keepdim)
    return x.amax(dim=dim, keepdim=keepdim)


@MODELS.register_module()
class PointPool(nn.Module):
    """Reduce point features over one axis (a pooling site).

    Args:
        mode (str): One of ``'max'``, ``'ema'`` (max − δ*(n), with n the pooled
            size at run time), ``'avg'``, ``'max+avg'`` and ``'ema+avg'`` (the
            two reductions concatenated along ``cat_dim``). Defaults to 'max'.
        dim (int): Axis to reduce. Defaults to -1.
        keepdim (bool): Keep the reduced axis with size 1. Defaults to False.
        cat_dim (int): Channel axis for the concatenating modes. Defaults to 1.
    """

    def __init__(self,
                 mode: str = 'max',
                 dim: int = -1,
                 keepdim: bool = False,
                 cat_dim: int = 1) -> None:
        super().__init__()
        if mode not in POOL_MODES:
            raise ValueError(f'unknown aggregation mode {mode!r}; valid '
                             f'modes: {", ".join(POOL_MODES)}')
        self.mode = mode
        self.dim = dim
        self.keepdim = keepdim
        self.cat_dim = cat_dim

    def _max(self, x: Tensor, ema: bool) -> Tensor:
        # amax: no argmax indices to compute (several times faster on the
        # (B, 1024, N) maps of PointNet); ties share the gradient equally.
        out = shared_max(x, self.dim, self.keepdim)
        if ema:
            out = out - ema_offset(x.shape[self.dim])
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Pool ``x`` over ``self.dim``.

        Args:
            x (Tensor): Features, e.g. (B, C, N) or (B, C, M, K).

        Returns:
            Tensor: The pooled features.
        """
        mode = self.mode
        if mode in ('max', 'ema'):
            return self._max(x, ema=mode == 'ema')
        avg = x.mean(dim=self.dim, keepdim=self.keepdim)
        if mode == 'avg':
            return avg
        return torch.cat([self._max(x, ema=mode == 'ema+avg'), avg],
                         dim=self.cat_dim)

    def extra_repr(self) -> str:
        return f'mode={self.mode!r}, dim={self.dim}'


@MODELS.register_module()
class EMAMaxPool(PointPool):
    """Entropy-maximizing max pooling: ``max(x, dim) − δ*(n)``.

    Args:
        dim (int): Axis to reduce. Defaults to -1.
        keepdim (bool): Keep the reduced axis. Defaults to False.
    """

    def __init__(self, dim: int = -1, keepdim: bool = False) -> None:
        super().__init__(mode='ema', dim=dim, keepdim=keepdim)


def to_ema(mode: str) -> str:
    """The EMA counterpart of a pooling mode (``'max'`` → ``'ema'``)."""
    return {'max': 'ema', 'max+avg': 'ema+avg'}.get(mode, mode)


def to_max(mode: str) -> str:
    """The plain-max counterpart of a pooling mode (``'ema'`` → ``'max'``)."""
    return {'ema': 'max', 'ema+avg': 'max+avg'}.get(mode, mode)


PoolLike = Union[PointPool, nn.Module]

# --------------------------------------------------------------------------
# mmdet3d's pooling sites.
#
# mmdet3d pools inline: ``PointSAModule``/``PointSAModuleMSG`` (and the PAConv
# SA modules built on them) and ``DGCNNGFModule`` in ``_pool_features`` (local
# max over the K grouped neighbours), ``DGCNNFAModule`` in ``forward`` (global
# max over the points).
#
# * SA modules have a registry (mmdet3d's ``SA_MODULES``): mmbinpc registers
#   pooled variants there (:mod:`mmbinpc.models.layers.pooled_sa_modules`)
#   and its builders select them by config, so they are built with their
#   ``PointPool``.
# * DGCNN's GF/FA modules have none: :func:`attach_pooling` gives each a
#   ``PointPool`` child named ``pool`` and switches the instance (not the
#   mmdet3d class) to a subclass whose pooling goes through that child. The
#   subclasses are created once per mmdet3d class and live in this module, so
#   adapted models can still be deep-copied and pickled. Their copied
#   forward code is pinned to mmdet3d 1.4.0 by tests.
# --------------------------------------------------------------------------
POOL_CHILD = 'pool'
_ADAPTED: Dict[type, type] = {}


class LocalPoolSite:
    """Mixin for modules pooling (B, C, N, K) -> (B, C, N) in _pool_features.

    mmdet3d's ``PointSAModule*`` (``pool_mod``) and ``DGCNNGFModule``
    (``pool_mode``) pool over the last axis; with this mixin their ``pool``
    child (a :class:`PointPool`) does it instead, in whichever mode it is
    switched to.
    """

    def _pool_features(self, features: Tensor) -> Tensor:
        return getattr(self, POOL_CHILD)(features).contiguous()


class _GlobalPoolAdapter:
    """Mixin for ``DGCNNFAModule``: global pooling through a PointPool.

    Same computation as mmdet3d's ``DGCNNFAModule.forward``: the per-point
    features of all graph layers are concatenated, run through the MLP,
    pooled over all points, and the pooled vector is repeated to every point
    and concatenated with the concatenated input features.
    """

    def forward(self, points):
        if len(points) <= 1:
            return points
        feats = torch.cat(points[1:], dim=-1).transpose(1, 2).contiguous()
        mlp_out = self.mlps(feats)  # (B, C, N)
        pooled = getattr(self, POOL_CHILD)(mlp_out)  # (B, C', 1)
        if pooled.dim() == mlp_out.dim() - 1:
            pooled = pooled.unsqueeze(-1)
        pooled = pooled.expand(-1, -1, mlp_out.shape[-1])
        out = torch.cat([pooled, feats], dim=1)
        return out.transpose(1, 2).contiguous()


def _site_kinds() -> List[Tuple[type, type, str]]:
    """(mmdet3d base class, adapter mixin, attribute holding its pool mode)."""
    from mmdet3d.models.layers.dgcnn_modules.dgcnn_fa_module import \
        DGCNNFAModule
    from mmdet3d.models.layers.dgcnn_modules.dgcnn_gf_module import \
        BaseDGCNNGFModule
    return [(BaseDGCNNGFModule, LocalPoolSite, 'pool_mode'),
            (DGCNNFAModule, _GlobalPoolAdapter, '')]


def is_pool_site_module(module: nn.Module) -> bool:
    """Whether ``module`` is an mmdet3d module pooling through ``pool``."""
    return isinstance(module, (LocalPoolSite, _GlobalPoolAdapter))


def _check_sa_module(name: str, module: nn.Module) -> None:
    """SA modules must be built pooled (they have a registry)."""
    from mmdet3d.models.layers.pointnet_modules.point_sa_module import \
        BasePointSAModule
    if isinstance(module,
                  BasePointSAModule) and not isinstance(module, LocalPoolSite):
        cls = type(module).__name__
        raise TypeError(
            f'{name or "the model"} is mmdet3d\'s {cls}, which pools '
            f'inline, so it has no pooling site to binarize or distil. '
            f'Build the model with sa_cfg=dict(type=\'Pooled{cls}\', ...), '
            'or through mmbinpc.build_binarized, type=\'Binarized\' or '
            'BinaryDistiller, which select it (see mmbinpc.models.layers.'
            'use_pooled_sa_modules)')


def _adapted_class(cls: type, mixin: type) -> type:
    """The cached per-class adapter subclass of an mmdet3d module class."""
    if cls not in _ADAPTED:
        name = f'Pooled{cls.__name__}'
        adapted = type(
            name, (mixin, cls), {
                '__module__':
                __name__,
                '__doc__':
                f'{cls.__name__} pooling through a PointPool child '
                f'(see mmbinpc.binary.aggregation.attach_pooling).'
            })
        _ADAPTED[cls] = adapted
        globals()[name] = adapted
    return _ADAPTED[cls]


def _site_kind(module: nn.Module, kinds: List[Tuple[type, type,
                                                    str]]) -> Optional[tuple]:
    for base, mixin, attr in kinds:
        if isinstance(module, base):
            return base, mixin, attr
    return None


def attach_pooling(model: nn.Module, mode: str = 'max') -> List[str]:
    """Give every mmdet3d pooling site of ``model`` a PointPool child.

    Sites: ``DGCNNGFModule`` (local max over the k neighbours) and
    ``DGCNNFAModule`` (global max). Each gets a child ``pool`` and its
    instance is switched to a subclass that pools through it; mmdet3d itself
    is not modified. Idempotent: sites that already have their PointPool are
    left as they are. Set-abstraction modules must already be mmbinpc's
    pooled variants (built from a config rewritten by
    :func:`mmbinpc.models.layers.use_pooled_sa_modules`); a stock mmdet3d SA
    module raises a ``TypeError`` that says so.

    Args:
        model (nn.Module): A built model.
        mode (str): Mode of newly attached max sites (``'max'`` or
            ``'ema'``). Sites configured for average pooling get
            ``'avg'``. Defaults to 'max'.

    Returns:
        list[str]: Names of all PointPool modules of ``model`` (attached now,
        attached before, or part of the model), in model order.
    """
    if mode not in POOL_MODES:
        raise ValueError(f'unknown aggregation mode {mode!r}; valid modes: '
                         f'{", ".join(POOL_MODES)}')
    kinds = _site_kinds()
    for name, module in list(model.named_modules()):
        _check_sa_module(name, module)
        if is_pool_site_module(module):
            continue
        kind = _site_kind(module, kinds)
        if kind is None:
            continue
        _, mixin, attr = kind
        site_mode = getattr(module, attr, 'max') if attr else 'max'
        if site_mode not in ('max', 'avg'):
            raise ValueError(f'{type(module).__name__} pools with '
                             f'{site_mode!r}, which mmbinpc cannot adapt')
        if hasattr(module, POOL_CHILD) and not isinstance(
                getattr(module, POOL_CHILD), PointPool):
            raise RuntimeError(f'{type(module).__name__} already has an '
                               f'attribute {POOL_CHILD!r}; cannot attach a '
                               f'PointPool')
        pool_mode = 'avg' if site_mode == 'avg' else mode
        module.__class__ = _adapted_class(type(module), mixin)
        module.add_module(POOL_CHILD, PointPool(mode=pool_mode, dim=-1))
    return list(pooling_sites(model))


def pooling_sites(model: nn.Module) -> Dict[str, PointPool]:
    """All PointPool modules of ``model`` by name, in model order.

    Args:
        model (nn.Module): A model (adapted with :func:`attach_pooling` or
            built from mmbinpc's own modules).

    Returns:
        dict[str, PointPool]: Name -> pooling site.
    """
    return {
        name: m
        for name, m in model.named_modules() if isinstance(m, PointPool)
    }


def set_pooling_mode(model: nn.Module, aggregation: str) -> Dict[str, str]:
    """Switch every pooling site to plain max or to EMA.

    ``'ema'`` maps each site through :func:`to_ema` (``max`` → ``ema``,
    ``max+avg`` → ``ema+avg``; ``avg`` stays), ``'max'`` through
    :func:`to_max`.

    Args:
        model (nn.Module): The model; call :func:`attach_pooling` first for
            mmdet3d models.
        aggregation (str): ``'max'`` or ``'ema'``.

    Returns:
        dict[str, str]: Site name -> its new mode.
    """
    if aggregation not in ('max', 'ema'):
        raise ValueError(f'unknown aggregation {aggregation!r}; valid: '
                         f'max, ema')
    convert = to_ema if aggregation == 'ema' else to_max
    modes = {}
    for name, site in pooling_sites(model).items():
        site.mode = convert(site.mode)
        modes[name] = site.mode
    return modes
