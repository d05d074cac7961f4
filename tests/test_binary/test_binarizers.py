# Copyright (c) mmbinpc contributors. All rights reserved.
"""Forward values and STE gradients of every binarizer."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmbinpc.binary.binarizers import (BINARIZERS, IRNetBinarizer,
                                       build_binarizer, hard_sign)
from mmbinpc.binary.layers import BinLinear

ALL = ('bnn', 'xnor', 'irnet', 'lsr', 'bireal', 'react')


def _bcast(scale, like):
    return scale if scale.dim() == 0 else scale.reshape((-1, ) + (1, ) *
                                                        (like.dim() - 1))


def test_registry_names_and_errors():
    assert set(ALL) <= set(BINARIZERS.module_dict)
    for name in ALL:
        assert build_binarizer(name, in_channels=3).name == name
    with pytest.raises(ValueError, match='valid binarizers: .*xnor'):
        build_binarizer('dorefa')
    with pytest.raises(ValueError, match='"type"'):
        build_binarizer(dict(eps=1e-5))
    irnet = build_binarizer(dict(type='irnet', eps=1e-3))
    assert isinstance(irnet, IRNetBinarizer) and irnet.eps == 1e-3
    with pytest.raises(ValueError, match='in_channels'):
        build_binarizer('react')


@pytest.mark.parametrize('name', ALL)
def test_sign_of_zero_is_plus_one(name):
    binarizer = build_binarizer(name, in_channels=2)
    x = torch.zeros(1, 2, 3)
    assert torch.equal(binarizer.input_parts(x)[0], torch.ones_like(x))
    if binarizer.input_parts(x)[1] is None:
        assert torch.equal(binarizer.forward_input(x), torch.ones_like(x))
    w = torch.zeros(2, 2, 1)
    sign, _ = binarizer.weight_parts(w)
    assert torch.equal(sign, torch.ones_like(w))
    # sign(x) = +1 for x >= 0: -0.0 included (-0.0 >= 0), -1e-9 excluded
    assert hard_sign(torch.tensor([-0.0, 0.0, -1e-9,
                                   1e-9])).tolist() == [1.0, 1.0, -1.0, 1.0]


@pytest.mark.parametrize('name', ALL)
def test_parts_reproduce_forward(name):
    binarizer = build_binarizer(name, in_channels=3, out_channels=4)
    if name == 'react':
        binarizer.threshold.data = torch.tensor([0.1, -0.2, 0.3])
    w = torch.randn(4, 3, 2)
    sign, scale = binarizer.weight_parts(w)
    assert set(sign.unique().tolist()) <= {-1.0, 1.0}
    assert scale.shape in (torch.Size([]), torch.Size([4]))
    assert torch.allclose(binarizer.forward_weight(w), sign * _bcast(scale, w))
    x = torch.randn(2, 3, 5)
    sign, scale = binarizer.input_parts(x)
    assert set(sign.unique().tolist()) <= {-1.0, 1.0}
    expected = sign if scale is None else sign * scale
    if scale is not None:
        assert scale.shape == (2, 1, 5)
    assert torch.allclose(binarizer.forward_input(x), expected)


def test_bnn_forward_and_clipped_ste():
    binarizer = build_binarizer('bnn')
    x = torch.tensor([[-2.0, -0.5, 0.0, 0.5, 2.0]], requires_grad=True)
    y = binarizer.forward_input(x)
    assert y.tolist() == [[-1.0, -1.0, 1.0, 1.0, 1.0]]
    g = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])
    y.backward(g)
    assert x.grad.tolist() == [[0.0, 2.0, 3.0, 4.0, 0.0]]
    w = torch.tensor([[0.3, -1.7], [2.5, -0.1]], requires_grad=True)
    bw = binarizer.forward_weight(w)
    assert bw.tolist() == [[1.0, -1.0], [1.0, -1.0]]
    bw.backward(torch.ones_like(bw))
    assert w.grad.tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_xnor_weight_scale_and_gradient():
    binarizer = build_binarizer('xnor')
    w = torch.tensor([[1.0, 2.0, 3.0], [0.5, -0.5, 0.0]], requires_grad=True)
    bw = binarizer.forward_weight(w)
    # row 0 centred: [-1, 0, 1], alpha = 2/3; row 1 already centred, 1/3
    alpha = torch.tensor([2 / 3, 1 / 3])
    sign, scale = binarizer.weight_parts(w)
    assert torch.allclose(scale, alpha)
    centred = w.detach() - w.detach().mean(1, keepdim=True)
    assert torch.allclose(scale, centred.abs().mean(1))
    assert sign.tolist() == [[-1.0, 1.0, 1.0], [1.0, -1.0, 1.0]]
    assert torch.allclose(bw, sign * alpha[:, None])
    g = torch.tensor([[1.0, -2.0, 0.5], [3.0, 1.0, -1.0]])
    bw.backward(g)
    # STE: d sign(c)/dc = 1{|c|<=1}; alpha detached; centring is exact
    c_grad = g * alpha[:, None] * (centred.abs() <= 1).float()
    expected = c_grad - c_grad.mean(1, keepdim=True)
    assert torch.allclose(w.grad, expected)


def test_xnor_activation_scale_and_gradient():
    binarizer = build_binarizer('xnor')
    # (B=1, C=2, N=3): beta = mean |a| over the 2 channels of each point
    x = torch.tensor([[[0.5, -3.0, 0.0], [-1.5, 1.0, 0.2]]],
                     requires_grad=True)
    y = binarizer.forward_input(x)
    beta = torch.tensor([[[1.0, 2.0, 0.1]]])
    assert torch.allclose(binarizer.input_parts(x)[1], beta)
    assert torch.allclose(y, hard_sign(x.detach()) * beta)
    g = torch.arange(6.0).reshape(1, 2, 3)
    y.backward(g)
    expected = g * beta * (x.detach().abs() <= 1).float()
    assert torch.allclose(x.grad, expected)
    # channel-last layout (BinLinear)
    assert torch.allclose(
        binarizer.input_parts(x.detach().transpose(1, 2), dim=-1)[1],
        beta.transpose(1, 2))


def test_irnet_standardisation_power_of_two_scale():
    binarizer = build_binarizer('irnet')
    w = torch.stack([
        torch.tensor([1.0, 2.0, 3.0, 4.0]).repeat(4),
        torch.cat([torch.zeros(15), torch.tensor([10.0])])
    ])
    sign, scale = binarizer.weight_parts(w)
    std = (w - w.mean(1, keepdim=True)) / w.std(1, keepdim=True)
    # row 1 by hand: mean 0.625, std 2.5 -> W^ = (-0.25 x 15, 3.75),
    # mean|W^| = 0.46875 -> 2^round(-1.09) = 0.5; row 0: ~0.83 -> 2^0
    assert torch.allclose(std[1], torch.tensor([-0.25] * 15 + [3.75]))
    assert std.abs().mean(1)[1].item() == pytest.approx(0.46875)
    assert scale.tolist() == [1.0, 0.5]
    assert torch.equal(sign, hard_sign(std))
    assert torch.allclose(binarizer.forward_weight(w), sign * scale[:, None])


def test_irnet_schedule_values():
    binarizer = build_binarizer('irnet')
    for progress, t in ((0.0, 1e-3), (0.5, 0.1), (0.75, 1.0), (1.0, 10.0),
                        (2.0, 10.0)):
        binarizer.set_progress(progress)
        assert binarizer.t == pytest.approx(t)
        assert binarizer.k == pytest.approx(max(1 / t, 1.0))


def test_irnet_ede_gradients():
    binarizer = build_binarizer('irnet')
    binarizer.set_progress(0.5)  # t = 0.1, k = 10
    t, k = 0.1, 10.0
    x = torch.tensor([[[-2.0], [-0.3], [0.0], [4.0]]], requires_grad=True)
    y = binarizer.forward_input(x)
    assert y.flatten().tolist() == [-1.0, -1.0, 1.0, 1.0]
    g = torch.tensor([[[1.0], [2.0], [-1.0], [0.5]]])
    y.backward(g)
    expected = g * k * t * (1 - torch.tanh(t * x.detach())**2)
    assert torch.allclose(x.grad, expected)


def _irnet_weight_reference(w: torch.Tensor,
                            grad_out: torch.Tensor,
                            t: float,
                            k: float,
                            eps: float = 1e-8):
    """IR-Net's binary weight and its gradient, from the paper's formulas.

    Everything in float64 with the chain rule written out (no autograd, no
    mmbinpc code). Per output channel ``o`` with ``n`` weights ``w``:
    ``μ = mean(w)``, ``σ = sqrt(Σ (w − μ)² / (n − 1))``,
    ``Ŵ = (w − μ) / (σ + eps)``, forward ``sign(Ŵ) · s`` with the detached
    ``s = 2^round(log2(mean |Ŵ|))``. Backward: the EDE gives
    ``g = ∂L/∂Ŵ = grad_out · s · k · t · (1 − tanh²(t · Ŵ))`` and the
    standardisation's Jacobian
    ``∂Ŵ_i/∂w_j = (δ_ij − 1/n) / (σ + eps)
    − (w_i − μ)(w_j − μ) / ((n − 1) σ (σ + eps)²)`` gives
    ``∂L/∂w_j = (g_j − mean(g)) / (σ + eps)
    − (w_j − μ) Σ_i g_i (w_i − μ) / ((n − 1) σ (σ + eps)²)``.

    Returns:
        tuple[Tensor, Tensor]: The binary weight and ``∂L/∂w``, float64,
        shaped like ``w``.
    """
    flat = w.detach().double().reshape(w.shape[0], -1)
    g_out = grad_out.double().reshape(w.shape[0], -1)
    n = flat.shape[1]
    centred = flat - flat.sum(1, keepdim=True) / n
    sigma = ((centred**2).sum(1, keepdim=True) / (n - 1)).sqrt()
    denom = sigma + eps
    std = centred / denom
    scale = 2.0**torch.round(torch.log2(std.abs().sum(1, keepdim=True) / n))
    binary = torch.where(std >= 0, 1.0, -1.0).double() * scale
    g = g_out * scale * k * t * (1 - torch.tanh(t * std)**2)
    grad = ((g - g.sum(1, keepdim=True) / n) / denom - centred *
            (g * centred).sum(1, keepdim=True) / ((n - 1) * sigma * denom**2))
    return binary.reshape(w.shape), grad.reshape(w.shape)


def test_irnet_weight_reference_by_hand():
    # The reference itself, checked on channels worked out on paper (eps=0).
    # w = (0, 3): mu = 1.5, sigma = sqrt(4.5), W^ = (-1, 1) / sqrt(2),
    # mean|W^| = 0.7071 -> s = 2^round(-0.5) = 2^0 (round half to even).
    # t = k = 1, grad_out = (1, 0): g = (c, 0), c = 1 - tanh²(1/sqrt 2);
    # d/dw = (g - mean g) / sigma - centred <g, centred> / ((n-1) sigma³)
    #      = (c/2, -c/2) / sigma - (-1.5, 1.5)(-1.5 c) / (4.5 sigma) = 0:
    # two standardised weights are always (-1, 1) / sqrt(2), whatever w is.
    w = torch.tensor([[0.0, 3.0]])
    binary, grad = _irnet_weight_reference(
        w, torch.tensor([[1.0, 0.0]]), t=1.0, k=1.0, eps=0.0)
    assert binary.tolist() == [[-1.0, 1.0]]
    assert torch.allclose(
        grad, torch.zeros(1, 2, dtype=torch.float64), atol=1e-15)
    # three weights: w = (0, 1, 5), mu = 2, sigma = sqrt(7), W^ = (-2,-1,3)/
    # sqrt 7, mean|W^| = 6/(3 sqrt 7) = 0.756 -> s = 1. grad_out = (0, 1, 0),
    # t = k = 1: g = (0, c, 0), c = 1 - tanh²(1/sqrt 7);
    # d/dw = (-c/3, 2c/3, -c/3)/sqrt 7 - (-2,-1,3)(-c)/(2 * 7 sqrt 7)
    w = torch.tensor([[0.0, 1.0, 5.0]])
    binary, grad = _irnet_weight_reference(
        w, torch.tensor([[0.0, 1.0, 0.0]]), t=1.0, k=1.0, eps=0.0)
    assert binary.tolist() == [[-1.0, -1.0, 1.0]]
    c = 1 - math.tanh(1 / math.sqrt(7))**2
    want = [(-c / 3 - 2 * c / 14) / math.sqrt(7),
            (2 * c / 3 - c / 14) / math.sqrt(7),
            (-c / 3 + 3 * c / 14) / math.sqrt(7)]
    assert grad.flatten().tolist() == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize('progress', [0.5, 0.9])
@pytest.mark.parametrize('shape', [(2, 3), (4, 3, 5)])
def test_irnet_weight_gradient_matches_paper(progress, shape):
    binarizer = build_binarizer('irnet')
    binarizer.set_progress(progress)
    t = 10.0**(-3 + 4 * progress)  # IR-Net's schedule, written out
    k = max(1 / t, 1.0)
    w = torch.randn(shape, requires_grad=True)
    gw = torch.randn(shape)
    out = binarizer.forward_weight(w)
    out.backward(gw)
    binary, grad = _irnet_weight_reference(w, gw, t, k)
    assert torch.equal(out.detach().double(), binary)
    assert torch.allclose(w.grad.double(), grad, rtol=1e-4, atol=1e-6)
    assert grad.abs().max() > 1e-3  # not a vacuous comparison of zeros


def test_irnet_warns_without_schedule():
    binarizer = build_binarizer('irnet')
    w = torch.randn(2, 3, requires_grad=True)
    with pytest.warns(UserWarning, match='IRNetScheduleHook'):
        binarizer.forward_weight(w)


def test_lsr_forward_gradient_and_init_ratio():
    layer = BinLinear(3, 2, bias=False, binarizer='lsr')
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.1, -0.3]]))
    x = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0], [2.0, 1.0, 1.0],
                      [-0.4, 0.9, 0.6]])
    binarizer = layer.binarizer
    assert not bool(binarizer.initialized)
    layer.eval()
    layer(x)  # no init outside training
    assert not bool(binarizer.initialized)
    layer.train()
    y = layer(x)
    wc = layer.weight.detach() - layer.weight.detach().mean()
    ratio = (x @ wc.t()).std() / (hard_sign(x) @ hard_sign(wc).t()).std()
    assert bool(binarizer.initialized)
    assert binarizer.alpha.item() == pytest.approx(float(ratio), rel=1e-5)
    assert torch.allclose(y,
                          hard_sign(x) @ (hard_sign(wc) * binarizer.alpha).t())
    # the one scalar alpha learns: d/d alpha = sum(g * sign(x) sign(Wc)^T)
    g = torch.randn_like(y)
    y.backward(g)
    expected = (g * (hard_sign(x) @ hard_sign(wc).t())).sum()
    assert float(binarizer.alpha.grad) == pytest.approx(
        float(expected), rel=1e-5)
    # later batches do not re-initialise
    alpha = binarizer.alpha.item()
    layer(torch.randn(5, 3) * 10)
    assert binarizer.alpha.item() == alpha


def test_lsr_init_fallback_when_ratio_not_finite():
    layer = BinLinear(3, 1, bias=False, binarizer='lsr')
    layer.train()
    layer(torch.randn(1, 3))  # one output value: std is not finite
    wc = layer.weight.detach() - layer.weight.detach().mean()
    expected = wc.std() / hard_sign(wc).std()
    assert layer.binarizer.alpha.item() == pytest.approx(
        float(expected), rel=1e-5)


def test_lsr_init_survives_state_dict_round_trip(tmp_path):
    layer = BinLinear(4, 3, binarizer='lsr').train()
    layer(torch.randn(6, 4))
    path = tmp_path / 'lsr.pth'
    torch.save(layer.state_dict(), path)
    state = torch.load(path, weights_only=True)
    assert 'binarizer.alpha' in state and 'binarizer.initialized' in state
    fresh = BinLinear(4, 3, binarizer='lsr').train()
    fresh.load_state_dict(state)
    alpha = layer.binarizer.alpha.item()
    assert bool(fresh.binarizer.initialized)
    assert fresh.binarizer.alpha.item() == pytest.approx(alpha)
    fresh(torch.randn(6, 4) * 100)  # must not re-trigger
    assert fresh.binarizer.alpha.item() == pytest.approx(alpha)


def test_bireal_approx_sign_backward():
    binarizer = build_binarizer('bireal')
    x = torch.tensor([[-1.5, -0.5, 0.0, 0.25, 0.75, 1.5]], requires_grad=True)
    y = binarizer.forward_input(x)
    assert y.tolist() == [[-1.0, -1.0, 1.0, 1.0, 1.0, 1.0]]
    y.backward(torch.ones_like(y))
    assert x.grad.tolist() == [[0.0, 1.0, 2.0, 1.5, 0.5, 0.0]]
    w = torch.tensor([[1.0, -3.0], [0.5, 0.5]])
    sign, scale = binarizer.weight_parts(w)
    assert scale.tolist() == [2.0, 0.5]
    assert sign.tolist() == [[1.0, -1.0], [1.0, 1.0]]


def test_react_threshold_forward_and_gradient():
    binarizer = build_binarizer('react', in_channels=2)
    with torch.no_grad():
        binarizer.threshold.copy_(torch.tensor([0.3, -0.5]))
    x = torch.tensor([[[0.2, 0.5], [-0.4, -0.6]]], requires_grad=True)
    y = binarizer.forward_input(x)
    assert y.tolist() == [[[-1.0, 1.0], [1.0, -1.0]]]
    assert torch.equal(binarizer.input_parts(x)[0], y)
    g = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    y.backward(g)
    shifted = x.detach() - torch.tensor([0.3, -0.5])[None, :, None]
    approx = 2 * (1 - shifted.abs()).clamp(min=0)
    assert torch.allclose(x.grad, g * approx)
    assert torch.allclose(binarizer.threshold.grad,
                          -(g * approx).sum(dim=(0, 2)))
    with pytest.raises(ValueError, match='2 thresholds'):
        binarizer.forward_input(torch.randn(1, 3, 2))


def test_clipped_ste_matches_hardtanh_surrogate():
    """The bnn STE equals the derivative of hardtanh away from |x| = 1."""
    binarizer = build_binarizer('bnn')
    x = torch.tensor([-3.0, -0.99, -0.2, 0.4, 0.98, 1.3], requires_grad=True)
    binarizer.forward_input(x[None])[0].backward(torch.ones(6))
    ref = x.detach().clone().requires_grad_(True)
    F.hardtanh(ref).sum().backward()
    assert torch.equal(x.grad, ref.grad)
    assert math.isclose(float(x.grad.sum()), 4.0)


@pytest.mark.parametrize('name', ALL)
def test_centred_input_sign_uses_batch_then_running_mean(name):
    binarizer = build_binarizer(
        dict(type=name, center_input=True), in_channels=3)
    assert 'center_input=True' in repr(binarizer)
    # max-pooled features: every value positive, so sign(a) is all +1
    x = torch.tensor([[1.0, 4.0, 2.0], [3.0, 2.0, 6.0]])
    plain = build_binarizer(name, in_channels=3)
    plain.train()
    assert (plain.forward_input(x, dim=-1) > 0).all()
    binarizer.train()
    y = binarizer.forward_input(x, dim=-1)
    # batch means (2, 3, 4): each channel has one value on either side
    assert torch.equal(
        hard_sign(y), torch.tensor([[-1.0, 1.0, -1.0], [1.0, -1.0, 1.0]]))
    assert binarizer.input_center.tolist() == [2.0, 3.0, 4.0]  # first batch
    binarizer.forward_input(x + 10.0, dim=-1)
    m = binarizer.CENTER_MOMENTUM
    assert torch.allclose(binarizer.input_center,
                          torch.tensor([2.0, 3.0, 4.0]) + 10.0 * m)
    # evaluation: the running centre, no update, and the deploy threshold
    binarizer.eval()
    centre = binarizer.input_center.clone()
    probe = centre[None] + torch.tensor([[0.5, -0.5, 0.0]])
    sign, _ = binarizer.input_parts(probe, dim=-1)
    if name == 'react':
        assert torch.equal(binarizer.input_threshold(),
                           centre + binarizer.threshold.detach())
    else:
        assert sign.tolist() == [[1.0, -1.0, 1.0]]
        assert torch.equal(binarizer.input_threshold(), centre)
    assert torch.equal(binarizer.input_center, centre)
    if name != 'react':
        assert plain.input_threshold() is None


def test_centred_xnor_scale_and_gradient_use_the_centred_input():
    binarizer = build_binarizer(
        dict(type='xnor', center_input=True), in_channels=2)
    binarizer.train()
    x = torch.tensor([[[1.0, 3.0], [5.0, 5.5]]], requires_grad=True)
    y = binarizer.forward_input(x)  # (B=1, C=2, N=2), channel dim 1
    centred = torch.tensor([[[-1.0, 1.0], [-0.25, 0.25]]])
    beta = centred.abs().mean(dim=1, keepdim=True)
    assert torch.allclose(y, hard_sign(centred) * beta)
    y.sum().backward()
    # clipped STE on the centred value: |x − μ| <= 1 passes β (the centre
    # is a detached statistic, as BatchNorm's running mean is)
    assert torch.allclose(x.grad, beta.expand_as(x))


def test_centred_input_needs_channels_and_matching_width():
    with pytest.raises(ValueError, match='in_channels'):
        build_binarizer(dict(type='bnn', center_input=True))
    binarizer = build_binarizer(
        dict(type='bnn', center_input=True), in_channels=4)
    with pytest.raises(ValueError, match='centres 4 input channels'):
        binarizer.forward_input(torch.randn(2, 3, 5))


def test_lsr_alpha_init_uses_the_centred_sign():
    torch.manual_seed(0)
    layer = BinLinear(8, 4, binarizer=dict(type='lsr', center_input=True))
    x = torch.rand(16, 8) + 2.0  # all positive: plain sign would be all +1
    layer.train()
    alpha = layer.binarizer.init_alpha(layer, x)
    centred_w = layer.weight - layer.weight.mean()
    fp = F.linear(x, centred_w)
    xc = x - x.mean(0, keepdim=True)
    binary = F.linear(hard_sign(xc), hard_sign(centred_w))
    assert alpha == pytest.approx(float(fp.std() / binary.std()), rel=1e-5)
