# Copyright (c) mmbinpc contributors. All rights reserved.
"""EMA offset, entropy of EMA vs max, mmdet3d's pooling sites."""
import copy
import math
import pickle
from statistics import NormalDist

import pytest
import torch
from mmdet3d.models.layers.dgcnn_modules import DGCNNFAModule, DGCNNGFModule
from mmdet3d.models.layers.pointnet_modules import (PointSAModule,
                                                    PointSAModuleMSG)
from mmdet3d.models.layers.pointnet_modules.builder import SA_MODULES

from mmbinpc.binary import (PointPool, attach_pooling, ema_offset,
                            pooling_sites, set_pooling_mode)
from mmbinpc.binary.aggregation import shared_max
from mmbinpc.models.layers import POOLED_SA_MODULES, use_pooled_sa_modules


def _entropy_bits(p: float) -> float:
    if p in (0.0, 1.0):
        return 0.0
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


@pytest.mark.parametrize('n', [2, 5, 20, 64, 1024, 4096])
def test_ema_offset_matches_formula(n):
    # P(max of n standard normals <= delta) = Phi(delta)^n = 1/2
    delta = ema_offset(n)
    assert NormalDist().cdf(delta)**n == pytest.approx(0.5, rel=1e-9)
    assert delta == pytest.approx(NormalDist().inv_cdf(2**(-1 / n)), abs=1e-6)


def test_ema_offset_known_values_and_errors():
    assert ema_offset(1024) == pytest.approx(3.2044, abs=1e-4)
    assert ema_offset(20) == pytest.approx(1.8242, abs=1e-4)
    assert ema_offset(1) == 0.0
    with pytest.raises(ValueError, match='n >= 1'):
        ema_offset(0)


def test_ema_sign_carries_one_bit_but_max_does_not():
    n, trials = 64, 4000
    x = torch.randn(trials, 1, n)
    ema = PointPool('ema')(x)
    plain = PointPool('max')(x)
    p_ema = float((ema >= 0).float().mean())
    p_max = float((plain >= 0).float().mean())
    assert abs(p_ema - 0.5) < 0.04
    assert _entropy_bits(p_ema) > 0.99
    assert p_max > 0.99
    assert _entropy_bits(p_max) < 0.1


def _sa(cls=PointSAModule, **kw):
    args = dict(num_point=8, radius=0.4, num_sample=4, mlp_channels=[3, 8])
    if issubclass(cls,
                  PointSAModuleMSG) and not issubclass(cls, PointSAModule):
        args = dict(
            num_point=8,
            radii=[0.2, 0.4],
            sample_nums=[4, 4],
            mlp_channels=[[3, 8], [3, 8]])
    args.update(kw)
    return cls(**args)


def _pooled_copy(module):
    """The registered pooled variant, built like ``module``, same weights."""
    name = 'Pooled' + type(module).__name__
    kwargs = dict(pool_mod=module.pool_mod)
    pooled = _sa(SA_MODULES.get(name), **kwargs)
    pooled.load_state_dict(module.state_dict())
    return pooled


def _check_pools_like(module, reference):
    assert isinstance(module.pool, PointPool) and module.pool.mode == 'max'
    feats = torch.randn(2, 8, 5, 4)
    assert torch.equal(
        module._pool_features(feats), reference._pool_features(feats))
    set_pooling_mode(module, 'ema')
    assert module.pool.mode == 'ema'
    assert torch.allclose(
        module._pool_features(feats),
        reference._pool_features(feats) - ema_offset(4))


@pytest.mark.parametrize('stock', [PointSAModule, PointSAModuleMSG])
def test_pooled_sa_modules_pool_like_mmdet3d(stock):
    reference = _sa(stock)
    module = _pooled_copy(reference)  # built pooled from mmdet3d's registry
    assert isinstance(module, stock)
    assert attach_pooling(module) == ['pool']  # nothing left to attach
    _check_pools_like(module, reference)


def test_dgcnn_gf_site_is_adapted_in_place():
    module = DGCNNGFModule(mlp_channels=[6, 8], num_sample=4)
    reference = copy.deepcopy(module)
    assert attach_pooling(module) == ['pool']
    assert isinstance(module, type(reference))
    _check_pools_like(module, reference)
    # the mmdet3d class itself is untouched
    assert type(reference)._pool_features is not type(module)._pool_features


def test_pooled_sa_module_matches_mmdet3d_end_to_end():
    torch.manual_seed(0)
    reference = _sa(PointSAModule).eval()
    pooled = _pooled_copy(reference).eval()
    assert list(pooled.state_dict()) == list(reference.state_dict())
    xyz, feats = torch.rand(2, 32, 3), torch.rand(2, 3, 32)
    for a, b in zip(pooled(xyz, feats), reference(xyz, feats)):
        assert torch.equal(a, b)


def test_stock_sa_module_is_refused_with_the_fix():
    with pytest.raises(
            TypeError,
            match=r"sa_cfg=dict\(type='PooledPoint"
            r"SAModule'.*build_binarized"):
        attach_pooling(torch.nn.Sequential(_sa()))


def test_configs_select_the_pooled_sa_modules():
    cfg = dict(
        type='PointClassifier',
        backbone=dict(
            type='PointNet2SASSG',
            in_channels=3,
            sa_cfg=dict(type='PAConvSAModule', pool_mod='avg')),
        neck=[dict(type='PointSAModuleMSG'), 7])
    out = use_pooled_sa_modules(cfg)
    assert out['backbone']['sa_cfg'] == dict(
        type='PooledPAConvSAModule', pool_mod='avg')
    assert out['neck'] == [dict(type='PooledPointSAModuleMSG'), 7]
    assert cfg['backbone']['sa_cfg']['type'] == 'PAConvSAModule'  # a copy
    # a backbone that leaves sa_cfg out gets its default, pooled
    default = use_pooled_sa_modules(dict(type='PointNet2SASSG'))['sa_cfg']
    assert default['type'] == 'PooledPointSAModule'
    assert default['normalize_xyz'] is True  # mmdet3d 1.4's default
    assert use_pooled_sa_modules(
        dict(type='DGCNNBackbone')) == dict(type='DGCNNBackbone')
    assert set(POOLED_SA_MODULES.values()) <= set(SA_MODULES.module_dict)


def test_avg_site_stays_avg():
    module = _pooled_copy(_sa(pool_mod='avg'))
    reference = _sa(pool_mod='avg')
    reference.load_state_dict(module.state_dict())
    attach_pooling(module, mode='ema')
    assert module.pool.mode == 'avg'
    set_pooling_mode(module, 'ema')
    assert module.pool.mode == 'avg'
    feats = torch.randn(1, 8, 3, 4)
    assert torch.allclose(
        module._pool_features(feats), reference._pool_features(feats))


def test_global_site_dgcnn_fa():
    module = DGCNNFAModule(mlp_channels=[12, 16]).eval()
    reference = copy.deepcopy(module)
    attach_pooling(module)
    points = [
        torch.randn(2, 10, 3),
        torch.randn(2, 10, 4),
        torch.randn(2, 10, 8)
    ]
    out = module(points)
    assert out.shape == (2, 10, 16 + 12)
    assert torch.allclose(out, reference(points))
    set_pooling_mode(module, 'ema')
    ema_out = module(points)
    assert torch.allclose(ema_out[..., :16],
                          reference(points)[..., :16] - ema_offset(10))
    assert torch.equal(ema_out[..., 16:], out[..., 16:])


def test_attach_is_idempotent_and_copyable():
    model = torch.nn.Sequential(
        _pooled_copy(_sa()), DGCNNFAModule(mlp_channels=[4, 4]))
    first = attach_pooling(model, mode='ema')
    second = attach_pooling(model, mode='max')
    assert first == second == ['0.pool', '1.pool']
    # mode= is for sites attached now: the SA module was built with its own
    assert [m.mode for m in pooling_sites(model).values()] == ['max', 'ema']
    clone = copy.deepcopy(model)
    assert list(pooling_sites(clone)) == first
    restored = pickle.loads(pickle.dumps(model))
    assert type(restored[0]) is type(model[0])
    with pytest.raises(ValueError, match='valid: max, ema'):
        set_pooling_mode(model, 'mean')
    with pytest.raises(ValueError, match='valid modes'):
        attach_pooling(model, mode='median')


@pytest.mark.parametrize('dim,keepdim', [(-1, False), (-1, True), (1, False),
                                         (2, True)])
def test_shared_max_has_amax_value_and_gradient(dim, keepdim):
    """Ties (integer features) share the gradient equally, exactly as
    autograd's ``amax`` shares it; checked against it and by gradcheck."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(-2, 3, (3, 4, 6), generator=gen).double()
    assert (x == x.amax(dim, keepdim=True)).sum() > x.numel() // 6  # ties
    got_x = x.clone().requires_grad_()
    ref_x = x.clone().requires_grad_()
    got, ref = shared_max(got_x, dim, keepdim), ref_x.amax(dim, keepdim)
    assert torch.equal(got, ref)
    weight = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    (got * weight).sum().backward()
    (ref * weight).sum().backward()
    assert torch.equal(got_x.grad, ref_x.grad)
    assert torch.autograd.gradcheck(
        lambda t: shared_max(t, dim, keepdim),
        (torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True), ))
