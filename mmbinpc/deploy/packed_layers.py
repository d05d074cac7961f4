# Copyright (c) mmbinpc contributors. All rights reserved.
"""Packed binary layers: drop-in replacements run by the Numba kernels."""
from typing import Optional

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
        name (str): Name of the layer in the model (for messages).
    """

    def __init__(self, kind: str, in_channels: int, out_channels: int,
                 weight_words: np.ndarray, out_scale: np.ndarray,
                 out_shift: np.ndarray, threshold: Optional[np.ndarray] = None,
                 scale_mode: str = 'none', name: str = '') -> None:
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
        self.threshold = (np.zeros(in_channels, np.float32) if threshold is None
                          else np.ascontiguousarray(threshold, np.float32))
        self.scale_mode = scale_mode
        self._scale_code = (kernels.SCALE_MEAN_ABS if scale_mode == 'mean_abs'
                            else kernels.SCALE_NONE)

    def _run(self, rows: Tensor) -> Tensor:
        """(M, C) contiguous float32 rows -> (M, O) output rows."""
        out = np.empty((rows.shape[0], self.out_channels), dtype=np.float32)
        self._kernels.binary_pointwise(rows.numpy(), self.threshold,
                                       self._scale_code, self.weight_words_t,
                                       self.out_scale, self.out_shift, out)
        return torch.from_numpy(out)

    def forward(self, x: Tensor) -> Tensor:
        """Run the layer on CPU float input; see the class docstring.

        Outputs of conv layers are channel-first views of channel-last
        buffers, so a chain of packed layers never transposes data.
        """
        if x.device.type != 'cpu':
            raise ValueError(f'{self.name}: the packed engine runs on CPU, '
                             f'got a tensor on {x.device}')
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
            rows = x.permute(0, 2, 1).contiguous().view(b * n, c)
            return self._run(rows).view(b, n, self.out_channels).permute(
                0, 2, 1)
        b, _, h, w = x.shape
        rows = x.permute(0, 2, 3, 1).contiguous().view(b * h * w, c)
        return self._run(rows).view(b, h, w,
                                    self.out_channels).permute(0, 3, 1, 2)

    def storage_bytes(self) -> int:
        """Bytes of packed weights, scales, shifts and thresholds."""
        return (self.weight_words_t.nbytes + self.out_scale.nbytes +
                self.out_shift.nbytes + (self.threshold.nbytes if np.any(
                    self.threshold) else 0))

    def extra_repr(self) -> str:
        return (f'{self.kind}, {self.in_channels} -> {self.out_channels}, '
                f'scale_mode={self.scale_mode!r}, '
                f'threshold={bool(np.any(self.threshold))}')
