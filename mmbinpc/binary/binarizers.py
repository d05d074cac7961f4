# Copyright (c) mmbinpc contributors. All rights reserved.
"""Binarizers: how weights and activations become ±1 and how gradients flow.

A binarizer is a small :class:`torch.nn.Module` owned by one binary layer
(``layer.binarizer``). It defines

* the forward quantization of the layer's latent FP32 weight
  (:meth:`Binarizer.forward_weight`) and of its input activations
  (:meth:`Binarizer.forward_input`), and
* the straight-through estimator (STE) used for the non-differentiable sign
  in the backward pass (a custom :class:`torch.autograd.Function`).

Only the derivative of ``sign`` is replaced; centring, standardisation and
learnable scales keep their exact autograd derivatives, and the data-derived
scales (XNOR's α and β, IR-Net's power of two, Bi-Real/ReAct's α) are
detached. ``sign(0)`` is +1 everywhere, so a binary value is never 0.

For deployment every binarizer splits its output into a ±1 tensor and a scale:
``weight_parts(w) -> (sign, scale)`` with ``forward_weight(w) == sign * scale``
(scale of shape ``(out_channels,)`` broadcast on dim 0, or 0-dim) and
``input_parts(x) -> (sign, scale_or_None)`` for ``x`` laid out
``(B, C_in, ...)``.

Binarizers are looked up by lowercase name in :data:`BINARIZERS`
(``bnn``, ``xnor``, ``irnet``, ``lsr``, ``bireal``, ``react``) and built with
:func:`build_binarizer`. Each class declares what it does once, as a
:class:`BinarizerSpec` (``cls.spec``): the packed exporter, the complexity
counter, ``tools/convert_config.py`` and the docs table read it, so a new
binarizer is one registered class.
"""
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from mmbinpc.registry import BINARIZERS

BinarizerCfg = Union[str, Dict[str, Any], 'Binarizer']

#: kinds of a :class:`BinarizerSpec` field -> what each means
WEIGHT_SCALES = {
    'none': 'no scale: the weight is ±1',
    'per_channel': 'one float per output channel (data-derived or learned)',
    'per_layer': 'one float for the whole layer',
}
INPUT_SCALES = {
    'none': 'no scale: the input is ±1',
    'mean_abs': "one float per point, mean |a| over its channels (XNOR's β)",
}
INPUT_THRESHOLDS = {
    'none': 'sign(a) (or sign(a − μ) with center_input)',
    'learned': 'sign(a − τ) with one learned τ per input channel',
}


@dataclass(frozen=True)
class BinarizerSpec:
    """What a binarizer does, declared once on its class (``cls.spec``).

    Read by the packed exporter (input scale and threshold of a packed
    layer), the complexity counter (floats stored beside the bits),
    ``tools/convert_config.py`` (the methods it offers) and the docs table
    test. Larq's per-layer ``precision`` attribute is the model.

    Attributes:
        weight (str): The binary weight as a formula, e.g. ``'sign(W)'``.
        activation (str): The binary input as a formula.
        backward (str): The estimator that replaces ``sign``'s derivative.
        weight_scale (str): A key of :data:`WEIGHT_SCALES`.
        input_scale (str): A key of :data:`INPUT_SCALES`.
        input_threshold (str): A key of :data:`INPUT_THRESHOLDS`.
        source (str): The paper.
    """

    weight: str
    activation: str
    backward: str
    weight_scale: str = 'none'
    input_scale: str = 'none'
    input_threshold: str = 'none'
    source: str = ''

    def __post_init__(self) -> None:
        for field_name, kinds in (('weight_scale', WEIGHT_SCALES),
                                  ('input_scale', INPUT_SCALES),
                                  ('input_threshold', INPUT_THRESHOLDS)):
            value = getattr(self, field_name)
            if value not in kinds:
                raise ValueError(f'BinarizerSpec.{field_name} must be one of '
                                 f'{", ".join(kinds)}; got {value!r}')

    def scale_floats(self, out_channels: int) -> int:
        """Floats stored for the weight scale of a layer."""
        return dict(
            none=0, per_channel=out_channels, per_layer=1)[self.weight_scale]

    def threshold_floats(self, in_channels: int) -> int:
        """Floats stored for the input thresholds of a layer."""
        return in_channels if self.input_threshold == 'learned' else 0


def register_binarizer(name: str) -> Callable[[type], type]:
    """Class decorator adding a binarizer to the :data:`BINARIZERS` registry.

    Unlike a plain ``BINARIZERS.register_module``, it requires the class to
    declare its :class:`BinarizerSpec` and sets ``cls.name``.

    Args:
        name (str): Lowercase name used in configs (``binarizer='xnor'``).

    Returns:
        Callable: The decorator.
    """
    if name != name.lower():
        raise ValueError(f'binarizer names are lowercase, got {name!r}')

    def _register(cls: type) -> type:
        if not isinstance(getattr(cls, 'spec', None), BinarizerSpec):
            raise TypeError(
                f'binarizer {name!r} ({cls.__name__}) declares no spec; set '
                'the class attribute spec = BinarizerSpec(...) (what it '
                'signs, scales and how its gradient flows)')
        if name in BINARIZERS.module_dict:
            raise KeyError(f'binarizer {name!r} is already registered '
                           f'({BINARIZERS.module_dict[name].__name__})')
        cls.name = name
        BINARIZERS.register_module(name=name, module=cls)
        return cls

    return _register


def binarizer_names() -> Tuple[str, ...]:
    """Names of all registered binarizers, in registration order."""
    return tuple(BINARIZERS.module_dict)


def check_binarizer_name(name: Any) -> str:
    """Validate a binarizer name.

    Args:
        name: The name to check.

    Returns:
        str: The name.

    Raises:
        ValueError: If ``name`` is not a registered binarizer; the message
            lists the valid names.
    """
    if not isinstance(name, str) or name not in BINARIZERS.module_dict:
        raise ValueError(f'unknown binarizer {name!r}; valid binarizers: '
                         f'{", ".join(binarizer_names())}')
    return name


def build_binarizer(cfg: BinarizerCfg,
                    in_channels: Optional[int] = None,
                    out_channels: Optional[int] = None) -> 'Binarizer':
    """Build a binarizer from a name, a dict or an existing instance.

    Args:
        cfg (str | dict | Binarizer): ``'xnor'``, ``dict(type='react',
            ...)`` or a ready :class:`Binarizer` (returned unchanged).
        in_channels (int, optional): Input channels of the owning layer
            (needed by binarizers with per-input-channel parameters).
        out_channels (int, optional): Output channels of the owning layer.

    Returns:
        Binarizer: The binarizer module.
    """
    if isinstance(cfg, Binarizer):
        return cfg
    if isinstance(cfg, str):
        name, opts = cfg, {}
    elif isinstance(cfg, dict):
        opts = dict(cfg)
        if 'type' not in opts:
            raise ValueError(f'a binarizer dict needs a "type" key naming one '
                             f'of {", ".join(binarizer_names())}; got {cfg!r}')
        name = opts.pop('type')
    else:
        raise TypeError(f'binarizer must be a name, a dict with "type" or a '
                        f'Binarizer, got {type(cfg).__name__}')
    return BINARIZERS.build(
        dict(
            _scope_='mmbinpc',  # this registry, whatever the default scope
            type=check_binarizer_name(name),
            in_channels=in_channels,
            out_channels=out_channels,
            **opts))


def hard_sign(x: Tensor) -> Tensor:
    """Sign with ``sign(0) = +1``: returns a ±1 tensor of ``x``'s dtype.

    ``+1`` where ``x >= 0`` (``-0.0`` included), ``-1`` elsewhere (NaN
    included), as the packed engine's bits.
    """
    # ``2 · (x >= 0) − 1`` written into one tensor of x's dtype: three
    # vectorised passes and one allocation. ``torch.where(x >= 0, 1, -1)``
    # gives the same values but needs a bool temporary and runs a
    # broadcasting kernel several times slower on CPU; this sign runs on
    # every binary layer's input in every training step.
    out = torch.empty_like(x, memory_format=torch.preserve_format)
    return torch.ge(x, 0, out=out).mul_(2).sub_(1)


# --------------------------------------------------------------------------
# Straight-through estimators (custom autograd functions).
# --------------------------------------------------------------------------
class _SignSTE(torch.autograd.Function):
    """``sign(x)`` forward keeping ``x`` for a subclass's backward."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return hard_sign(x)


class SignClippedSTE(_SignSTE):
    """``sign(x)`` forward; backward ``g · 1{|x| ≤ 1}`` (clipped STE)."""

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        x, = ctx.saved_tensors
        if x.dtype != grad.dtype:
            return grad * (x.abs() <= 1).to(grad.dtype)
        # the 0/1 mask built in place in one new tensor, then multiplied in
        # place: the same products as ``grad * mask`` with one allocation
        # instead of three
        return x.abs().le_(1).mul_(grad)


class SignApproxSTE(_SignSTE):
    """``sign(x)`` forward; Bi-Real's ApproxSign backward.

    The derivative is ``2 + 2x`` on ``[−1, 0)``, ``2 − 2x`` on ``[0, 1]`` and
    0 elsewhere, i.e. ``2 · max(0, 1 − |x|)``.
    """

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        x, = ctx.saved_tensors
        if x.dtype != grad.dtype:
            return grad * 2.0 * (1.0 - x.abs()).clamp(min=0.0)
        # (grad · 2) · max(0, −|x| + 1): the same operations in the same
        # order as ``grad * 2.0 * (1.0 - x.abs()).clamp(min=0.0)``, with
        # two new tensors instead of five
        slope = x.abs().neg_().add_(1.0).clamp_(min=0.0)
        return torch.mul(grad, 2.0).mul_(slope)


class SignEDE(torch.autograd.Function):
    """``sign(x)`` forward; IR-Net's Error Decay Estimator backward.

    The derivative is ``k · t · (1 − tanh²(t · x))``.
    """

    @staticmethod
    def forward(ctx, x: Tensor, t: float, k: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.t, ctx.k = t, k
        return hard_sign(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tuple[Tensor, None, None]:
        x, = ctx.saved_tensors
        t, k = ctx.t, ctx.k
        if x.dtype != grad.dtype:
            return (grad * (k * t) * (1.0 - torch.tanh(t * x).pow(2)), None,
                    None)
        # the same operations in the same order as
        # ``grad * (k * t) * (1.0 - torch.tanh(t * x).pow(2))``, in place on
        # two new tensors instead of five
        slope = torch.mul(x, t).tanh_().pow_(2).neg_().add_(1.0)
        return torch.mul(grad, k * t).mul_(slope), None, None


def _std(x: Tensor) -> Tensor:
    """Unbiased std of all elements; NaN (no warning) for one element."""
    if x.numel() < 2:
        return x.new_tensor(float('nan'))
    return x.std()


def _per_out_channel(fn: Callable[[Tensor], Tensor], w: Tensor) -> Tensor:
    """Reduce ``w`` over all but dim 0 with ``fn``; returns shape (out,)."""
    return fn(w.reshape(w.shape[0], -1))


def _bcast0(scale: Tensor, like: Tensor) -> Tensor:
    """View a (out,) or 0-dim scale so it broadcasts on dim 0 of ``like``."""
    if scale.dim() == 0:
        return scale
    return scale.reshape((-1, ) + (1, ) * (like.dim() - 1))


def _channel_view(param: Tensor, x: Tensor, dim: int) -> Tensor:
    """View a (C,) parameter so it broadcasts along ``dim`` of ``x``."""
    dim = dim % x.dim()
    shape = [1] * x.dim()
    shape[dim] = -1
    return param.reshape(shape)


# --------------------------------------------------------------------------
# Binarizers.
# --------------------------------------------------------------------------
class Binarizer(nn.Module):
    """Base class: how one layer binarizes its weight and its input.

    Subclasses implement :meth:`_weight_sign_input` (what is signed),
    :meth:`weight_scale`, :meth:`_input_sign_input` and :meth:`input_scale`
    and choose the STE. Keyword arguments ``in_channels``/``out_channels``
    are passed by the owning layer; unused ones are ignored.

    An FP32 state dict (which has no binarizer entries) loads into a layer
    that owns a binarizer: when none of the binarizer's keys are present, its
    parameters and buffers keep their current values and are not reported as
    missing.

    Any binarizer can take a *centred input sign*, ``center_input=True``:
    the input becomes ``sign(a − μ_c)`` (XNOR's β then is ``mean|a − μ|``),
    with ``μ`` the per-channel mean of the batch in training and its running
    average (momentum :attr:`CENTER_MOMENTUM`, like BatchNorm's
    ``running_mean``) in evaluation. It is meant for a layer that reads a
    max-pooled feature: the maximum over many points is almost always
    positive, so ``sign(a)`` is the same +1 vector for every cloud and the
    layer sees no information (docs/recipe.md). The deployed model folds
    ``μ`` into the packed input threshold.

    Args:
        in_channels (int, optional): Input channels of the owning layer
            (needed by ``center_input``).
        out_channels (int, optional): Output channels of the owning layer.
        center_input (bool): Binarize ``a − μ`` instead of ``a``.
            Defaults to False.
    """

    name: str = ''
    #: what the binarizer does (each registered subclass declares its own)
    spec: ClassVar[Optional[BinarizerSpec]] = None
    #: weight of a new batch mean in the running centre of ``center_input``
    CENTER_MOMENTUM: float = 0.1

    def __init__(self,
                 in_channels: Optional[int] = None,
                 out_channels: Optional[int] = None,
                 center_input: bool = False) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.center_input = bool(center_input)
        if self.center_input:
            if in_channels is None:
                raise ValueError(
                    'center_input=True needs in_channels for its per-channel '
                    'centre; build the binarizer through a binary layer or '
                    'pass in_channels=')
            self.register_buffer('input_center', torch.zeros(in_channels))
            self.register_buffer('input_center_ready',
                                 torch.zeros((), dtype=torch.bool))

    # -- pieces a subclass defines -----------------------------------------
    def _weight_sign_input(self, weight: Tensor) -> Tensor:
        """The tensor whose sign is the binary weight (default: ``W``)."""
        return weight

    def weight_scale(self, weight: Tensor) -> Tensor:
        """Scale of the binary weight: (out,) or 0-dim (default: 1)."""
        return weight.new_ones(())

    def _input_sign_input(self, x: Tensor, dim: int) -> Tensor:
        """The tensor whose sign is the binary input (default: ``x``)."""
        return x

    def input_scale(self, x: Tensor, dim: int = 1) -> Optional[Tensor]:
        """Scale of the binary input, or None (default)."""
        return None

    def _sign_weight(self, x: Tensor) -> Tensor:
        return SignClippedSTE.apply(x)

    def _sign_input(self, x: Tensor) -> Tensor:
        return SignClippedSTE.apply(x)

    # -- centred input (optional) -------------------------------------------
    def _centered(self, x: Tensor, dim: int, update: bool) -> Tensor:
        """``x − μ`` for ``center_input`` (``x`` unchanged otherwise).

        In training ``μ`` is the batch mean per channel (detached) and, with
        ``update``, is folded into the running centre; in evaluation ``μ``
        is the running centre.
        """
        if not self.center_input:
            return x
        dim = dim % x.dim()
        if x.shape[dim] != self.input_center.numel():
            raise ValueError(
                f'{type(self).__name__} centres {self.input_center.numel()} '
                f'input channels but the input has {x.shape[dim]} on dim '
                f'{dim}')
        if not self.training:
            return x - _channel_view(self.input_center, x, dim)
        dims = [d for d in range(x.dim()) if d != dim]
        mean = x.detach().mean(dim=dims).to(self.input_center.dtype)
        if update:
            with torch.no_grad():
                if bool(self.input_center_ready):
                    self.input_center.lerp_(mean, self.CENTER_MOMENTUM)
                else:  # the first batch sets it (no bias towards 0)
                    self.input_center.copy_(mean)
                    self.input_center_ready.fill_(True)
        return x - _channel_view(mean.to(x.dtype), x, dim)

    def input_threshold(self) -> Optional[Tensor]:
        """Per-channel value the deployed input is compared with, or None.

        ``sign(x − t)`` in evaluation mode equals this binarizer's input
        sign: the running centre of ``center_input`` plus any learned
        threshold (``react``); None when the input sign is ``sign(x)``.
        """
        if not self.center_input:
            return None
        return self.input_center.detach().clone()

    # -- public interface ---------------------------------------------------
    def forward_weight_parts(self, weight: Tensor) -> Tuple[Tensor, Tensor]:
        """The binary weight's sign (with its STE gradient) and scale.

        Args:
            weight (Tensor): Latent weight, output channels on dim 0.

        Returns:
            tuple[Tensor, Tensor]: ±1 shaped like ``weight``, and the scale
            (shape (out,) or 0-dim, with its gradient).
        """
        sign_input = self._weight_sign_input(weight)
        signed = self._sign_weight(sign_input)
        return signed, self._weight_scale_from(weight, sign_input.detach())

    def forward_weight(self, weight: Tensor) -> Tensor:
        """The binary weight used in the forward pass (with STE gradients).

        Args:
            weight (Tensor): Latent weight, output channels on dim 0.

        Returns:
            Tensor: ``sign(·) * scale``, shaped like ``weight``.
        """
        signed, scale = self.forward_weight_parts(weight)
        return signed * _bcast0(scale, weight)

    def _weight_scale_from(self, weight: Tensor, sign_input: Tensor) -> Tensor:
        """:meth:`weight_scale` given the already computed (detached) sign
        input, so that a scale derived from it (XNOR, IR-Net) does not
        recompute it in every training step. Default: ``weight_scale``."""
        return self.weight_scale(weight)

    def forward_input_parts(self,
                            x: Tensor,
                            dim: int = 1) -> Tuple[Tensor, Optional[Tensor]]:
        """The binary activation's sign (with its STE gradient) and scale.

        Args:
            x (Tensor): Input activations.
            dim (int): Channel axis of ``x``. Defaults to 1.

        Returns:
            tuple: ±1 shaped like ``x``, and the input scale (size 1 on
            ``dim``) or None.
        """
        x = self._centered(x, dim, update=True)
        signed = self._sign_input(self._input_sign_input(x, dim))
        return signed, self.input_scale(x, dim)

    def forward_input(self, x: Tensor, dim: int = 1) -> Tensor:
        """The binary activation (with STE gradients).

        Args:
            x (Tensor): Input activations.
            dim (int): Channel axis of ``x``. Defaults to 1 (``(B, C, ...)``).

        Returns:
            Tensor: ``sign(·)`` times the input scale when there is one.
        """
        signed, scale = self.forward_input_parts(x, dim)
        return signed if scale is None else signed * scale

    def forward(self, x: Tensor, dim: int = 1) -> Tensor:
        """Alias of :meth:`forward_input`."""
        return self.forward_input(x, dim)

    def prepare(self, layer: nn.Module, x: Tensor) -> None:
        """Called by the layer before each forward (no-op by default).

        Args:
            layer (nn.Module): The owning binary layer.
            x (Tensor): Its FP input.
        """

    @torch.no_grad()
    def weight_parts(self, weight: Tensor) -> Tuple[Tensor, Tensor]:
        """Split the binary weight into ``(sign, scale)`` for deployment.

        Args:
            weight (Tensor): Latent weight, output channels on dim 0.

        Returns:
            tuple[Tensor, Tensor]: A ±1 tensor shaped like ``weight`` and a
            scale of shape (out,) or 0-dim, with
            ``forward_weight(weight) == sign * scale`` (broadcast on dim 0).
        """
        sign = hard_sign(self._weight_sign_input(weight))
        return sign, self.weight_scale(weight).detach().clone()

    @torch.no_grad()
    def input_parts(self,
                    x: Tensor,
                    dim: int = 1) -> Tuple[Tensor, Optional[Tensor]]:
        """Split the binary input into ``(sign, scale_or_None)``.

        Args:
            x (Tensor): Activations laid out ``(B, C_in, ...)``.
            dim (int): Channel axis. Defaults to 1.

        Returns:
            tuple: A ±1 tensor (after any learned threshold) and the scale
            (shape ``(B, 1, ...)``) or None.
        """
        x = self._centered(x, dim, update=False)
        sign = hard_sign(self._input_sign_input(x, dim))
        scale = self.input_scale(x, dim)
        return sign, None if scale is None else scale.detach().clone()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        own = [prefix + k for k, _ in self.named_parameters(recurse=False)]
        own += [prefix + k for k, _ in self.named_buffers(recurse=False)]
        own = [
            k for k in own
            if k.rsplit('.', 1)[-1] not in self._non_persistent_buffers_set
        ]
        if own and not any(k in state_dict for k in own):
            return  # an FP32 state dict: keep our current values
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self) -> str:
        centred = ', center_input=True' if self.center_input else ''
        return f'name={self.name!r}{centred}'


@register_binarizer('bnn')
class BNNBinarizer(Binarizer):
    """BNN (Hubara et al.): ``sign(W)``, ``sign(a)``, no scale, clipped STE."""

    spec = BinarizerSpec(
        weight='sign(W)',
        activation='sign(a)',
        backward='clipped STE 1{|x| <= 1}',
        source='Hubara et al., NeurIPS 2016 (BNN)')


@register_binarizer('xnor')
class XNORBinarizer(Binarizer):
    """XNOR-Net (Rastegari et al.).

    Weights are centred per output channel, ``Wᶜ = W − mean(W)``, and become
    ``sign(Wᶜ) · α`` with ``α = mean|Wᶜ|`` per output channel (detached).
    Activations become ``sign(a) · β`` with ``β = mean|a|`` over the input
    channels of each point (detached). Clipped STE for both.
    """

    spec = BinarizerSpec(
        weight='sign(Wc)·α, Wc = W − mean_c(W), α = mean_c|Wc|',
        activation='sign(a)·β, β = mean |a| over the channels of each point',
        backward='clipped STE',
        weight_scale='per_channel',
        input_scale='mean_abs',
        source='Rastegari et al., ECCV 2016 (XNOR-Net)')

    def _weight_sign_input(self, weight: Tensor) -> Tensor:
        mean = _per_out_channel(lambda w: w.mean(1), weight)
        return weight - _bcast0(mean, weight)

    def weight_scale(self, weight: Tensor) -> Tensor:
        return self._scale_of_centred(self._weight_sign_input(weight.detach()))

    @staticmethod
    def _scale_of_centred(centred: Tensor) -> Tensor:
        return _per_out_channel(lambda w: w.abs().mean(1), centred)

    def _weight_scale_from(self, weight: Tensor, sign_input: Tensor) -> Tensor:
        if type(self).weight_scale is not XNORBinarizer.weight_scale:
            return self.weight_scale(weight)  # a subclass's own scale
        return self._scale_of_centred(sign_input)

    def input_scale(self, x: Tensor, dim: int = 1) -> Tensor:
        return x.detach().abs().mean(dim=dim, keepdim=True)


@register_binarizer('irnet')
class IRNetBinarizer(Binarizer):
    """IR-Net (Qin et al., CVPR 2020) with the Error Decay Estimator.

    Weights are standardised per output channel, ``Ŵ = (W − μ) / σ``, and
    become ``sign(Ŵ) · 2^round(log2(mean|Ŵ|))`` per output channel (the
    power-of-two scale is detached). Activations become ``sign(a)``.
    Both use the EDE backward ``k · t · (1 − tanh²(t · x))`` with
    ``t = 10^(−3 + 4 · progress)`` and ``k = max(1 / t, 1)``; ``progress`` in
    [0, 1] is set by :class:`mmbinpc.engine.IRNetScheduleHook` (or
    :meth:`set_progress`).

    Args:
        eps (float): Added to σ. Defaults to 1e-8.
    """

    spec = BinarizerSpec(
        weight='sign(Ŵ)·2^round(log2(mean_c|Ŵ|)), Ŵ = (W − μ_c)/σ_c',
        activation='sign(a)',
        backward='EDE k·t·(1 − tanh²(t·x))',
        weight_scale='per_channel',
        source='Qin et al., CVPR 2020 (IR-Net)')

    T_MIN = 1e-3
    T_MAX = 10.0

    def __init__(self, eps: float = 1e-8, **kwargs) -> None:
        super().__init__(**kwargs)
        self.eps = eps
        self.progress: Optional[float] = None
        self.t = self.T_MIN
        self.k = max(1.0 / self.t, 1.0)
        self._warned = False

    def set_progress(self, progress: float) -> None:
        """Set the training progress and update ``t`` and ``k``.

        Args:
            progress (float): Fraction of training done, clamped to [0, 1].
        """
        progress = min(max(float(progress), 0.0), 1.0)
        self.progress = progress
        low, high = math.log10(self.T_MIN), math.log10(self.T_MAX)
        self.t = 10.0**(low + (high - low) * progress)
        self.k = max(1.0 / self.t, 1.0)

    def _check_schedule(self, x: Tensor) -> None:
        if (self.progress is None and not self._warned and x.requires_grad
                and torch.is_grad_enabled()):
            self._warned = True
            warnings.warn(
                'IR-Net binarizer is trained but its EDE schedule was never '
                'set, so t stays at 1e-3; add custom_hooks=[dict(type='
                '"IRNetScheduleHook")] to the config or call '
                'set_irnet_progress(model, progress).', UserWarning)

    def _weight_sign_input(self, weight: Tensor) -> Tensor:
        flat = weight.reshape(weight.shape[0], -1)
        mean = flat.mean(1)
        std = flat.std(1, correction=1 if flat.shape[1] > 1 else 0)
        return (weight - _bcast0(mean, weight)) / (
            _bcast0(std, weight) + self.eps)

    def weight_scale(self, weight: Tensor) -> Tensor:
        return self._scale_of_standard(
            self._weight_sign_input(weight.detach()))

    def _weight_scale_from(self, weight: Tensor, sign_input: Tensor) -> Tensor:
        if type(self).weight_scale is not IRNetBinarizer.weight_scale:
            return self.weight_scale(weight)  # a subclass's own scale
        return self._scale_of_standard(sign_input)

    @staticmethod
    def _scale_of_standard(standard: Tensor) -> Tensor:
        mean_abs = _per_out_channel(lambda w: w.abs().mean(1), standard)
        # a constant channel standardises to 0; give it scale 1, not 2^-inf
        mean_abs = torch.where(mean_abs > 0, mean_abs,
                               torch.ones_like(mean_abs))
        return torch.pow(2.0, torch.round(torch.log2(mean_abs)))

    def _sign_weight(self, x: Tensor) -> Tensor:
        self._check_schedule(x)
        return SignEDE.apply(x, self.t, self.k)

    def _sign_input(self, x: Tensor) -> Tensor:
        return SignEDE.apply(x, self.t, self.k)

    def extra_repr(self) -> str:
        return super().extra_repr() + f', t={self.t:.4g}, k={self.k:.4g}'


@register_binarizer('lsr')
class LSRBinarizer(Binarizer):
    """BiPointNet's layer-wise scale recovery (LSR).

    Weights become ``sign(W − mean(W)) · α`` with one learnable scalar α per
    layer (mean over the whole layer); activations become ``sign(a)``
    (unscaled). Clipped STE for both; α gets its exact gradient.

    α is initialised on the first training batch to
    ``std(a ⊛ Wᶜ) / std(sign(a) ⊛ sign(Wᶜ))`` (layer outputs without bias;
    ``Wᶜ`` the centred weight), falling back to ``std(Wᶜ) / std(sign(Wᶜ))``
    when that ratio is not finite. The persistent buffer ``initialized``
    records it, so the initialisation survives save/load and never re-runs.
    """

    spec = BinarizerSpec(
        weight='sign(W − mean(W))·α, one learnable α per layer',
        activation='sign(a)',
        backward='clipped STE',
        weight_scale='per_layer',
        source='Qin et al., ICLR 2022 (BiPointNet, LSR)')

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.alpha = nn.Parameter(torch.ones(()))
        self.register_buffer('initialized', torch.zeros((), dtype=torch.bool))

    def _weight_sign_input(self, weight: Tensor) -> Tensor:
        return weight - weight.mean()

    def weight_scale(self, weight: Tensor) -> Tensor:
        return self.alpha

    @torch.no_grad()
    def init_alpha(self, layer: nn.Module, x: Tensor) -> float:
        """Initialise α from one batch (see the class docstring).

        Args:
            layer (nn.Module): The owning layer; must provide
                ``latent_weight()``, ``apply_weight(x, w)`` and
                ``binarize_input``.
            x (Tensor): The layer's FP input.

        Returns:
            float: The new α.
        """
        centred = self._weight_sign_input(layer.latent_weight())
        fp_out = layer.apply_weight(x, centred)
        x_bin = hard_sign(self._centered(
            x, layer.channel_dim, update=False)) if layer.binarize_input else x
        bin_out = layer.apply_weight(x_bin, hard_sign(centred))
        ratio = _std(fp_out) / _std(bin_out)
        if not torch.isfinite(ratio) or ratio <= 0:
            ratio = _std(centred) / _std(hard_sign(centred))
        if not torch.isfinite(ratio) or ratio <= 0:
            ratio = torch.ones_like(ratio)
        self.alpha.fill_(float(ratio))
        self.initialized.fill_(True)
        return float(ratio)

    def prepare(self, layer: nn.Module, x: Tensor) -> None:
        if self.training and not bool(self.initialized):
            self.init_alpha(layer, x)

    def extra_repr(self) -> str:
        alpha = float(self.alpha.detach())
        return (super().extra_repr() + f', alpha={alpha:.4g}, '
                f'initialized={bool(self.initialized)}')


@register_binarizer('bireal')
class BiRealBinarizer(Binarizer):
    """Bi-Real Net: magnitude-aware weights and ApproxSign activations.

    Weights become ``sign(W) · α`` with ``α = mean|W|`` per output channel
    (detached, clipped STE); activations become ``sign(a)`` with the
    ApproxSign backward (``2 + 2x`` on [−1, 0), ``2 − 2x`` on [0, 1], 0
    elsewhere).
    """

    spec = BinarizerSpec(
        weight='sign(W)·mean_c|W|',
        activation='sign(a)',
        backward='weights clipped STE; activations ApproxSign',
        weight_scale='per_channel',
        source='Liu et al., ECCV 2018 (Bi-Real)')

    def weight_scale(self, weight: Tensor) -> Tensor:
        return _per_out_channel(lambda w: w.abs().mean(1), weight.detach())

    def _sign_input(self, x: Tensor) -> Tensor:
        return SignApproxSTE.apply(x)


@register_binarizer('react')
class ReActBinarizer(BiRealBinarizer):
    """ReActNet's RSign: a learnable per-channel threshold before the sign.

    Activations become ``sign(a − τ_c)`` with ``τ`` a learnable vector over
    the input channels (initialised to 0) and the ApproxSign backward (τ gets
    the negated gradient). Weights as in ``bireal``.

    Args:
        in_channels (int): Number of input channels (set by the layer).
    """

    spec = BinarizerSpec(
        weight='as bireal',
        activation='sign(a − τ), learnable τ per channel',
        backward='as bireal',
        weight_scale='per_channel',
        input_threshold='learned',
        source='Liu et al., ECCV 2020 (ReActNet)')

    def __init__(self, in_channels: Optional[int] = None, **kwargs) -> None:
        if in_channels is None:
            raise ValueError('the react binarizer needs in_channels for its '
                             'per-channel threshold; build it through a '
                             'binary layer or pass in_channels=')
        super().__init__(in_channels=in_channels, **kwargs)
        self.threshold = nn.Parameter(torch.zeros(in_channels))

    def _input_sign_input(self, x: Tensor, dim: int) -> Tensor:
        if x.shape[dim] != self.threshold.numel():
            raise ValueError(
                f'react binarizer has {self.threshold.numel()} thresholds '
                f'but the input has {x.shape[dim]} channels on dim {dim}')
        return x - _channel_view(self.threshold, x, dim)

    def input_threshold(self) -> Tensor:
        """The learned threshold (plus the running centre, if any)."""
        threshold = self.threshold.detach().clone()
        centre = super().input_threshold()
        return threshold if centre is None else threshold + centre
