# Copyright (c) mmbinpc contributors. All rights reserved.
"""A lean forward pass for packed PointNet classifiers.

:class:`~mmbinpc.deploy.PackedModel` can run a packed model in two ways:
through the model's own PyTorch forward code with the binary layers swapped
for :class:`~mmbinpc.deploy.packed_layers.PackedBinaryLayer` modules (the
``'modules'`` engine: any architecture the exporter supports), or through
the :class:`PointNetPlan` built here (the ``'plan'`` engine), which knows
the dataflow of :class:`~mmbinpc.models.PointClassifier` with a
:class:`~mmbinpc.models.PointNet` backbone and a
:class:`~mmbinpc.models.PointClsHead` and so can skip everything the
module path spends its time on at batch 1:

* features stay channel-last rows ``(B * N, C)`` in NumPy buffers, so no
  transposes and no module dispatch (about 80 module calls per forward);
* a binary layer whose only reader is the next binary layer writes that
  layer's packed input directly (:func:`~mmbinpc.deploy.kernels.
  xnor_gemm_bits`): folded BatchNorm, clamp and the next binarization
  collapse into one integer limit per output channel (:func:`bit_limits`),
  so a 1024-point, 64-channel feature map is written as 1024 words instead
  of 65,536 floats;
* before a fused max pooling, each cloud's packed rows are reduced to the
  distinct ones (:func:`~mmbinpc.deploy.kernels.unique_rows`; binarized
  features repeat, and a max does not change);
* work arrays and kernel arguments are set up once per input shape, so a
  stream of same-sized clouds allocates nothing (the arrays are reused, so
  calls from several threads take turns on a lock);
* the input T-Net's 3x3 matrix and the feature T-Net's 64x64 matrix are
  applied with one batched matrix product each on the rows.

The T-Nets, the shared MLP, the global pooling and the head are read from
the loaded modules (packed binary layers, FP32 conv/linear layers with
their folded BatchNorm, clamp activations, dropout); anything else raises
:class:`Unplannable` and the model runs on the module engine instead.
"""
import threading
import time
from typing import List, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from mmbinpc.binary.aggregation import PointPool, ema_offset
from .folding import fold_bn
from .packed_layers import FusedPoolTail, PackedBinaryLayer

_CLAMPS = (nn.Hardtanh, nn.ReLU, nn.ReLU6)  # Hardtanh covers ReLU6
_NOOPS = (nn.Identity, nn.Dropout)
_BNS = (nn.BatchNorm1d, )


class Unplannable(Exception):
    """The model is not a structure :class:`PointNetPlan` can run."""


def _clamp_of(act: nn.Module) -> Tuple[float, float]:
    if isinstance(act, nn.Hardtanh):
        return float(act.min_val), float(act.max_val)
    return 0.0, float('inf')  # ReLU


def _compose_clamps(first: Tuple[float, float],
                    then: Tuple[float, float]) -> Tuple[float, float]:
    """Bounds of ``clamp(clamp(v, *first), *then)`` as one clamp."""
    lo, hi = then
    return (min(max(first[0], lo), hi), min(max(first[1], lo), hi))


def bit_limits(
    layer: PackedBinaryLayer,
    next_threshold: np.ndarray,
    clamp: Optional[Tuple[float,
                          float]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Integer form of "this layer's output, binarized by the next layer".

    The output of channel ``o`` for an input at Hamming distance ``d`` from
    its weights is ``y(d) = clamp((n - 2d) * s_o + t_o, lo, hi)``; the next
    layer's input bit is ``y(d) >= threshold_o``. ``y`` is monotonic in
    ``d``, so the bit is ``d <= limit_o`` - after complementing the weight
    bits of the channels with ``s_o < 0``, whose distance becomes ``n - d``.
    The limit is found by evaluating ``y`` in float32 for every ``d`` in
    ``0..n`` (the same arithmetic as the float kernels), not from a
    rearranged formula, so the two agree up to the rounding of a fused
    multiply-add.

    Args:
        layer (PackedBinaryLayer): The producing layer (no activation
            scale).
        next_threshold (np.ndarray): (O,) float32 input thresholds of the
            consuming layer.
        clamp (tuple[float, float], optional): Output clamp; defaults to
            the layer's own.

    Returns:
        tuple: ``(w_words_t, limit)``: (W, O) uint64 weights with the
        negative-slope channels complemented, and (64 * ceil(O / 64),) int64
        limits (-1 for the padding channels).

    Raises:
        Unplannable: If a channel's bits are not monotonic in ``d`` (a
            safety net: float rounding is monotonic, and NaN or infinite
            scales give constant or step bits).
    """
    n = layer.in_channels
    n_out = layer.out_channels
    s = layer.out_scale.astype(np.float32)
    t = layer.out_shift.astype(np.float32)
    lo, hi = (np.float32(v) for v in (layer.clamp if clamp is None else clamp))
    dots = (n - 2 * np.arange(n + 1)).astype(np.float32)  # d = 0..n
    y = dots[None, :] * s[:, None] + t[:, None]
    y = np.minimum(np.maximum(y, lo), hi)
    bits = y >= next_threshold.astype(np.float32)[:, None]  # (O, n + 1)
    negative = s < 0
    # with negative slope the bit is a function of d' = n - d
    bits = np.where(negative[:, None], bits[:, ::-1], bits)
    ones = bits.sum(axis=1)
    prefix = np.arange(n + 1)[None, :] < ones[:, None]
    if not np.array_equal(bits, prefix):
        bad = int(np.flatnonzero((bits != prefix).any(axis=1))[0])
        raise Unplannable(f'{layer.name}: output channel {bad} is not '
                          f'monotonic in the popcount')
    width = (n_out + 63) // 64 * 64
    limit = np.full(width, -1, dtype=np.int64)
    limit[:n_out] = ones - 1
    w = layer.weight_words_t.copy()
    n_words = w.shape[0]
    for wi in range(n_words):
        valid = min(64, n - 64 * wi)
        mask = np.uint64((1 << valid) - 1) if valid < 64 else \
            np.uint64(0xFFFFFFFFFFFFFFFF)
        w[wi, negative] ^= mask
    return np.ascontiguousarray(w), limit


class _Packed:
    """Rows binarized and packed for one consumer: (M, W) words and the
    (M,) activation scale β (ones without one)."""

    __slots__ = ('words', 'beta')

    def __init__(self, words: np.ndarray, beta: np.ndarray) -> None:
        self.words = words
        self.beta = beta


Features = Union[np.ndarray, _Packed]  # float32 (M, C) rows or packed rows


class _Dense:
    """One point-wise layer of the plan with its folded BatchNorm and clamp:
    a packed binary layer, or an FP32 conv/linear run by PyTorch."""

    def __init__(self, layer: nn.Module, name: str,
                 plan: 'PointNetPlan') -> None:
        self.name = name
        self.plan = plan
        self.packed = layer if isinstance(layer, PackedBinaryLayer) else None
        self.clamp = (-float('inf'), float('inf'))
        self._bits_to: Optional[Tuple[np.ndarray, np.ndarray]] = None
        self._flipped: Optional[np.ndarray] = None  # for the fused max
        self.packed_next = False  # the next layer packs this one's output
        self._steps: dict = {}  # (out, rows, group, threads) -> prepared
        if self.packed is not None:
            self.in_channels = layer.in_channels
            self.out_channels = layer.out_channels
            self.clamp = layer.clamp
            return
        if isinstance(layer, nn.Conv1d):
            weight = layer.weight.detach()[:, :, 0]
        elif isinstance(layer, nn.Linear):
            weight = layer.weight.detach()
        else:
            raise Unplannable(f'{name}: cannot run {type(layer).__name__}')
        self.in_channels = weight.shape[1]
        self.out_channels = weight.shape[0]
        self.weight_t = weight.double().t().numpy()  # (C, O)
        self.bias = (
            layer.bias.detach().double().numpy()
            if layer.bias is not None else np.zeros(self.out_channels))
        self._finish_fp()

    def _finish_fp(self) -> None:
        self.weight_t = np.ascontiguousarray(self.weight_t, np.float32)
        self.bias = np.ascontiguousarray(self.bias, np.float32)

    @property
    def binary(self) -> bool:
        return self.packed is not None

    def fold_bn(self, bn: nn.Module) -> None:
        """Fold an eval-mode BatchNorm that follows this FP32 layer."""
        if self.binary or self.clamp != (-float('inf'), float('inf')):
            raise Unplannable(f'{self.name}: a BatchNorm after a binary layer '
                              f'or an activation is not folded')
        if not bn.track_running_stats or bn.running_mean is None:
            raise Unplannable(f'{self.name}: BatchNorm without running stats')
        weight_t, bias = fold_bn(
            torch.from_numpy(self.weight_t),
            torch.from_numpy(self.bias),
            bn,
            out_dim=1)
        self.weight_t, self.bias = weight_t.numpy(), bias.numpy()
        self._finish_fp()

    def add_clamp(self, act: nn.Module) -> None:
        """Apply an activation module that follows as part of the clamp."""
        self.clamp = _compose_clamps(self.clamp, _clamp_of(act))

    # ------------------------------------------------------------------ #
    def can_emit_bits_for(self, nxt: '_Dense') -> bool:
        """Whether this layer can write ``nxt``'s packed input directly."""
        return (self.binary and nxt.binary and self.packed.scale_mode == 'none'
                and nxt.packed.scale_mode == 'none'
                and nxt.in_channels == self.out_channels)

    def prepare_bits(self, nxt: '_Dense') -> None:
        """Precompute the integer limits that make this layer write the
        packed input of ``nxt`` (see :func:`bit_limits`)."""
        self._bits_to = bit_limits(self.packed, nxt.packed.threshold,
                                   self.clamp)

    def __call__(self,
                 x: Features,
                 out: str = 'float',
                 group: int = 0) -> Features:
        """Run the layer.

        Args:
            x (np.ndarray | _Packed): Float rows, or rows packed for this
                layer by the previous one.
            out (str): ``'float'`` rows, ``'bits'`` (the packed input of the
                layer set by :meth:`prepare_bits`) or ``'max'`` (the max over
                every ``group`` consecutive rows, fused in the kernel; binary
                layers only).
            group (int): Rows per cloud for ``'max'``.

        Returns:
            np.ndarray | _Packed: (M, O) float rows, packed rows, or
            (M / group, O) maxima.
        """
        plan = self.plan
        if not self.binary:
            # rows that the next (binary) layer packs at once share one
            # work array (see PointNetPlan.scratch)
            y = (
                plan.scratch(
                    (x.shape[0],
                     self.out_channels)) if self.packed_next and out == 'float'
                else plan.buffer(self, 'out', (x.shape[0], self.out_channels)))
            plan.kernels.dense_rows(x, self.weight_t, self.bias, *self.clamp,
                                    y)
            return y  # (an FP layer's pooling is run by _Pool)
        timing = plan.timing
        if timing:
            t0 = time.perf_counter()
        float_in = isinstance(x, np.ndarray)
        m_total = x.shape[0] if float_in else x.words.shape[0]
        threads = plan.kernels.get_num_threads()
        step = self._steps.get((out, m_total, group, threads))
        if step is None:
            if len(self._steps) >= 8:  # many input shapes: keep it bounded
                self._steps.clear()
            step = self._steps[(out, m_total, group, threads)] = \
                self._prepare(out, m_total, group, threads)
        pack_args, kernel, args, needs_beta, result = step
        if float_in:
            plan.kernels.pack_input_into(x, *pack_args)
            words, beta = pack_args[2], pack_args[3]
        else:
            words, beta = x.words, x.beta
        if needs_beta:
            kernel(words, beta, *args)
        else:
            kernel(words, *args)
        if timing:
            plan.binary_seconds += time.perf_counter() - t0
        return result

    def _prepare(self, out: str, m_total: int, group: int,
                 threads: int) -> tuple:
        """The calls of this binary layer for ``m_total`` input rows, with
        their work arrays, set up once per input shape.

        Returns:
            tuple: ``(pack_args, kernel, args, needs_beta, result)``: the
            arguments of :func:`~mmbinpc.deploy.kernels.pack_input_into`
            after the rows (for float input), the XNOR-popcount kernel and
            its arguments after the packed words (and β when
            ``needs_beta``), and what the call returns.
        """
        k = self.plan.kernels
        layer = self.packed
        n_words = layer.weight_words_t.shape[0]
        pack_args = (layer.threshold, layer._scale_code,
                     np.empty((m_total, n_words),
                              np.uint64), np.empty(m_total, np.float32))
        lo, hi = self.clamp
        if out == 'bits':
            w_t, limit = self._bits_to
            res = np.empty((m_total, limit.shape[0] // 64), np.uint64)
            return (pack_args, k.xnor_gemm_bits, (w_t, limit, res, threads),
                    False, _Packed(res, np.ones(m_total, np.float32)))
        if out == 'max' and layer._scale_code == k.SCALE_NONE:
            if self._flipped is None:
                self._flipped = k.flip_negative_channels(
                    layer.weight_words_t, self.in_channels, layer.out_scale)
            res = np.empty((m_total // group, self.out_channels), np.float32)
            args = (self.in_channels, self._flipped, layer.out_scale,
                    layer.out_shift, lo, hi, group, res,
                    np.empty((threads, self.out_channels), np.int64),
                    np.empty(k.dedup_table_size(group),
                             np.int32), np.empty((group, n_words), np.uint64))
            return (pack_args, k.xnor_gemm_maxpool_flipped, args, False, res)
        if out == 'max':  # with an activation scale: max of the floats
            res = np.empty((m_total // group, self.out_channels), np.float32)
            kernel = self._affine_max
        else:
            res = np.empty((m_total, self.out_channels), np.float32)
            kernel, group = k.xnor_gemm_affine, 0
        args = (self.in_channels, layer.weight_words_t, layer.out_scale,
                layer.out_shift, lo, hi, group, res, threads)
        return (pack_args, kernel, args, True, res)

    def _affine_max(self, words: np.ndarray, beta: np.ndarray, *args) -> None:
        """:func:`~mmbinpc.deploy.kernels.xnor_gemm_affine` with a fused max
        (its output must start at -inf)."""
        args[7].fill(-np.inf)
        self.plan.kernels.xnor_gemm_affine(words, beta, *args)


class _Chain:
    """Consecutive point-wise layers (each with its BN/clamp/dropout)."""

    def __init__(self, modules: List[Tuple[str, nn.Module]],
                 plan: 'PointNetPlan') -> None:
        self.layers: List[_Dense] = []
        for name, m in modules:
            if isinstance(m, (PackedBinaryLayer, nn.Conv1d, nn.Linear)):
                self.layers.append(_Dense(m, name, plan))
            elif not self.layers:
                raise Unplannable(f'{name}: {type(m).__name__} before any '
                                  f'layer')
            elif isinstance(m, _BNS):
                self.layers[-1].fold_bn(m)
            elif isinstance(m, _CLAMPS):
                self.layers[-1].add_clamp(m)
            elif isinstance(m, _NOOPS):
                continue
            else:
                raise Unplannable(f'{name}: cannot run {type(m).__name__}')
        if not self.layers:
            raise Unplannable('empty layer chain')
        for a, b in zip(self.layers, self.layers[1:]):
            if a.out_channels != b.in_channels:
                raise Unplannable(f'{a.name} -> {b.name}: {a.out_channels} '
                                  f'vs {b.in_channels} channels')
            if a.can_emit_bits_for(b):
                a.prepare_bits(b)
            a.packed_next = b.binary

    @property
    def out_channels(self) -> int:
        return self.layers[-1].out_channels

    def __call__(self,
                 x: np.ndarray,
                 out: str = 'float',
                 group: int = 0) -> np.ndarray:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if i < last:
                x = layer(x, 'bits' if layer._bits_to is not None else 'float')
            else:
                x = layer(x, out, group)
        return x


def _leaves(module: nn.Module, prefix: str) -> List[Tuple[str, nn.Module]]:
    """Leaf modules of nested Sequential/ModuleList containers, in order."""
    if isinstance(module, (nn.Sequential, nn.ModuleList)):
        out = []
        for name, child in module.named_children():
            out += _leaves(child, f'{prefix}.{name}')
        return out
    return [(prefix, module)]


class _Pool:
    """A global pooling site over the points: fused into the layer before
    it (max/EMA) or run here on float rows."""

    def __init__(self, module: nn.Module, name: str, last: _Dense) -> None:
        if isinstance(module, FusedPoolTail):
            self.mode, self.fused = module.mode, True
            if not last.binary:
                raise Unplannable(f'{name}: fused pooling after an FP layer')
        elif isinstance(module, PointPool):
            if module.dim not in (-1, 2) or module.keepdim or \
                    module.cat_dim not in (1, -1):
                raise Unplannable(f'{name}: pooling over dim {module.dim}')
            self.mode, self.fused = module.mode, False
            if self.mode in ('max', 'ema') and last.binary:
                self.fused = True  # same result, done by the kernel
        else:
            raise Unplannable(f'{name}: cannot run {type(module).__name__}')

    def out_channels(self, channels: int) -> int:
        return channels * (2 if '+' in self.mode else 1)

    def __call__(self, chain: _Chain, x: Features,
                 n_points: int) -> np.ndarray:
        """Run ``chain`` and pool its output over every cloud's points."""
        if self.fused:
            y = chain(x, 'max', n_points)
        else:
            rows = chain(x, 'float')
            rows = rows.reshape(-1, n_points, chain.out_channels)
            if self.mode in ('max', 'ema'):
                y = rows.max(axis=1)
            else:
                avg = rows.mean(axis=1, dtype=np.float32)
                if self.mode == 'avg':
                    return avg
                y = np.concatenate([rows.max(axis=1), avg], axis=1)
                if self.mode == 'ema+avg':
                    y[:, :chain.out_channels] -= np.float32(
                        ema_offset(n_points))
                return y
        if self.mode == 'ema':
            y -= np.float32(ema_offset(n_points))
        return y


class _TNet:
    """A T-Net: shared layers, pooling, fully connected layers, + I."""

    def __init__(self, tnet: nn.Module, name: str,
                 plan: 'PointNetPlan') -> None:
        self.k = tnet.k
        self.convs = _Chain(_leaves(tnet.convs, f'{name}.convs'), plan)
        self.pool = _Pool(tnet.pool, f'{name}.pool', self.convs.layers[-1])
        self.fcs = _Chain(
            _leaves(tnet.fcs, f'{name}.fcs') +
            [(f'{name}.transform', tnet.transform)], plan)
        self.eye = np.eye(self.k, dtype=np.float32).reshape(-1)

    def __call__(self, rows: np.ndarray, n_points: int) -> Tensor:
        """(B * N, k) rows -> (B, k, k) transforms."""
        g = self.pool(self.convs, rows, n_points)
        t = self.fcs(np.ascontiguousarray(g, dtype=np.float32))
        t += self.eye  # t is the transform layer's work array
        return torch.from_numpy(t).view(-1, self.k, self.k)


class PointNetPlan:
    """The lean forward pass of a packed PointNet classifier.

    Built from a :class:`~mmbinpc.models.PointClassifier` (PointNet backbone,
    PointClsHead) whose binary layers are already
    :class:`~mmbinpc.deploy.packed_layers.PackedBinaryLayer` modules; see
    the module docstring for what it does differently from running the
    model's forward code.

    Args:
        model (nn.Module): The loaded packed model (eval mode).

    Raises:
        Unplannable: If the model is not such a classifier or holds a
            module the plan cannot run.
    """

    def __init__(self, model: nn.Module) -> None:
        from mmbinpc.models.backbones.pointnet import PointNet
        from mmbinpc.models.heads.cls_head import PointClsHead
        from . import kernels
        self.kernels = kernels
        self.timing = False
        self.binary_seconds = 0.0
        self._buffers: dict = {}
        self._lock = threading.Lock()  # the work arrays serve one call
        backbone = getattr(model, 'backbone', None)
        head = getattr(model, 'head', None)
        if type(backbone) is not PointNet or type(head) is not PointClsHead \
                or not isinstance(getattr(model, 'pool', None), nn.Module):
            raise Unplannable('the plan runs PointClassifier models with a '
                              'PointNet backbone and a PointClsHead')
        self.in_channels = backbone.in_channels
        self.input_tnet = (None if backbone.input_tnet is None else _TNet(
            backbone.input_tnet, 'backbone.input_tnet', self))
        self.feature_tnet = (None if backbone.feature_tnet is None else _TNet(
            backbone.feature_tnet, 'backbone.feature_tnet', self))
        mlp = [
            _leaves(layer, f'backbone.mlp.{i}')
            for i, layer in enumerate(backbone.mlp)
        ]
        split = backbone.feature_transform_after if self.feature_tnet \
            else len(mlp)
        self.mlp_pre = _Chain([m for seq in mlp[:split] for m in seq], self)
        self.mlp_post = (
            _Chain([m for seq in mlp[split:]
                    for m in seq], self) if split < len(mlp) else None)
        last = (self.mlp_post or self.mlp_pre)
        self.pool = _Pool(model.pool, 'pool', last.layers[-1])
        self.head = _Chain(
            _leaves(head.mlp, 'head.mlp') + [('head.fc_cls', head.fc_cls)],
            self)
        pooled = self.pool.out_channels(last.out_channels)
        if self.head.layers[0].in_channels != pooled:
            raise Unplannable(f'head expects {self.head.layers[0].in_channels}'
                              f' channels, the pooling gives {pooled}')

    @property
    def binary_layers(self) -> List[_Dense]:
        chains = [self.mlp_pre, self.mlp_post, self.head]
        for tnet in (self.input_tnet, self.feature_tnet):
            if tnet is not None:
                chains += [tnet.convs, tnet.fcs]
        return [
            d for c in chains if c is not None for d in c.layers if d.binary
        ]

    def buffer(self,
               owner: object,
               tag: object,
               shape: Tuple[int, ...],
               dtype: type = np.float32) -> np.ndarray:
        """A work array kept between calls (uninitialised).

        Every intermediate result of the forward pass lives in one of these,
        so a steady stream of same-sized inputs allocates nothing: fresh
        allocations of feature-map size come from ``mmap`` and cost a page
        fault per 4 KiB on first touch, which on a machine where other work
        (PyTorch, for one) frees memory in between costs as much as the
        binary layers themselves.

        Args:
            owner (object): The step that uses it (kept alive by the plan).
            tag (object): Which of the owner's arrays (hashable).
            shape (tuple[int]): Its shape; a new shape replaces the array.
            dtype (type): Defaults to float32.

        Returns:
            np.ndarray: The array.
        """
        key = (id(owner), tag)
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._buffers[key] = np.empty(shape, dtype=dtype)
        return buf

    def __call__(self, points: Tensor) -> Tensor:
        """Logits (B, K) for points (B, N, C) (float32, CPU)."""
        b, n, c = points.shape
        if c != self.in_channels:
            raise ValueError(f'expected points (B, N, {self.in_channels}), '
                             f'got {tuple(points.shape)}')
        if n == 0:
            raise ValueError('cannot classify clouds of 0 points')
        with self._lock:
            return self._forward(points.contiguous(), b, n, c)

    def _forward(self, pts: Tensor, b: int, n: int, c: int) -> Tensor:
        if self.input_tnet is not None:
            xyz = self._tensor_buffer('xyz', (b, n, 3))
            xyz.copy_(pts[..., :3])
            trans = self.input_tnet(xyz.view(b * n, 3).numpy(), n)
            rows = self._tensor_buffer('points', (b, n, c))
            # rows: x @ T == (T^T x)^T, the backbone's transform
            if c == 3:
                torch.bmm(xyz, trans, out=rows)
            else:  # normals and other channels are not transformed
                rows[..., :3] = torch.bmm(xyz, trans)
                rows[..., 3:] = pts[..., 3:]
            pts = rows
        rows = pts.reshape(b * n, c).numpy()
        if self.mlp_post is None:
            feats = self.pool(self.mlp_pre, rows, n)
        else:
            h = self.mlp_pre(rows)
            trans = self.feature_tnet(h, n)
            shape = (b * n, h.shape[1])
            # a binary first post-transform layer packs these rows at once
            ht = torch.from_numpy(
                self.scratch(shape) if self.mlp_post.layers[0].
                binary else self.buffer(self, 'features', shape))
            torch.bmm(
                torch.from_numpy(h).view(b, n, -1),
                trans,
                out=ht.view(b, n, -1))
            feats = self.pool(self.mlp_post, ht.view(b * n, -1).numpy(), n)
        logits = self.head(np.ascontiguousarray(feats, dtype=np.float32))
        return torch.from_numpy(logits.copy())  # the buffer is reused

    def scratch(self, shape: Tuple[int, ...]) -> np.ndarray:
        """The shared float work array for rows that live only until the
        next binary layer packs them (an FP layer's output, the feature
        transform's result): one array instead of one per step keeps the
        working set, and so the cost of a cold cache, small."""
        return self.buffer(self, ('scratch', shape), shape)

    def _tensor_buffer(self, tag: str, shape: Tuple[int, ...]) -> Tensor:
        return torch.from_numpy(self.buffer(self, tag, shape))
