# Copyright (c) mmbinpc contributors. All rights reserved.
"""EMA offset, entropy of EMA vs max, and the mmdet3d pooling adapters."""
import copy
import math
import pickle
from statistics import NormalDist

import pytest
import torch
from mmdet3d.models.layers.dgcnn_modules import DGCNNFAModule, DGCNNGFModule
from mmdet3d.models.layers.pointnet_modules import (PointSAModule,
                                                    PointSAModuleMSG)

from mmbinpc.binary import (PointPool, attach_pooling, ema_offset,
                            pooling_sites, set_pooling_mode)


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
    if cls is PointSAModuleMSG:
        args = dict(
            num_point=8,
            radii=[0.2, 0.4],
            sample_nums=[4, 4],
            mlp_channels=[[3, 8], [3, 8]])
    args.update(kw)
    return cls(**args)


@pytest.mark.parametrize('make', [
    lambda: _sa(), lambda: _sa(PointSAModuleMSG),
    lambda: DGCNNGFModule(mlp_channels=[6, 8], num_sample=4)
])
def test_local_sites_pool_like_mmdet3d(make):
    module = make()
    reference = copy.deepcopy(module)
    names = attach_pooling(module)
    assert names == ['pool']
    assert isinstance(module.pool, PointPool) and module.pool.mode == 'max'
    assert isinstance(module, type(reference))
    feats = torch.randn(2, 8, 5, 4)
    assert torch.equal(
        module._pool_features(feats), reference._pool_features(feats))
    set_pooling_mode(module, 'ema')
    assert module.pool.mode == 'ema'
    assert torch.allclose(
        module._pool_features(feats),
        reference._pool_features(feats) - ema_offset(4))
    # the mmdet3d class itself is untouched
    assert type(reference)._pool_features is not type(module)._pool_features


def test_avg_site_stays_avg():
    module = _sa(pool_mod='avg')
    reference = copy.deepcopy(module)
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
    model = torch.nn.Sequential(_sa(), DGCNNFAModule(mlp_channels=[4, 4]))
    first = attach_pooling(model, mode='ema')
    second = attach_pooling(model, mode='max')
    assert first == second == ['0.pool', '1.pool']
    assert [m.mode for m in pooling_sites(model).values()] == ['ema', 'ema']
    clone = copy.deepcopy(model)
    assert list(pooling_sites(clone)) == first
    restored = pickle.loads(pickle.dumps(model))
    assert type(restored[0]) is type(model[0])
    with pytest.raises(ValueError, match='valid: max, ema'):
        set_pooling_mode(model, 'mean')
    with pytest.raises(ValueError, match='valid modes'):
        attach_pooling(model, mode='median')
