# Copyright (c) mmbinpc contributors. All rights reserved.
"""Packed binary layers: drop-in replacements run by the Numba kernels."""
from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from .bitpack import num_words

#: layer kinds and the axis layout of their inputs
KINDS = ('conv1d', 'conv2d', 'linear')


class PackedBinaryLayer(nn.Module):
    """A binary point-wise layer stored as packed sign bits.

    Computes ``out[o] = (C - 2 * popcount(bits(x) XOR bits(w_o))) *
    out_scale[o] * β + out_shift[o]`` for every point, where ``bits(x)`` is
    the input binarized (``x - threshold >= 0``) and packed on the fly, β is
    1 or the point's mean |x - threshold| (XNOR-Net), and ``out_scale`` /
    ``out_shift`` hold the weight scale, the bias and a folded BatchNorm.

    Args:
        kind (str): ``'conv1d'`` (input (B, C, N)), ``'conv2d'`` (input
            (B, C, H, W), 1x1 kernel) or ``'linear'`` (input (..., C)).
        in_channels (int): C.
        out_channels (int): O.
        weight_words (np.ndarray): (O, ceil(C / 64)) uint64 packed weight
            signs.
        out_scale (np.ndarray): (O,) float32.
        out_shift (np.ndarray): (O,) float32.
        threshold (np.ndarray, optional): (C,) float32 input thresholds.
        scale_mode (str): ``'none'`` or ``'mean_abs'``.
        clamp (tuple[float, float], optional): Bounds of a fused
            Hardtanh/ReLU applied to the output.
        pool (bool): Fuse a global max over the points (``conv1d`` only):
            the output is (B, O), the max of the (clamped) outputs over N.
        name (str): Name of the layer in the model (for messages).
    """

    def __init__(self,
                 kind: str,
                 in_channels: int,
                 out_channels: int,
                 weight_words: np.ndarray,
                 out_scale: np.ndarray,
                 out_shift: np.ndarray,
                 threshold: Optional[np.ndarray] = None,
                 scale_mode: str = 'none',
                 clamp: Optional[Tuple[float, float]] = None,
                 pool: bool = False,
                 name: str = '') -> None:
        super().__init__()
        from . import kernels  # numba is imported lazily
        if kind not in KINDS:
            raise ValueError(f'unknown packed layer kind {kind!r}; valid: '
                             f'{", ".join(KINDS)}')
        if scale_mode not in ('none', 'mean_abs'):
            raise ValueError(f'unknown activation scale mode {scale_mode!r}')
        expect = (out_channels, num_words(in_channels))
        if weight_words.shape != expect or weight_words.dtype != np.uint64:
            raise ValueError(
                f'{name}: packed weights must be uint64 {expect}, got '
                f'{weight_words.dtype} {weight_words.shape}')
        self._kernels = kernels
        self.kind = kind
        self.name = name
        self.in_channels = in_channels
        self.out_channels = out_channels
        # (W, O): output channels contiguous for the vectorised inner loop
        self.weight_words_t = np.ascontiguousarray(weight_words.T)
        self.out_scale = np.ascontiguousarray(out_scale, dtype=np.float32)
        self.out_shift = np.ascontiguousarray(out_shift, dtype=np.float32)
        self.threshold = (
            np.zeros(in_channels, np.float32) if threshold is None else
            np.ascontiguousarray(threshold, np.float32))
        self.scale_mode = scale_mode
        self._scale_code = (
            kernels.SCALE_MEAN_ABS
            if scale_mode == 'mean_abs' else kernels.SCALE_NONE)
        if pool and kind != 'conv1d':
            raise ValueError(f'{name}: a fused pooling needs a conv1d layer')
        self.clamp = (-np.inf, np.inf) if clamp is None else (float(clamp[0]),
                                                              float(clamp[1]))
        self.pool = bool(pool)
        self.last_num_points = 0  # points reduced by the last pooled call

    def _run(self, rows: Tensor, pool_group: int = 0) -> Tensor:
        """(M, C) float32 rows (contiguous) or (B, C, N) channel-first
        contiguous input -> (M, O) output rows, or (M / pool_group, O)
        maxima with a fused pooling."""
        k = self._kernels
        x = rows.numpy()
        m_total = x.shape[0] * x.shape[2] if x.ndim == 3 else x.shape[0]
        int_pool = bool(pool_group) and self._scale_code == k.SCALE_NONE
        if int_pool:  # every output written by the kernel
            out = np.empty((m_total // pool_group, self.out_channels),
                           dtype=np.float32)
        elif pool_group:
            out = np.full((m_total // pool_group, self.out_channels),
                          -np.inf,
                          dtype=np.float32)
        else:
            out = np.empty((m_total, self.out_channels), dtype=np.float32)
        lo, hi = self.clamp
        if x.ndim == 2:  # rows: packing and XNOR-popcount in one call
            if int_pool:
                k.binary_pointwise_maxpool(x, self.threshold,
                                           self.weight_words_t, self.out_scale,
                                           self.out_shift, lo, hi, pool_group,
                                           out, k.get_num_threads())
            else:
                k.binary_pointwise(x, self.threshold, self._scale_code,
                                   self.weight_words_t, self.out_scale,
                                   self.out_shift, lo, hi, pool_group, out,
                                   k.get_num_threads())
            return torch.from_numpy(out)
        words, beta = k.pack_input_channels_first(x, self.threshold,
                                                  self._scale_code)
        if int_pool:
            k.xnor_gemm_maxpool(words, self.in_channels, self.weight_words_t,
                                self.out_scale, self.out_shift, lo, hi,
                                pool_group, out, k.get_num_threads())
        else:
            k.xnor_gemm_affine(words, beta, self.in_channels,
                               self.weight_words_t, self.out_scale,
                               self.out_shift, lo, hi, pool_group, out,
                               k.get_num_threads())
        return torch.from_numpy(out)

    def forward(self, x: Tensor) -> Tensor:
        """Run the layer on CPU float input; see the class docstring.

        Outputs of conv layers are channel-first views of channel-last
        buffers, so a chain of packed layers never transposes data; a
        channel-first contiguous input (from an FP32 layer) is packed as it
        is, channel by channel.
        """
        if x.device.type != 'cpu':
            raise ValueError(f'{self.name}: the packed engine runs on CPU, '
                             f'got a tensor on {x.device}')
        if x.requires_grad:
            x = x.detach()
        if x.dtype != torch.float32:
            x = x.float()
        c = self.in_channels
        if self.kind == 'linear':
            if x.shape[-1] != c:
                raise ValueError(f'{self.name}: expected {c} input features, '
                                 f'got shape {tuple(x.shape)}')
            out = self._run(x.reshape(-1, c).contiguous())
            return out.view(*x.shape[:-1], self.out_channels)
        layout = '(B, C, N)' if self.kind == 'conv1d' else '(B, C, H, W)'
        if x.dim() != len(layout.split(',')) or x.shape[1] != c:
            raise ValueError(f'{self.name}: expected {layout} input with '
                             f'C={c}, got shape {tuple(x.shape)}')
        if self.kind == 'conv1d':
            b, _, n = x.shape
            if x.is_contiguous() and n > 1:
                inp = x  # channel-first: packed without a transpose
            else:
                inp = x.permute(0, 2, 1).contiguous().view(b * n, c)
            if self.pool:
                if n == 0:
                    raise ValueError(f'{self.name}: cannot pool 0 points')
                self.last_num_points = n
                return self._run(inp, pool_group=n)  # (B, O)
            return self._run(inp).view(b, n,
                                       self.out_channels).permute(0, 2, 1)
        b, _, h, w = x.shape
        rows = x.permute(0, 2, 3, 1).contiguous().view(b * h * w, c)
        return self._run(rows).view(b, h, w,
                                    self.out_channels).permute(0, 3, 1, 2)

    def storage_bytes(self) -> int:
        """Bytes of packed weights, scales, shifts and thresholds."""
        return (self.weight_words_t.nbytes + self.out_scale.nbytes +
                self.out_shift.nbytes +
                (self.threshold.nbytes if np.any(self.threshold) else 0))

    def extra_repr(self) -> str:
        return (f'{self.kind}, {self.in_channels} -> {self.out_channels}, '
                f'scale_mode={self.scale_mode!r}, '
                f'threshold={bool(np.any(self.threshold))}, '
                f'clamp={self.clamp}, pool={self.pool}')


class FusedPoolTail(nn.Module):
    """Stands in for a PointPool whose max was fused into a packed layer.

    Its input is already the max over the points; for ``'ema'`` it subtracts
    the entropy-maximizing shift δ*(N) of the N points the layer reduced.

    Args:
        layer (PackedBinaryLayer): The layer that computes the max.
        mode (str): ``'max'`` or ``'ema'``.
    """

    def __init__(self, layer: PackedBinaryLayer, mode: str) -> None:
        super().__init__()
        if mode not in ('max', 'ema'):
            raise ValueError(f'cannot fuse pooling mode {mode!r}')
        self.mode = mode
        self._layer = [layer]  # a reference, not a registered child

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == 'max':
            return x
        from mmbinpc.binary.aggregation import ema_offset
        return x - ema_offset(self._layer[0].last_num_points)

    def extra_repr(self) -> str:
        return f'mode={self.mode!r}, fused into {self._layer[0].name}'
