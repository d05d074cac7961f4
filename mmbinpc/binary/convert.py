# Copyright (c) mmbinpc contributors. All rights reserved.
"""``binarize()``: turn a built point model into a binary one, in place.

The converter walks the model, swaps every ``nn.Conv1d``/``nn.Conv2d``/
``nn.Linear`` (also inside mmcv ``ConvModule``s and as mmdet3d decode heads'
``conv_seg``) for :class:`BinConv1d`/:class:`BinConv2d`/:class:`BinLinear`
with a copy of its FP32 weights, binarizes PAConv's weight bank, and switches
every pooling site to plain max or EMA. See ``docs/binarization.md``.

A model config names the options in one of two ways, neither of which
changes how OpenMMLab registries build anything else:

* ``model = dict(type='Binarized', model=dict(...), method='lsr',
  aggregation='ema')``: a registered model factory
  (:mod:`mmbinpc.models.binarized`) that builds the inner model and returns
  it binarized (state-dict keys as the inner model's);
* ``binarize=dict(...)`` inside a :class:`BinaryDistiller` (for its student),
  or on any model config handed to :func:`build_binarized` /
  :func:`expand_binarize_key` (what mmbinpc's tools do with the configs they
  load).
"""
import copy
import fnmatch
import logging
import re
from dataclasses import dataclass, field
from typing import (Any, Dict, Iterable, List, Mapping, Optional, Sequence,
                    Tuple, Union)

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from .aggregation import (PointPool, attach_pooling, is_pool_site_module,
                          set_pooling_mode)
from .binarizers import BinarizerCfg, build_binarizer, check_binarizer_name
from .layers import BINARY_LAYERS, BinaryMixin, from_float

AGGREGATIONS = ('max', 'ema')
KEEP_RULES = ('first', 'last')
ACTIVATIONS = ('hardtanh', 'identity')
DROPOUT_RULES = ('remove', 'keep')
DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
            nn.AlphaDropout)
#: Activations that map every negative input to (almost) one value, so a
#: sign taken after them carries (almost) no information.
RECTIFIERS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU)


@dataclass
class LayerEntry:
    """One row of a :class:`BinarizeReport`.

    Attributes:
        name (str): Module name in the model.
        type (str): Class name of the original (FP) module.
        binarizer (str, optional): Binarizer name, None for FP modules.
        reason (str): Why the module was kept/skipped ('' when converted).
    """

    name: str
    type: str
    binarizer: Optional[str] = None
    reason: str = ''


@dataclass
class BinarizeReport:
    """What :func:`binarize` did.

    Attributes:
        converted (list[LayerEntry]): Layers now binary.
        kept_fp (list[LayerEntry]): Layers kept FP by ``keep_fp``.
        skipped (list[LayerEntry]): Layers left FP by ``skip`` or because
            they cannot be binarized.
        pooling_sites (list[str]): Names of all PointPool modules.
        pooling_modes (dict[str, str]): Site name -> mode after conversion.
        activations (dict[str, tuple[str, str]]): Replaced activation module
            name -> (old type, new type).
        removed (dict[str, str]): Modules replaced by ``nn.Identity`` (name
            -> why), e.g. dropout feeding a binary layer.
        method (str): Default binarizer.
        aggregation (str): ``'max'`` or ``'ema'``.
    """

    converted: List[LayerEntry] = field(default_factory=list)
    kept_fp: List[LayerEntry] = field(default_factory=list)
    skipped: List[LayerEntry] = field(default_factory=list)
    pooling_sites: List[str] = field(default_factory=list)
    pooling_modes: Dict[str, str] = field(default_factory=dict)
    activations: Dict[str, Tuple[str, str]] = field(default_factory=dict)
    removed: Dict[str, str] = field(default_factory=dict)
    method: str = ''
    aggregation: str = ''

    def summary(self) -> str:
        """One line with the counts."""
        return (f'binarize(method={self.method!r}, aggregation='
                f'{self.aggregation!r}): {len(self.converted)} binary, '
                f'{len(self.kept_fp)} kept FP, {len(self.skipped)} skipped, '
                f'{len(self.pooling_sites)} pooling sites, '
                f'{len(self.activations)} activations replaced, '
                f'{len(self.removed)} dropouts removed')

    def rows(self) -> List[Tuple[str, str, str, str]]:
        """(name, type, precision, note) for every module, in model order."""
        rows = []
        for entry in self.converted:
            rows.append((entry.name, entry.type, f'1-bit {entry.binarizer}',
                         entry.reason))
        for entry in self.kept_fp:
            rows.append((entry.name, entry.type, 'FP32', entry.reason))
        for entry in self.skipped:
            rows.append(
                (entry.name, entry.type, 'FP32 (skipped)', entry.reason))
        for name, (old, new) in self.activations.items():
            rows.append((name, old, f'-> {new}', 'activation'))
        for name, why in self.removed.items():
            rows.append((name, 'Dropout', '-> Identity', why))
        order = {name: i for i, name in enumerate(self._order)}
        rows.sort(key=lambda r: order.get(r[0], len(order)))
        for name in self.pooling_sites:
            rows.append((name, 'PointPool', self.pooling_modes.get(name, ''),
                         'pooling site'))
        return rows

    _order: List[str] = field(default_factory=list, repr=False)

    def __str__(self) -> str:
        header = ('Module', 'Type', 'Precision', 'Note')
        rows = self.rows()
        widths = [
            max(len(header[i]), *(len(r[i])
                                  for r in rows)) if rows else len(header[i])
            for i in range(4)
        ]
        line = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'

        def fmt(row):
            return '| ' + ' | '.join(
                cell.ljust(w) for cell, w in zip(row, widths)) + ' |'

        out = [self.summary(), line, fmt(header), line.replace('-', '=')]
        out += [fmt(r) for r in rows]
        out.append(line)
        return '\n'.join(out)


# --------------------------------------------------------------------------
# PAConv weight bank.
# --------------------------------------------------------------------------
def _paconv_classes() -> Tuple[type, type]:
    from mmdet3d.models.layers.paconv.paconv import PAConv, PAConvCUDA
    return PAConv, PAConvCUDA


def _score_net_class() -> type:
    from mmdet3d.models.layers.paconv.paconv import ScoreNet
    return ScoreNet


class _BinaryPAConvMixin(BinaryMixin):
    """Binary forward for mmdet3d's (CPU) ``PAConv``.

    PAConv keeps its kernels in a raw parameter ``weight_bank`` of shape
    ``(C_in, m · C_out)`` and applies it with a matmul over the channels of
    the grouped features. The binary version binarizes that bank like a
    linear weight with ``m · C_out`` output channels (``weight_bank.T``) and
    the grouped input features (channel axis 1); the ScoreNet and the
    score-weighted assembly stay as they are (the ScoreNet's own convs are
    ordinary layers that :func:`binarize` handles separately).
    ``binary_weight()`` is returned in the bank's own layout.
    """

    channel_dim = 1

    def latent_weight(self) -> Tensor:
        return self.weight_bank.t()

    def binary_weight(self) -> Tensor:
        return self.binarizer.forward_weight(self.latent_weight()).t()

    def apply_weight(self,
                     x: Tensor,
                     weight: Tensor,
                     bias: Optional[Tensor] = None) -> Tensor:
        """(B, C, npoint, K) x (m·C_out, C) -> (B, npoint, K, m·C_out)."""
        out = torch.matmul(x.permute(0, 2, 3, 1), weight.t())
        return out if bias is None else out + bias

    def forward(self, inputs):
        from mmdet3d.models.layers.paconv.utils import assign_score
        features, points_xyz = inputs
        batch, _, npoint, k = features.size()
        if self.kernel_input == 'w_neighbor':
            center = features[..., :1].expand(-1, -1, -1, k)
            features = torch.cat((features - center, features), dim=1)
        scores = self.scorenet(self._prepare_scorenet_input(points_xyz))
        self.binarizer.prepare(self, features)
        weight = self.binarizer.forward_weight(self.latent_weight())
        new = self.apply_weight(self.binary_input(features), weight)
        new = new.view(batch, npoint, k, self.num_kernels, -1)
        new = assign_score(scores, new).permute(0, 3, 1, 2).contiguous()
        if self.bn is not None:
            new = self.bn(new)
        if self.activate is not None:
            new = self.activate(new)
        return new, points_xyz

    def extra_repr(self) -> str:
        return (f'weight_bank={tuple(self.weight_bank.shape)}, '
                f'binarizer={self.binarizer.name!r}, '
                f'binarize_input={self.binarize_input}')


_BINARY_PACONV: Dict[type, type] = {}


def binarize_paconv(module: nn.Module,
                    binarizer: BinarizerCfg = 'xnor',
                    binarize_input: bool = True) -> nn.Module:
    """Binarize a PAConv's weight bank in place (the instance is re-classed).

    Args:
        module (nn.Module): An mmdet3d ``PAConv`` (the CPU version).
        binarizer (str | dict): Binarizer.
        binarize_input (bool): Binarize the grouped input features.

    Returns:
        nn.Module: ``module`` itself, now binary.
    """
    paconv, paconv_cuda = _paconv_classes()
    cls = type(module)
    if not isinstance(module, paconv) or isinstance(module, paconv_cuda):
        raise TypeError(f'binarize_paconv needs a CPU PAConv, got '
                        f'{cls.__name__}')
    if cls not in _BINARY_PACONV:
        name = f'Binary{cls.__name__}'
        new_cls = type(name, (_BinaryPAConvMixin, cls),
                       {'__module__': __name__})
        _BINARY_PACONV[cls] = new_cls
        globals()[name] = new_cls
    module.__class__ = _BINARY_PACONV[cls]
    bank = module.weight_bank
    module.binarizer = build_binarizer(
        binarizer, in_channels=bank.shape[0],
        out_channels=bank.shape[1]).to(bank.device)
    module.binarizer.train(module.training)
    module.binarize_input = bool(binarize_input)
    return module


# --------------------------------------------------------------------------
# Layer selection.
# --------------------------------------------------------------------------
def _in_width(module: nn.Module) -> Optional[int]:
    if isinstance(module, nn.Linear):
        return module.in_features
    return getattr(module, 'in_channels', None)


def _out_width(module: nn.Module) -> Optional[int]:
    if isinstance(module, nn.Linear):
        return module.out_features
    return getattr(module, 'out_channels', None)


def _ancestors(name: str) -> List[str]:
    """'a.b.c' -> ['a.b.c', 'a.b', 'a', '']."""
    parts = name.split('.') if name else []
    return ['.'.join(parts[:i]) for i in range(len(parts), -1, -1)]


def _match(pattern: str, name: str) -> bool:
    """Whether ``pattern`` matches ``name`` or one of its parent modules.

    ``re:<regex>`` patterns use :func:`re.fullmatch`; others are fnmatch
    (case-sensitive) patterns.
    """
    names = [n for n in _ancestors(name) if n]
    if pattern.startswith('re:'):
        regex = re.compile(pattern[3:])
        return any(regex.fullmatch(n) for n in names)
    return any(fnmatch.fnmatchcase(n, pattern) for n in names)


def _as_patterns(value: Union[None, str, Iterable[str]],
                 arg: str) -> Tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value, )
    patterns = tuple(value)
    for p in patterns:
        if not isinstance(p, str):
            raise TypeError(f'{arg} entries must be strings, got {p!r}')
    return patterns


def _first_layers(candidates: Dict[str, nn.Module],
                  modules: Mapping[str, nn.Module]) -> Dict[str, str]:
    """Layers that read raw point coordinates (see docs/binarization.md)."""
    names = list(candidates)
    if not names:
        return {}
    raw_width = _in_width(candidates[names[0]])
    found = {}
    for name in names:
        if _in_width(candidates[name]) == raw_width:
            found[name] = f'first: reads the raw input ({raw_width} ch)'
    try:
        score_net = _score_net_class()
    except ImportError:  # pragma: no cover - mmdet3d always has it
        score_net = None
    if score_net is not None:
        for mod_name, module in modules.items():
            if not isinstance(module, score_net):
                continue
            inside = [n for n in names if n.startswith(mod_name + '.')]
            if inside and inside[0] not in found:
                found[inside[0]] = 'first: PAConv ScoreNet reads coordinates'
    return found


def _last_layers(candidates: Dict[str, nn.Module],
                 modules: Mapping[str, nn.Module]) -> Dict[str, str]:
    """The final classifier / segmentation layers."""
    names = list(candidates)
    found = {}
    for name in names:
        if name.rsplit('.', 1)[-1] == 'conv_seg':
            found[name] = 'last: segmentation layer (conv_seg)'
    for mod_name, module in modules.items():
        num_classes = getattr(module, 'num_classes', None)
        if not isinstance(num_classes, int) or isinstance(num_classes, bool):
            continue
        prefix = mod_name + '.' if mod_name else ''
        inside = [
            n for n in names if n.startswith(prefix)
            and _out_width(candidates[n]) == num_classes
        ]
        if inside and inside[-1] not in found:
            found[inside[-1]] = f'last: classifier ({num_classes} classes)'
    if not found and names:
        found[names[-1]] = 'last: final layer'
    return found


def _candidates(
    model: nn.Module
) -> Tuple[Dict[str, nn.Module], List[str], Dict[str, str]]:
    """(convertible layers, already binary layers, unsupported -> reason)."""
    paconv, paconv_cuda = _paconv_classes()
    convertible: Dict[str, nn.Module] = {}
    already: List[str] = []
    unsupported: Dict[str, str] = {}
    for name, module in model.named_modules():
        if isinstance(module, BinaryMixin):
            already.append(name)
        elif type(module) in BINARY_LAYERS:
            convertible[name] = module
        elif isinstance(module, paconv_cuda):
            unsupported[name] = ('PAConvCUDA needs CUDA kernels; use the '
                                 'CPU PAConv (sa_cfg type PAConvSAModule)')
        elif isinstance(module, paconv):
            convertible[name] = module
    return convertible, already, unsupported


def _binarizer_name(cfg: Any) -> str:
    """Validate a binarizer choice (name or dict) and return its name."""
    if isinstance(cfg, Mapping):
        if 'type' not in cfg:
            raise ValueError(f'a binarizer dict needs a "type" key; got '
                             f'{dict(cfg)!r}')
        cfg = cfg['type']
    return check_binarizer_name(cfg)


def _set_child(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition('.')
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _pre_pool_activations(model: nn.Module) -> List[str]:
    """Names of the rectifiers whose output is pooled directly.

    * mmdet3d sites adapted by :func:`attach_pooling`: in an SA /
      graph-feature / feature-aggregation module the output of the last
      layer of each MLP is pooled, so its ``activate`` child (mmcv
      ``ConvModule`` and PAConv both use that name) is found structurally.
    * Other ``PointPool`` sites (mmbinpc's own models): by registration
      order, a rectifier registered after the most recent conv/linear layer
      and before the ``PointPool`` (e.g. ``conv -> bn -> relu -> pool``).
    """
    names = {id(m): n for n, m in model.named_modules()}
    paconv, _ = _paconv_classes()
    layer_types = tuple(BINARY_LAYERS) + (paconv, )
    found = []
    adapted_pools = set()
    for module in model.modules():
        if not is_pool_site_module(module):
            continue
        adapted_pools.add(id(getattr(module, 'pool', None)))
        mlps = getattr(module, 'mlps', None)
        if mlps is None:
            continue
        chains = list(mlps) if isinstance(mlps, nn.ModuleList) else [mlps]
        for chain in chains:
            last = chain[-1] if isinstance(
                chain, nn.Sequential) and len(chain) else chain
            act = getattr(last, 'activate', None)
            if isinstance(act, nn.Module) and id(act) in names:
                found.append(names[id(act)])
    pending = None
    for name, module in model.named_modules():
        if isinstance(module, layer_types):
            pending = None
        elif isinstance(module, RECTIFIERS):
            pending = name
        elif isinstance(module, PointPool) and id(module) not in adapted_pools:
            if pending is not None and pending not in found:
                found.append(pending)
    return found


def _replace_activations(model: nn.Module, activation: str,
                         aggregation: str) -> Dict[str, Tuple[str, str]]:
    """Swap rectifiers for sign-friendly activations (see the docs)."""
    new_type = {'hardtanh': nn.Hardtanh, 'identity': nn.Identity}[activation]
    before_pool = set(_pre_pool_activations(model))
    replaced = {}
    for name, module in list(model.named_modules()):
        if not isinstance(module, RECTIFIERS):
            continue
        cls = new_type
        if aggregation == 'ema' and name in before_pool:
            cls = nn.Identity  # EMA expects the (BN) pre-activation
        _set_child(model, name, cls())
        replaced[name] = (type(module).__name__, cls.__name__)
    return replaced


def _dropouts_before_binary(model: nn.Module) -> Dict[str, str]:
    """Dropout modules whose output is the input of a binary layer.

    Found by registration order: a dropout registered after the most recent
    conv/linear layer and before a binary one (``Linear -> BN -> ReLU ->
    Dropout -> BinLinear``). Dropout zeroes a share of its output in
    training, and ``sign(0) = +1``, so a binary layer after it sees that
    share of its inputs forced to +1 in training but not at test time: the
    statistics its BatchNorm learns in training do not hold at test time.
    """
    paconv, _ = _paconv_classes()
    layer_types = tuple(BINARY_LAYERS) + (paconv, BinaryMixin)
    pending: List[str] = []
    found = {}
    for name, module in model.named_modules():
        if isinstance(module, DROPOUTS):
            pending.append(name)
        elif isinstance(module, layer_types):
            if isinstance(module, BinaryMixin):
                for drop in pending:
                    found[drop] = (f'dropout before binary layer {name} '
                                   '(sign(0) = +1)')
            pending = []
    return found


def _centred_cfg(cfg: BinarizerCfg, name: str) -> BinarizerCfg:
    """``cfg`` with ``center_input=True`` (a name becomes a dict)."""
    if isinstance(cfg, str):
        return dict(type=cfg, center_input=True)
    if isinstance(cfg, Mapping):
        return dict(cfg, center_input=True)
    raise TypeError(f'center_inputs cannot change the ready binarizer '
                    f'{type(cfg).__name__} of {name}; give it as a name or '
                    f'dict(type=...) instead')


def binarize(
    model: nn.Module,
    method: str = 'xnor',
    aggregation: str = 'ema',
    keep_fp: Union[str, Sequence[str], None] = ('first', 'last'),
    skip: Union[str, Sequence[str], None] = (),
    overrides: Optional[Mapping[str, BinarizerCfg]] = None,
    binarize_input: bool = True,
    activation: Optional[str] = 'hardtanh',
    dropout: str = 'remove',
    center_inputs: Union[str, Sequence[str], None] = ()
) -> BinarizeReport:
    """Binarize a built point model in place.

    Args:
        model (nn.Module): The model (mmdet3d or mmbinpc).
        method (str | dict): Default binarizer: ``bnn``, ``xnor``, ``irnet``,
            ``lsr``, ``bireal``, ``react`` or ``dict(type=name, **opts)``.
            Defaults to 'xnor'.
        aggregation (str): ``'max'`` or ``'ema'`` for every pooling site.
            Defaults to 'ema'.
        keep_fp (str | sequence[str] | None): Layers kept FP32. ``'first'``:
            every layer that reads raw point coordinates; ``'last'``: the
            final classifier/segmentation layer(s); other strings are module
            name patterns (fnmatch, or ``'re:<regex>'``), matched against a
            layer's name or any of its parents' names. Defaults to
            ``('first', 'last')``.
        skip (str | sequence[str] | None): Patterns of layers left FP32 and
            reported as skipped. Defaults to ().
        overrides (dict[str, str | dict], optional): Pattern -> binarizer for
            the matching layers; the first matching pattern wins.
        binarize_input (bool): Binarize the layers' inputs too. Defaults to
            True.
        activation (str, optional): What replaces the rectifier activation
            modules (ReLU, ReLU6, LeakyReLU), whose outputs are (almost)
            never negative so that their sign carries no information:
            ``'hardtanh'`` (BiPointNet's choice) or ``'identity'``; with EMA
            the activation right before an mmdet3d pooling site becomes
            ``Identity`` so that EMA sees the BN output. None keeps the
            activations. Defaults to 'hardtanh'.
        dropout (str): ``'remove'`` replaces every dropout whose output a
            binary layer binarizes by ``nn.Identity`` (in training dropout
            zeroes inputs, and ``sign(0) = +1`` turns them into +1s that
            never occur at test time); ``'keep'`` leaves them. Dropout
            before an FP layer (e.g. the FP classifier) is always kept.
            Defaults to 'remove'.
        center_inputs (str | sequence[str] | None): Patterns of binary
            layers whose input sign is centred, ``sign(a − μ)`` with ``μ``
            the per-channel batch mean (running mean in evaluation): their
            binarizer is built with ``center_input=True``. Meant for the
            layer that reads a max-pooled feature, whose plain sign is
            almost always +1 (docs/recipe.md). Defaults to ().

    Returns:
        BinarizeReport: What was converted, kept and skipped.

    Raises:
        ValueError: Unknown method/aggregation, a pattern that matches no
            layer, or a model with nothing to binarize.
    """
    method_name = _binarizer_name(method)
    if aggregation not in AGGREGATIONS:
        raise ValueError(f'unknown aggregation {aggregation!r}; valid: '
                         f'{", ".join(AGGREGATIONS)}')
    if dropout not in DROPOUT_RULES:
        raise ValueError(f'unknown dropout rule {dropout!r}; valid: '
                         f'{", ".join(DROPOUT_RULES)}')
    if activation is not None and activation not in ACTIVATIONS:
        raise ValueError(f'unknown activation {activation!r}; valid: '
                         f'{", ".join(ACTIVATIONS)} or None')
    keep_items = _as_patterns(keep_fp, 'keep_fp')
    skip_items = _as_patterns(skip, 'skip')
    center_items = _as_patterns(center_inputs, 'center_inputs')
    overrides = dict(overrides or {})
    for cfg in overrides.values():
        _binarizer_name(cfg)

    convertible, already, unsupported = _candidates(model)
    if not convertible:
        hint = (f' ({len(already)} layers are already binary)'
                if already else '')
        raise ValueError(
            f'nothing to binarize in {type(model).__name__}: it has no '
            f'nn.Conv1d/Conv2d/Linear or PAConv layers{hint}')
    names = list(convertible)
    modules = dict(model.named_modules())

    def check_matches(patterns: Iterable[str], arg: str) -> None:
        for pattern in patterns:
            if not any(_match(pattern, n) for n in names):
                shown = ', '.join(
                    names[:8]) + (', ...' if len(names) > 8 else '')
                raise ValueError(
                    f'{arg} pattern {pattern!r} matches no binarizable layer;'
                    f' layer names look like: {shown}')

    keep_patterns = [k for k in keep_items if k not in KEEP_RULES]
    check_matches(keep_patterns, 'keep_fp')
    check_matches(skip_items, 'skip')
    check_matches(overrides, 'overrides')
    check_matches(center_items, 'center_inputs')

    keep: Dict[str, str] = {}
    if 'first' in keep_items:
        keep.update(_first_layers(convertible, modules))
    if 'last' in keep_items:
        for name, why in _last_layers(convertible, modules).items():
            keep.setdefault(name, why)
    for pattern in keep_patterns:
        for name in names:
            if _match(pattern, name):
                keep.setdefault(name, f'keep_fp {pattern!r}')

    # plan first, so that a call that fails changes nothing
    plan: List[Tuple[str, str, Any, str]] = []  # (name, action, cfg, note)
    for name in names:
        skip_by = next((p for p in skip_items if _match(p, name)), None)
        if skip_by is not None:
            plan.append((name, 'skip', None, f'skip {skip_by!r}'))
        elif name in keep:
            plan.append((name, 'keep', None, keep[name]))
        else:
            cfg: BinarizerCfg = method
            note = ''
            for pattern, override in overrides.items():
                if _match(pattern, name):
                    cfg, note = override, f'override {pattern!r}'
                    break
            center_by = next((p for p in center_items if _match(p, name)),
                             None)
            if center_by is not None:
                cfg = _centred_cfg(cfg, name)
                note = '; '.join(
                    filter(None, [note, f'centred input {center_by!r}']))
            plan.append((name, 'convert', cfg, note))
    for pattern in center_items:
        if not any(
                _match(pattern, name) and action == 'convert'
                for name, action, _, _ in plan):
            raise ValueError(
                f'center_inputs pattern {pattern!r} matches only layers '
                f'that stay FP32 (keep_fp/skip); a centred input sign needs '
                f'a binary layer')
    if not any(action == 'convert' for _, action, _, _ in plan):
        hint = (f'; {len(already)} layers are already binary'
                if already else '')
        raise ValueError(
            f'nothing to binarize in {type(model).__name__}: all '
            f'{len(names)} FP layers are kept by keep_fp={keep_items!r} or '
            f'skip={skip_items!r}{hint}')

    report = BinarizeReport(method=method_name, aggregation=aggregation)
    report._order = [n for n, _ in model.named_modules()]
    paconv, _ = _paconv_classes()
    for name, action, cfg, note in plan:
        module = convertible[name]
        type_name = type(module).__name__
        if action == 'skip':
            report.skipped.append(LayerEntry(name, type_name, None, note))
            continue
        if action == 'keep':
            report.kept_fp.append(LayerEntry(name, type_name, None, note))
            continue
        if isinstance(module, paconv):
            new = binarize_paconv(module, cfg, binarize_input)
            note = note or 'PAConv weight bank'
        else:
            new = from_float(module, cfg, binarize_input)
            _set_child(model, name, new)
        report.converted.append(
            LayerEntry(name, type_name, new.binarizer.name, note))
    for name, why in unsupported.items():
        report.skipped.append(
            LayerEntry(name,
                       type(modules[name]).__name__, None, why))

    attach_pooling(model, mode='max')
    report.pooling_modes = set_pooling_mode(model, aggregation)
    report.pooling_sites = list(report.pooling_modes)
    if activation is not None:
        report.activations = _replace_activations(model, activation,
                                                  aggregation)
    if dropout == 'remove':
        report.removed = _dropouts_before_binary(model)
        for name in report.removed:
            _set_child(model, name, nn.Identity())
    print_log(report.summary(), logger='current', level=logging.INFO)
    return report


# --------------------------------------------------------------------------
# ``binarize=`` in model configs.
# --------------------------------------------------------------------------
BINARIZE_KEY = 'binarize'


def _binarize_options(value: Any) -> Optional[Dict[str, Any]]:
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f'model {BINARIZE_KEY}= must be a dict of binarize() '
                    f'options, True or None; got {value!r}')


def build_binarized(cfg: Mapping,
                    registry=None,
                    default_args: Optional[dict] = None) -> nn.Module:
    """Build a model config that may carry a ``binarize`` key.

    The key is removed, the rest is built by ``registry`` (default:
    ``mmdet3d.registry.MODELS``), and the result goes through
    :func:`binarize` with the key's options; the report is stored on the
    model as ``model.binarize_report``. A config without the key, or of a
    model that takes ``binarize`` itself (a ``BinaryDistiller``), is built
    as it is.

    Args:
        cfg (dict): Model config.
        registry (Registry, optional): Registry to build with; defaults to
            ``mmdet3d.registry.MODELS``.
        default_args (dict, optional): Passed to the builder.

    Returns:
        nn.Module: The (binarized) model.
    """
    if registry is None:
        from mmdet3d.registry import MODELS as registry  # noqa: N811
    if _handles_binarize_key(cfg):  # a distiller: binarize= is its student's
        return registry.build(cfg, default_args=default_args)
    cfg = copy.copy(cfg)
    options = _binarize_options(cfg.pop(BINARIZE_KEY, None))
    if options is not None:  # SA modules with a pooling site
        from mmbinpc.models.layers import use_pooled_sa_modules
        cfg = use_pooled_sa_modules(cfg)
    model = registry.build(cfg, default_args=default_args)
    if options is not None:
        model.binarize_report = binarize(model, **options)
    return model


def _handles_binarize_key(cfg: Mapping) -> bool:
    """Whether the config's model type takes ``binarize`` itself.

    Models such as :class:`~mmbinpc.models.distillers.BinaryDistiller`
    declare ``handles_binarize_key = True``: their ``binarize`` argument means
    "binarize the student", not the whole model.
    """
    from mmdet3d.registry import MODELS
    obj_type = cfg.get('type')
    if isinstance(obj_type, str):
        with MODELS.switch_scope_and_registry(cfg.get('_scope_')) as reg:
            obj_type = reg.get(obj_type)
    return bool(getattr(obj_type, 'handles_binarize_key', False))


def expand_binarize_key(cfg: Any) -> Any:
    """The ``Binarized`` factory form of a model config with ``binarize=``.

    ``dict(type=T, ..., binarize=dict(method=..., ...))`` becomes
    ``dict(type='Binarized', model=dict(type=T, ...), method=..., ...)``,
    which any OpenMMLab registry builds (see :mod:`mmbinpc.models.binarized`).
    Configs without the key, and models that take ``binarize`` themselves
    (:class:`~mmbinpc.models.distillers.BinaryDistiller`), come back
    unchanged. mmbinpc's tools pass the configs they load through this, so
    the short spelling keeps working there.

    Args:
        cfg (dict | ConfigDict): A model config.

    Returns:
        dict | ConfigDict: ``cfg`` itself, or a new dict in factory form.
    """
    if not isinstance(cfg, Mapping) or BINARIZE_KEY not in cfg \
            or _handles_binarize_key(cfg):
        return cfg
    inner = {k: copy.deepcopy(v) for k, v in cfg.items() if k != BINARIZE_KEY}
    options = _binarize_options(cfg[BINARIZE_KEY])
    if options is None:  # binarize=None / False: an FP32 model
        return inner
    if 'model' in options:
        raise ValueError("binarize() has no option 'model'; check the "
                         'binarize= dict of the model config')
    return dict(type='Binarized', model=inner, **options)
