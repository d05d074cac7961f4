# Copyright (c) mmbinpc contributors. All rights reserved.
"""BinConv1d / BinConv2d / BinLinear."""
import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet3d.registry import MODELS
from mmengine.registry import DefaultScope
from torch import nn

from mmbinpc.binary import BinConv1d, BinConv2d, BinLinear
from mmbinpc.binary.binarizers import hard_sign
from mmbinpc.binary.layers import from_float

ALL = ('bnn', 'xnor', 'irnet', 'lsr', 'bireal', 'react')


def test_subclasses_and_parameter_names():
    conv = BinConv1d(4, 6, 1, binarizer='bnn', binarize_input=False)
    assert isinstance(conv, nn.Conv1d)
    assert isinstance(BinConv2d(4, 6, 1), nn.Conv2d)
    assert isinstance(BinLinear(4, 6), nn.Linear)
    assert conv.binarizer.name == 'bnn' and conv.binarize_input is False
    assert {'weight', 'bias'} <= set(dict(conv.named_parameters()))
    with pytest.raises(ValueError, match='valid binarizers'):
        BinConv1d(4, 6, 1, binarizer='nope')


def test_xnor_conv1d_forward_values():
    conv = BinConv1d(3, 2, 1, bias=True, binarizer='xnor')
    x = torch.randn(2, 3, 5)
    w = conv.weight.detach()
    wc = w - w.mean(dim=(1, 2), keepdim=True)
    alpha = wc.abs().mean(dim=(1, 2), keepdim=True)
    beta = x.abs().mean(dim=1, keepdim=True)
    expected = F.conv1d(hard_sign(x) * beta, hard_sign(wc) * alpha, conv.bias)
    assert torch.allclose(conv(x), expected, atol=1e-6)
    assert torch.allclose(conv.binary_weight(), hard_sign(wc) * alpha)


def test_conv2d_and_linear_use_binary_weight_and_input():
    conv = BinConv2d(3, 4, (1, 1), bias=False, binarizer='bnn')
    x = torch.randn(2, 3, 4, 5)
    expected = F.conv2d(hard_sign(x), hard_sign(conv.weight.detach()))
    assert torch.equal(conv(x), expected)
    # every output of a bnn layer with 3 inputs is odd in {-3, -1, 1, 3}
    assert set(conv(x).unique().tolist()) <= {-3.0, -1.0, 1.0, 3.0}
    lin = BinLinear(3, 2, binarizer='bnn', binarize_input=False)
    xl = torch.randn(5, 3)
    assert torch.allclose(
        lin(xl), xl @ hard_sign(lin.weight.detach()).t() + lin.bias)


@pytest.mark.parametrize('binarizer', ALL)
@pytest.mark.parametrize('cls', [BinConv1d, BinLinear])
def test_outputs_depend_on_the_hamming_distance_only(binarizer, cls):
    """A point-wise layer sums ±1 products exactly and scales afterwards, so
    rows at the same Hamming distance from a channel's weights get
    bit-identical outputs (what the packed runtime computes; DGCNN
    binarizes differences of such outputs). With the scale applied to the
    weights first the float sum depends on where the disagreeing channels
    are: the BinLinear cases of xnor, bireal and react fail then (PyTorch's
    two-row products; its convolution happens to sum these in one order)."""
    torch.manual_seed(0)
    layer = cls(96, 8, 1, binarizer=binarizer) if cls is BinConv1d else \
        cls(96, 8, binarizer=binarizer)
    layer.eval()
    sign_w = hard_sign(
        layer.binarizer.weight_parts(layer.weight.detach())[0].reshape(8,
                                                                       96)[0])
    # rows i and 20 + i: the signs of channel 0's weights with two
    # different random sets of the same size flipped, the same magnitudes
    # (so the same XNOR β)
    gen = torch.Generator().manual_seed(1)
    rows = torch.empty(40, 96)
    for i in range(20):
        d = int(torch.randint(1, 95, (1, ), generator=gen))
        magnitude = 0.5 + torch.rand(96, generator=gen)
        for r in (i, 20 + i):
            signs = sign_w.clone()
            flip = torch.randperm(96, generator=gen)[:d]
            signs[flip] = -signs[flip]
            rows[r] = signs * magnitude
    pairs = rows.view(2, 20, 96).transpose(0, 1)  # (20, 2, 96)
    x = pairs.transpose(1, 2) if cls is BinConv1d else pairs  # small GEMMs
    with torch.no_grad():
        out = layer(x)
    out = out.transpose(1, 2) if cls is BinConv1d else out  # (20, 2, 8)
    sign_x = hard_sign(layer.binarizer.input_parts(pairs, dim=-1)[0])
    dist = (sign_x != sign_w).sum(-1)
    assert torch.equal(dist[:, 0], dist[:, 1])
    assert torch.equal(out[:, 0, 0], out[:, 1, 0])


def test_spatial_kernel_scales_the_input_first():
    """With a kernel window β varies inside the window: XNOR-Net's
    ``conv(sign(x)·β, sign(W)·α)``."""
    conv = BinConv2d(3, 4, (1, 3), binarizer='xnor', bias=False)
    x = torch.randn(2, 3, 5, 7)
    w = conv.weight.detach()
    wc = w - w.mean(dim=(1, 2, 3), keepdim=True)
    alpha = wc.abs().mean(dim=(1, 2, 3), keepdim=True)
    beta = x.abs().mean(dim=1, keepdim=True)
    expected = F.conv2d(hard_sign(x) * beta, hard_sign(wc) * alpha)
    assert conv(x).shape == expected.shape == (2, 4, 5, 5)
    assert torch.allclose(conv(x), expected, atol=1e-5)


@pytest.mark.parametrize('binarizer', ALL)
def test_fp32_state_dict_loads_strictly(binarizer):
    fp = nn.Conv1d(4, 3, 1)
    binary = BinConv1d(4, 3, 1, binarizer=binarizer)
    binary.load_state_dict(fp.state_dict())  # strict
    assert torch.equal(binary.weight, fp.weight)
    assert torch.equal(binary.bias, fp.bias)
    # and the binary state dict round-trips with its binarizer entries
    again = BinConv1d(4, 3, 1, binarizer=binarizer)
    again.load_state_dict(binary.state_dict())


@pytest.mark.parametrize('binarizer', ALL)
def test_training_step_updates_latent_weights(binarizer):
    layer = BinLinear(4, 3, binarizer=binarizer)
    if binarizer == 'irnet':
        layer.binarizer.set_progress(0.5)
    before = layer.weight.detach().clone()
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    x = torch.randn(8, 4) * 0.5
    loss = (layer(x) - torch.randn(8, 3)).pow(2).mean()
    loss.backward()
    assert layer.weight.grad is not None
    assert layer.weight.grad.abs().sum() > 0
    opt.step()
    assert not torch.equal(layer.weight.detach(), before)


def _autograd_reference(layer, x):
    """The layer's output by plain autograd products (out of place), from
    the binarizer's own signs and scales."""
    x_sign, x_scale = layer.binarizer.forward_input_parts(x, dim=1)
    w_sign, w_scale = layer.binarizer.forward_weight_parts(layer.weight)
    y = layer.apply_weight(x_sign, w_sign)
    y = y * (
        w_scale if w_scale.dim() == 0 else w_scale.reshape([1, -1] + [1] *
                                                           (y.dim() - 2)))
    if x_scale is not None:
        y = y * x_scale
    return y + layer.bias.reshape([1, -1] + [1] * (y.dim() - 2))


@pytest.mark.parametrize('binarizer', ALL)
@pytest.mark.parametrize('cls', [BinConv1d, BinLinear])
def test_in_place_scaling_has_autograd_gradients(binarizer, cls):
    """The output scales are applied in place with their own backward
    (``layers._ScaleShift``); every gradient - input, latent weight, bias,
    the binarizer's learnable scale (LSR's α) - equals autograd's through
    out-of-place products, in float64."""
    torch.manual_seed(0)
    layer = (cls(6, 5, 1, bias=True, binarizer=binarizer)
             if cls is BinConv1d else cls(6, 5, binarizer=binarizer)).double()
    if binarizer == 'irnet':
        layer.binarizer.set_progress(0.5)
    x = torch.randn(4, 6, 7, dtype=torch.float64)
    x = x if cls is BinConv1d else x[..., 0]
    target = torch.randn_like(layer(x))
    grads = []
    for forward in (layer, lambda t: _autograd_reference(layer, t)):
        layer.zero_grad()
        xin = x.clone().requires_grad_()
        out = forward(xin)
        (out * target).sum().backward()
        grads.append([out.detach(), xin.grad] +
                     [p.grad for p in layer.parameters()])
    names = ['output', 'input'] + [n for n, _ in layer.named_parameters()]
    for name, got, ref in zip(names, *grads):
        assert ref is not None and got is not None, name
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12, msg=name)
    if binarizer == 'lsr':  # its α is learnable and gets a gradient
        assert any('alpha' in n or 'scale' in n for n in names[2:])


@pytest.mark.parametrize('binarizer', ALL)
def test_output_may_be_overwritten_downstream(binarizer):
    """mmcv's ``ConvModule`` applies ``ReLU(inplace=True)`` to a layer's
    output and backbones add residuals in place: the scaling's backward must
    not read the output it returned (it did for LSR's learnable α once).
    The gradients equal those of the same graph with an out-of-place ReLU.
    """
    torch.manual_seed(0)
    layer = BinConv1d(6, 5, 1, bias=True, binarizer=binarizer).double()
    if binarizer == 'irnet':
        layer.binarizer.set_progress(0.5)
    x = torch.randn(4, 6, 7, dtype=torch.float64)
    grads = []
    for relu in (torch.relu_, torch.relu):
        layer.zero_grad()
        xin = x.clone().requires_grad_()
        out = relu(layer(xin))
        (out * torch.arange(out.numel()).reshape(out.shape)).sum().backward()
        grads.append([xin.grad] + [p.grad for p in layer.parameters()])
    for got, ref in zip(*grads):
        assert ref is not None
        torch.testing.assert_close(got, ref, rtol=0, atol=0)


@pytest.mark.parametrize('cls,fp', [(BinConv1d, nn.Conv1d(3, 5, 3, padding=1)),
                                    (BinConv2d, nn.Conv2d(3, 5, (1, 1))),
                                    (BinLinear, nn.Linear(3, 5, bias=False))])
def test_from_float_copies_weights(cls, fp):
    new = from_float(fp.eval(), binarizer='xnor')
    assert type(new) is cls and not new.training
    assert torch.equal(new.weight, fp.weight) and new.weight is not fp.weight
    assert (new.bias is None) == (fp.bias is None)
    if isinstance(fp, nn.Conv1d):
        assert new.padding == fp.padding and new.kernel_size == (3, )
    with pytest.raises(TypeError, match='cannot binarize'):
        from_float(nn.Conv3d(1, 1, 1))


def test_registered_and_usable_as_conv_cfg():
    layer = MODELS.build(
        dict(type='BinLinear', in_features=3, out_features=2, binarizer='lsr'))
    assert isinstance(layer, BinLinear) and layer.binarizer.name == 'lsr'
    # mmcv's ConvModule without a default scope (mmengine's root registry)
    module = ConvModule(
        4,
        8,
        1,
        conv_cfg=dict(type='BinConv1d', binarizer='bnn'),
        norm_cfg=dict(type='BN1d'))
    assert isinstance(module.conv, BinConv1d)
    assert module.conv.binarizer.name == 'bnn'
    assert module(torch.randn(2, 4, 6)).shape == (2, 8, 6)
    # ... and inside mmdet3d's default scope, with binarizer options
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        module = ConvModule(
            4,
            8, (1, 1),
            conv_cfg=dict(
                type='BinConv2d', binarizer=dict(type='irnet', eps=1e-4)),
            norm_cfg=dict(type='BN2d'))
    assert isinstance(module.conv, BinConv2d)
    assert module.conv.binarizer.eps == 1e-4
    module.conv.binarizer.set_progress(0.5)
    assert module(torch.randn(2, 4, 6, 3)).shape == (2, 8, 6, 3)
