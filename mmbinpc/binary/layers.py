# Copyright (c) mmbinpc contributors. All rights reserved.
"""Binary layers: ``BinConv1d``, ``BinConv2d`` and ``BinLinear``.

Each is a subclass of the matching torch layer with the same parameter names
(``weight``, ``bias``), so an FP32 state dict loads into it. The parameters
stay FP32 *latent* weights that the optimizer updates; the forward pass
applies the layer to the signs of the weights (``binarizer.
forward_weight_parts``) and, with ``binarize_input=True``, of the input,
then multiplies by their scales (see ``BinaryMixin._binary_forward``).
The layers are registered in ``mmdet3d.registry.MODELS`` and
in mmengine's root ``MODELS`` (which mmcv's ``build_conv_layer`` falls back to
when no default scope is set), so ``conv_cfg=dict(type='BinConv1d',
binarizer='xnor')`` works in any mmcv ``ConvModule``.
"""
from typing import Any, Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet3d.registry import MODELS
from mmengine.registry import MODELS as MMENGINE_MODELS
from torch import Tensor, nn

from .binarizers import Binarizer, BinarizerCfg, build_binarizer


def _register(cls: type) -> type:
    MODELS.register_module(module=cls)
    if MMENGINE_MODELS.get(cls.__name__) is None:
        MMENGINE_MODELS.register_module(module=cls)
    return cls


class BinaryMixin:
    """Shared behaviour of the binary layers.

    A layer using it provides ``latent_weight()`` (weight with output channels
    on dim 0), ``apply_weight(x, w, bias=None)`` (the layer's linear map)
    and ``channel_dim`` (the input's channel axis).
    """

    binarizer: Binarizer
    binarize_input: bool
    channel_dim: int = 1

    def _init_binary(self, binarizer: BinarizerCfg, binarize_input: bool,
                     in_channels: int, out_channels: int) -> None:
        self.binarizer = build_binarizer(
            binarizer, in_channels=in_channels, out_channels=out_channels)
        self.binarize_input = bool(binarize_input)

    def latent_weight(self) -> Tensor:
        """The FP32 latent weight, output channels on dim 0."""
        return self.weight

    def binary_weight(self) -> Tensor:
        """The weight the forward pass uses (``sign · scale``)."""
        return self.binarizer.forward_weight(self.latent_weight())

    def binary_input(self, x: Tensor) -> Tensor:
        """The input the forward pass uses (binarized or unchanged)."""
        if not self.binarize_input:
            return x
        return self.binarizer.forward_input(x, dim=self.channel_dim)

    def _binary_forward(self, x: Tensor) -> Tensor:
        """``apply_weight(sign(x), sign(W))`` times the weight and input
        scales, plus the bias (a layer with a spatial kernel or a stride
        scales its input first: its window mixes positions of different
        input scales).

        With ±1 inputs and weights the products sum to exact integers, so
        the output is a function of the Hamming distance alone - what the
        packed runtime computes (``(C - 2d) * scale * β + shift``). Scaling
        the weights or inputs first (mathematically the same) would round
        each product and make the sum depend on the order of the channels:
        two points at the same distance would get outputs differing in the
        last bit, and the sign of their difference (DGCNN's edge features
        ``x_j − x_i``) would differ from the runtime's.
        """
        self.binarizer.prepare(self, x)
        x_scale = None
        if self.binarize_input:
            x, x_scale = self.binarizer.forward_input_parts(
                x, dim=self.channel_dim)
            if x_scale is not None and not self._pointwise():
                # a kernel window mixes positions of different β
                x, x_scale = x * x_scale, None
        sign, scale = self.binarizer.forward_weight_parts(self.latent_weight())
        scale = _on_channels(scale, x, self.channel_dim)
        bias = None
        if self.bias is not None:
            bias = _on_channels(self.bias, x, self.channel_dim)
        y = self.apply_weight(x, sign)
        if x_scale is not None:
            y = _scale_output(y, scale)
            scale = x_scale
        return _scale_output(y, scale, bias)

    def _pointwise(self) -> bool:
        """Whether every output position reads exactly its own input
        position (a linear layer, a 1x1 convolution with stride 1 and no
        padding), so a per-position input scale can multiply the output."""
        if not isinstance(self, (nn.Conv1d, nn.Conv2d)):
            return True
        pad = self.padding
        return (all(k == 1 for k in self.kernel_size)
                and all(st == 1 for st in self.stride)
                and (pad == 'valid' or all(p == 0 for p in pad)))

    def extra_repr(self) -> str:
        return (super().extra_repr() + f', binarizer={self.binarizer.name!r}'
                f', binarize_input={self.binarize_input}')


class _ScaleShift(torch.autograd.Function):
    """``y * scale + bias`` for ``y``, the layer's fresh linear output,
    written over ``y`` where the scale is a constant.

    The binary layers scale their large (B, C, N) outputs, not their small
    weights (see ``BinaryMixin._binary_forward``). Done by autograd, the
    product and the sum are two new (B, C, N) tensors. Here, with a
    constant scale (XNOR's, IR-Net's), both are taken in place on ``y``
    (nothing that produced ``y``, a convolution or a matmul, reads it in
    its backward) and nothing large is saved. A learnable scale (LSR's α)
    needs ``y`` for its gradient ``Σ grad · y``: then the product is a new
    tensor, ``y`` is kept (no one else holds it, so no later in-place op
    can change it) and, for a single α, the gradient is one dot product
    instead of a product and a sum. The values are the same bits as
    autograd's ``y * scale + bias``.
    """

    @staticmethod
    def forward(ctx, y: Tensor, scale: Tensor,
                bias: Optional[Tensor]) -> Tensor:
        learnable = ctx.needs_input_grad[1]
        if learnable:
            out = y * scale
        else:
            out = y.mul_(scale)
            ctx.mark_dirty(y)
        if bias is not None:
            out.add_(bias)
        ctx.bias_shape = None if bias is None else bias.shape
        ctx.save_for_backward(scale, y if learnable else None)
        return out

    @staticmethod
    def backward(
        ctx, grad: Tensor
    ) -> Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
        scale, y = ctx.saved_tensors
        grad_y = grad_scale = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_y = grad * scale
        if ctx.needs_input_grad[1]:
            if scale.dim() == 0:
                grad_scale = torch.dot(grad.reshape(-1), y.reshape(-1))
            else:
                grad_scale = (grad * y).sum_to_size(scale.shape)
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum_to_size(ctx.bias_shape)
        return grad_y, grad_scale, grad_bias


def _is_one(scale: Tensor) -> bool:
    """A constant scale of 1 (BNN's): nothing to multiply."""
    return (not scale.requires_grad and scale.dim() == 0 and bool(scale == 1))


def _scale_output(y: Tensor,
                  scale: Tensor,
                  bias: Optional[Tensor] = None) -> Tensor:
    """``y * scale + bias`` for a layer's fresh output ``y`` (which the
    caller hands over: it may be overwritten) by :class:`_ScaleShift`; the
    product is skipped for a constant scale of 1 (BNN)."""
    if _is_one(scale):
        return y if bias is None else y.add_(bias)
    if not torch.is_grad_enabled():
        y.mul_(scale)
        return y if bias is None else y.add_(bias)
    return _ScaleShift.apply(y, scale, bias)


def _on_channels(v: Tensor, like: Tensor, dim: int) -> Tensor:
    """A per-channel (or 0-dim) ``v`` shaped to broadcast on ``dim``."""
    if v.dim() == 0:
        return v
    shape = [1] * like.dim()
    shape[dim] = -1
    return v.reshape(shape)


def _check_kwargs(cls_name: str, kwargs: dict) -> None:
    if 'binarizer_cfg' in kwargs:
        raise TypeError(f'{cls_name} takes binarizer=, not binarizer_cfg=')


class _BinConvMixin(BinaryMixin):
    """Constructor and forward shared by :class:`BinConv1d`/``2d``."""

    def __init__(self,
                 *args,
                 binarizer: BinarizerCfg = 'xnor',
                 binarize_input: bool = True,
                 **kwargs) -> None:
        _check_kwargs(type(self).__name__, kwargs)
        super().__init__(*args, **kwargs)
        self._init_binary(binarizer, binarize_input, self.in_channels,
                          self.out_channels)

    def apply_weight(self,
                     x: Tensor,
                     weight: Tensor,
                     bias: Optional[Tensor] = None) -> Tensor:
        return self._conv_forward(x, weight, bias)

    def forward(self, x: Tensor) -> Tensor:
        return self._binary_forward(x)


@_register
class BinConv1d(_BinConvMixin, nn.Conv1d):
    """1-bit ``nn.Conv1d``.

    Args:
        *args: ``nn.Conv1d`` arguments.
        binarizer (str | dict): Binarizer name (``'xnor'``) or
            ``dict(type=name, **options)``. Defaults to 'xnor'.
        binarize_input (bool): Binarize the input activations too.
            Defaults to True.
        **kwargs: ``nn.Conv1d`` keyword arguments.
    """


@_register
class BinConv2d(_BinConvMixin, nn.Conv2d):
    """1-bit ``nn.Conv2d``; arguments as :class:`BinConv1d`."""


@_register
class BinLinear(BinaryMixin, nn.Linear):
    """1-bit ``nn.Linear``. The input's channel axis is the last one.

    Args:
        in_features (int): Input features.
        out_features (int): Output features.
        bias (bool): Add a learnable bias. Defaults to True.
        binarizer (str | dict): See :class:`BinConv1d`. Defaults to 'xnor'.
        binarize_input (bool): Binarize the input. Defaults to True.
        **kwargs: ``nn.Linear`` keyword arguments (device, dtype).
    """

    channel_dim = -1

    def __init__(self,
                 in_features: int,
                 out_features: int,
                 bias: bool = True,
                 binarizer: BinarizerCfg = 'xnor',
                 binarize_input: bool = True,
                 **kwargs) -> None:
        _check_kwargs(type(self).__name__, kwargs)
        super().__init__(in_features, out_features, bias=bias, **kwargs)
        self._init_binary(binarizer, binarize_input, in_features, out_features)

    def apply_weight(self,
                     x: Tensor,
                     weight: Tensor,
                     bias: Optional[Tensor] = None) -> Tensor:
        return F.linear(x, weight, bias)

    def forward(self, x: Tensor) -> Tensor:
        return self._binary_forward(x)


#: FP torch layer -> its binary counterpart.
def is_binary_layer(module: nn.Module) -> bool:
    """True for a binary layer: a conv or linear with a ``binarizer``.

    Duck-typed, so layers that carry a binarizer without subclassing
    :class:`BinaryMixin` are recognised by the deploy and analysis code too.
    """
    return isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) \
        and isinstance(getattr(module, 'binarizer', None), nn.Module)


BINARY_LAYERS = {
    nn.Conv1d: BinConv1d,
    nn.Conv2d: BinConv2d,
    nn.Linear: BinLinear
}


def from_float(module: nn.Module,
               binarizer: BinarizerCfg = 'xnor',
               binarize_input: bool = True) -> nn.Module:
    """A binary copy of an ``nn.Conv1d``/``nn.Conv2d``/``nn.Linear``.

    The new layer has the same hyper-parameters, a copy of the FP32 weight
    and bias (same dtype and device), the same ``requires_grad`` flags and
    the same training mode.

    Args:
        module (nn.Module): The FP layer (exactly one of the three types).
        binarizer (str | dict): Binarizer for the new layer.
        binarize_input (bool): Binarize the input activations.

    Returns:
        nn.Module: The binary layer.
    """
    cls = BINARY_LAYERS.get(type(module))
    if cls is None:
        raise TypeError(f'cannot binarize a {type(module).__name__}; '
                        f'supported: ' + ', '.join(t.__name__
                                                   for t in BINARY_LAYERS))
    factory: Any = dict(device=module.weight.device, dtype=module.weight.dtype)
    if cls is BinLinear:
        new = BinLinear(
            module.in_features,
            module.out_features,
            bias=module.bias is not None,
            binarizer=binarizer,
            binarize_input=binarize_input,
            **factory)
    else:
        new = cls(
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            dilation=module.dilation,
            groups=module.groups,
            bias=module.bias is not None,
            padding_mode=module.padding_mode,
            binarizer=binarizer,
            binarize_input=binarize_input,
            **factory)
    new.binarizer.to(module.weight.device)
    new.weight.data.copy_(module.weight.data)
    new.weight.requires_grad_(module.weight.requires_grad)
    if module.bias is not None:
        new.bias.data.copy_(module.bias.data)
        new.bias.requires_grad_(module.bias.requires_grad)
    new.train(module.training)
    return new
