# Copyright (c) mmbinpc contributors. All rights reserved.
"""Turn chains of PyTorch layers into packed graph nodes.

Every fusion is decided here, once, at export:

* a BatchNorm (eval statistics) after a layer is folded into it: into the
  weights and bias of an FP32 layer, into the per-channel ``out_scale`` /
  ``out_shift`` of a binary one (:func:`mmbinpc.deploy.folding.bn_affine`);
* Hardtanh/ReLU/ReLU6 after it become the node's clamp; dropout and
  identities vanish;
* a binary layer whose only reader is the next binary layer writes that
  layer's packed input bits: its float output, the clamp and the next
  layer's binarization ``y >= t`` collapse into one integer limit per
  output channel (:func:`bit_limits`);
* a global or local max/EMA pooling after a binary layer runs inside it
  (:class:`~mmbinpc.deploy.runtime.ops.BinaryDense` ``output='max'`` /
  ``'ema'``), so its full output is never written.

Anything else is a :class:`NotSupportedError` naming the module.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from mmbinpc.binary.aggregation import PointPool
from mmbinpc.binary.layers import is_binary_layer
from ..bitpack import pack_signs
from ..folding import bn_affine
from ..runtime.graph import INPUT
from ..runtime.ops import OPS, ValueInfo

#: input scale kinds (``BinarizerSpec.input_scale``) the packed kernels run:
#: none, or XNOR-Net's per-point β = mean |x − t|. The input bit is
#: ``x >= t`` with ``t`` from ``Binarizer.input_threshold()``; every weight
#: scale kind folds into the per-channel output scale.
ENGINE_INPUT_SCALES = ('none', 'mean_abs')

_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d)
_CLAMP_TYPES = (nn.Hardtanh, nn.ReLU)  # Hardtanh covers ReLU6
_SKIP_TYPES = (nn.Identity, nn.Dropout, nn.Dropout2d)
_LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Linear)


class NotSupportedError(NotImplementedError):
    """A model part the packed runtime cannot run (yet)."""


def packed_input_scale(binarizer: nn.Module, label: str) -> str:
    """The packed input scale mode of a binarizer, read from its spec.

    Raises:
        NotSupportedError: The binarizer declares no spec, or an input
            scale the kernels do not run.
    """
    spec = getattr(binarizer, 'spec', None)
    bname = getattr(binarizer, 'name', type(binarizer).__name__)
    scale = getattr(spec, 'input_scale', None)
    if scale not in ENGINE_INPUT_SCALES:
        raise NotSupportedError(
            f'not supported yet: {label} (binarizer {bname!r}, input scale '
            f'{scale!r}); the packed runtime runs binarizers whose spec has '
            f'input_scale in {ENGINE_INPUT_SCALES}')
    return scale


class GraphBuilder:
    """Collects the nodes and arrays of a packed graph, checking each node
    with the runtime's own op checks as it is added.

    Args:
        in_channels (int): Channels of the input points.
    """

    def __init__(self, in_channels: int) -> None:
        self.nodes: List[Dict[str, Any]] = []
        self.arrays: Dict[str, np.ndarray] = {}
        #: value name -> what it is
        self.values: Dict[str, ValueInfo] = {
            INPUT: ValueInfo('float', 3, in_channels)
        }

    def channels(self, value: str) -> int:
        return self.values[value].channels

    def add(self,
            name: str,
            op: str,
            inputs: Sequence[str],
            attrs: Dict[str, Any],
            arrays: Optional[Dict[str, np.ndarray]] = None) -> str:
        """Append a node; returns its (unique) name, the value it defines.

        Raises:
            GraphError: If the runtime would refuse the node (a converter
                bug).
        """
        base = name.replace('/', '.')
        name, i = base, 1
        while name in self.values:
            name = f'{base}#{i}'
            i += 1
        cls = OPS[op]
        cls.check_attrs(attrs)
        self.values[name] = cls.infer(attrs, [self.values[v] for v in inputs])
        self.nodes.append(
            dict(name=name, op=op, inputs=list(inputs), attrs=attrs))
        for role, value in (arrays or {}).items():
            self.arrays[f'{name}/{role}'] = value
        return name


def _clamp_of(module: nn.Module) -> Tuple[float, float]:
    if isinstance(module, nn.Hardtanh):
        return float(module.min_val), float(module.max_val)
    return 0.0, float('inf')  # ReLU


def _compose(first: Tuple[float, float],
             then: Tuple[float, float]) -> Tuple[float, float]:
    """Bounds of ``clamp(clamp(v, *first), *then)`` as one clamp."""
    lo, hi = then
    return (min(max(first[0], lo), hi), min(max(first[1], lo), hi))


def _clamp_attr(clamp: Tuple[float, float]) -> Optional[List[Any]]:
    lo, hi = clamp
    if lo == -np.inf and hi == np.inf:
        return None
    return [None if lo == -np.inf else lo, None if hi == np.inf else hi]


def _check_pointwise(name: str, module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        return
    pad = module.padding
    if not (all(s == 1 for s in module.kernel_size) and module.groups == 1
            and all(s == 1
                    for s in module.stride) and all(d == 1
                                                    for d in module.dilation)
            and (isinstance(pad, str) or all(p == 0 for p in pad))):
        raise NotSupportedError(
            f'not supported yet: {name} ({type(module).__name__} kernel='
            f'{module.kernel_size}, groups={module.groups}); the packed '
            f'runtime runs point-wise (1x1) layers')


def _check_input_rule(name: str, module: nn.Module, scale_mode: str,
                      threshold: Optional[Tensor]) -> None:
    """Check the runtime's emulation of the binarizer's input side on random
    data: bit = ``x >= threshold``, β = mean |x − threshold| or none."""
    gen = torch.Generator().manual_seed(0)
    c = module.weight.shape[1]
    x = torch.randn(2, c, 5, generator=gen)
    if isinstance(module, nn.Linear):
        x_in, dim = x[:, :, 0], -1
    elif isinstance(module, nn.Conv2d):
        x_in, dim = x[..., None], 1
    else:
        x_in, dim = x, 1
    sign, scale = module.binarizer.input_parts(x_in, dim=dim)
    shifted = x_in if threshold is None else x_in - (
        threshold if dim == -1 else threshold.reshape((1, -1) + (1, ) *
                                                      (x_in.dim() - 2)))
    ok = torch.equal(sign, torch.where(shifted >= 0, 1.0, -1.0))
    if scale_mode == 'none':
        ok = ok and scale is None
    else:
        ok = ok and scale is not None and torch.allclose(
            scale, shifted.abs().mean(dim=dim, keepdim=True), rtol=1e-5)
    if not ok:
        raise NotSupportedError(
            f'not supported yet: {name} (binarizer '
            f'{module.binarizer.name!r}): its input binarization does not '
            f'match the packed runtime\'s rule (bit: x >= input_threshold(), '
            f'scale {scale_mode!r})')


class Layer:
    """One point-wise layer on its way into the graph, with what follows it
    folded in (float64 until it is written).

    Attributes:
        name (str): Module name.
        binary (bool): XNOR layer, else FP32.
        weight (np.ndarray): (O, C) FP32 weights (FP layers).
        bits (np.ndarray): (O, C) weight signs as bool, True = +1 (binary).
        scale, shift (np.ndarray): (O,) output affine map (binary) or the
            bias in ``shift`` (FP).
        threshold (np.ndarray): (C,) input threshold (binary).
        scale_mode (str): Input scale of a binary layer.
        clamp (tuple): Output bounds.
        folded (list[str]): Modules folded or fused into it.
    """

    def __init__(self, name: str, module: nn.Module) -> None:
        _check_pointwise(name, module)
        self.name = name
        self.folded: List[str] = []
        self.clamp = (-np.inf, np.inf)
        weight = module.weight.detach().double().reshape(
            module.weight.shape[0], -1)
        out_ch, in_ch = weight.shape
        self.in_channels, self.out_channels = in_ch, out_ch
        bias = module.bias
        self.shift = (
            bias.detach().double().numpy().copy()
            if bias is not None else np.zeros(out_ch))
        self.binary = is_binary_layer(module)
        if not self.binary:
            self.weight = weight.numpy().copy()
            return
        if not module.binarize_input:
            raise NotSupportedError(
                f'not supported yet: {name} ({type(module).__name__} with '
                f'binarize_input=False): an FP input cannot use XNOR + '
                f'popcount')
        binarizer = module.binarizer
        self.binarizer = binarizer.name
        self.scale_mode = packed_input_scale(binarizer, name)
        sign, scale = binarizer.weight_parts(module.weight.detach().float())
        self.bits = (sign.reshape(out_ch, in_ch) > 0).numpy()
        scale = scale.detach().double().reshape(-1)
        if scale.numel() == 1:
            scale = scale.expand(out_ch)
        if scale.numel() != out_ch:
            raise NotSupportedError(
                f'{name}: weight scale has {scale.numel()} values, expected '
                f'1 or {out_ch}')
        self.scale = scale.numpy().copy()
        threshold = binarizer.input_threshold()
        if threshold is not None:
            threshold = threshold.detach().float()
        _check_input_rule(name, module, self.scale_mode, threshold)
        self.threshold = (
            np.zeros(in_ch, np.float32)
            if threshold is None else threshold.numpy().astype(np.float32))

    def fold_bn(self, name: str, bn: nn.Module) -> None:
        """Fold an eval-mode BatchNorm that reads this layer's output."""
        if self.clamp != (-np.inf, np.inf):
            raise NotSupportedError(
                f'not supported yet: {name} (a BatchNorm after an '
                f'activation cannot be folded)')
        if not bn.track_running_stats or bn.running_mean is None:
            raise NotSupportedError(
                f'not supported yet: {name} (BatchNorm without running '
                f'statistics)')
        s, t = (v.detach().double().numpy() for v in bn_affine(bn))
        if self.binary:
            self.scale = self.scale * s
        else:
            self.weight = self.weight * s[:, None]
        self.shift = self.shift * s + t
        self.folded.append(name)

    def add_clamp(self, name: str, act: nn.Module) -> None:
        self.clamp = _compose(self.clamp, _clamp_of(act))
        self.folded.append(name)


def layer_chain(modules: Sequence[Tuple[str, nn.Module]]) -> List[Layer]:
    """Point-wise layers with their BatchNorms and clamps folded in.

    Args:
        modules: ``(name, module)`` leaves in execution order (convs,
            linears, BatchNorms, Hardtanh/ReLU, dropout, identities).

    Raises:
        NotSupportedError: For any other module, or an order that cannot
            be folded.
    """
    layers: List[Layer] = []
    for name, m in modules:
        if isinstance(m, _LAYER_TYPES):
            layers.append(Layer(name, m))
        elif isinstance(m, _SKIP_TYPES):
            continue
        elif not layers:
            raise NotSupportedError(f'not supported yet: {name} '
                                    f'({type(m).__name__}) before any layer')
        elif isinstance(m, _BN_TYPES):
            layers[-1].fold_bn(name, m)
        elif isinstance(m, _CLAMP_TYPES):
            layers[-1].add_clamp(name, m)
        else:
            raise NotSupportedError(
                f'not supported yet: {name} ({type(m).__name__}); the packed '
                f'runtime fuses BatchNorm, Hardtanh/ReLU/ReLU6 and dropout '
                f'into point-wise layers')
    for a, b in zip(layers, layers[1:]):
        if a.out_channels != b.in_channels:
            raise NotSupportedError(f'{a.name} -> {b.name}: {a.out_channels} '
                                    f'vs {b.in_channels} channels')
    return layers


def leaves(module: nn.Module, prefix: str) -> List[Tuple[str, nn.Module]]:
    """Leaf modules of nested Sequential/ModuleList/ConvModule containers,
    in execution order."""
    if type(module).__name__ == 'ConvModule':
        order = getattr(module, 'order', ('conv', 'norm', 'act'))
        parts = dict(
            conv=module.conv,
            norm=getattr(module, 'norm_name', None)
            and getattr(module, module.norm_name),
            act=getattr(module, 'activate', None))
        if not order == ('conv', 'norm', 'act'):
            raise NotSupportedError(f'not supported yet: {prefix} (ConvModule '
                                    f'order {order})')
        names = dict(
            conv='conv',
            norm=getattr(module, 'norm_name', 'bn'),
            act='activate')
        return [(f'{prefix}.{names[k]}', parts[k]) for k in order
                if isinstance(parts[k], nn.Module)]
    if isinstance(module, (nn.Sequential, nn.ModuleList)):
        out = []
        for name, child in module.named_children():
            out += leaves(child, f'{prefix}.{name}')
        return out
    return [(prefix, module)]


def bit_limits(layer: Layer,
               next_threshold: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Integer form of "this layer's output, binarized by the next layer".

    The output of channel ``o`` for an input at Hamming distance ``d`` from
    its weights is ``y(d) = clamp((n - 2d) * s_o + t_o)``; the next layer's
    input bit is ``y(d) >= threshold_o``. ``y`` is monotonic in ``d``, so
    the bit is ``d <= limit_o`` - after complementing the weight bits of the
    channels with ``s_o < 0``, whose distance becomes ``n - d``. The limit is
    found by evaluating ``y`` in float32 for every ``d`` in ``0..n`` (the
    runtime's float arithmetic), not from a rearranged formula.

    Args:
        layer (Layer): The producing binary layer (no activation scale).
        next_threshold (np.ndarray): (O,) float32 thresholds of the consumer.

    Returns:
        tuple: ``(bits, limit)``: (O, C) bool weight signs with the
        negative-slope channels complemented, and (O,) int64 limits (-1:
        the bit is never set).
    """
    n = layer.in_channels
    s = layer.scale.astype(np.float32)
    t = layer.shift.astype(np.float32)
    lo, hi = (np.float32(v) for v in layer.clamp)
    dots = (n - 2 * np.arange(n + 1)).astype(np.float32)  # d = 0..n
    y = dots[None, :] * s[:, None] + t[:, None]
    y = np.minimum(np.maximum(y, lo), hi)
    bits = y >= next_threshold.astype(np.float32)[:, None]  # (O, n + 1)
    negative = s < 0
    # with a negative slope the bit is a function of d' = n - d
    bits = np.where(negative[:, None], bits[:, ::-1], bits)
    ones = bits.sum(axis=1)
    prefix = np.arange(n + 1)[None, :] < ones[:, None]
    if not np.array_equal(bits, prefix):  # float rounding is monotonic
        bad = int(np.flatnonzero((bits != prefix).any(axis=1))[0])
        raise NotSupportedError(f'{layer.name}: output channel {bad} is not '
                                f'monotonic in the popcount')
    weight_bits = np.where(negative[:, None], ~layer.bits, layer.bits)
    return weight_bits, (ones - 1).astype(np.int64)


def emit_chain(builder: GraphBuilder,
               layers: List[Layer],
               x: str,
               pool: Optional[str] = None) -> str:
    """Write a chain's nodes; returns the value of its last node.

    Args:
        builder (GraphBuilder): Where the nodes go.
        layers (list[Layer]): From :func:`layer_chain`.
        x (str): The float input value.
        pool (str, optional): A pooling mode over the second-to-last axis
            after the chain; a max/EMA after a binary layer runs inside it,
            anything else as a ``pool`` node.

    Returns:
        str: The output value (pooled when ``pool`` is given).
    """
    for i, layer in enumerate(layers):
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        last = nxt is None
        if not layer.binary:
            x = builder.add(
                layer.name, 'dense', [x],
                dict(
                    in_channels=layer.in_channels,
                    out_channels=layer.out_channels,
                    clamp=_clamp_attr(layer.clamp)),
                dict(
                    weight=layer.weight.astype(np.float32),
                    bias=layer.shift.astype(np.float32)))
            continue
        bits_in = i > 0 and layers[i - 1].binary and _emits_bits(
            layers[i - 1], layer)
        output = 'float'
        if last and pool in ('max', 'ema'):
            output, pool = pool, None
        elif not last and _emits_bits(layer, nxt):
            output = 'bits'
        arrays: Dict[str, np.ndarray] = {}
        if output == 'bits':
            bits, limit = bit_limits(layer, nxt.threshold)
            arrays['weight_bits'] = pack_signs(np.where(bits, 1.0, -1.0))
            arrays['limit'] = limit
        else:
            arrays['weight_bits'] = pack_signs(np.where(layer.bits, 1.0, -1.0))
            arrays['out_scale'] = layer.scale.astype(np.float32)
            arrays['out_shift'] = layer.shift.astype(np.float32)
        if not bits_in:
            arrays['threshold'] = layer.threshold
        x = builder.add(
            layer.name, 'binary_dense', [x],
            dict(
                in_channels=layer.in_channels,
                out_channels=layer.out_channels,
                input='bits' if bits_in else 'float',
                scale_mode=layer.scale_mode,
                clamp=_clamp_attr(layer.clamp),
                output=output), arrays)
    if pool is not None:
        x = builder.add(f'{layers[-1].name}.pool', 'pool', [x],
                        dict(mode=pool, channels=layers[-1].out_channels))
    return x


def _emits_bits(layer: Layer, nxt: Layer) -> bool:
    """Whether ``layer`` writes ``nxt``'s packed input directly."""
    return (layer.binary and nxt.binary and layer.scale_mode == 'none'
            and nxt.scale_mode == 'none')


def pool_mode(module: nn.Module, name: str) -> str:
    """The mode of a pooling site the runtime runs (a ``PointPool`` over the
    last axis of channel-first features)."""
    if not isinstance(module, PointPool) or module.keepdim or \
            module.dim not in (-1, 2, 3):
        raise NotSupportedError(
            f'not supported yet: {name} ({type(module).__name__}); the '
            f'packed runtime pools with PointPool sites over the points')
    return module.mode
