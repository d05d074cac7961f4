# Copyright (c) mmbinpc contributors. All rights reserved.
"""BinaryOptimWrapperConstructor: latent-weight LR and decay groups."""
import pytest
import torch
from mmdet3d.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

from mmbinpc.binary import binarize
from mmbinpc.engine import latent_lr_multipliers


class Toy(nn.Module):
    """first FP conv, three binary convs (one with tiny weights), FP head."""

    def __init__(self):
        super().__init__()
        self.first = nn.Conv1d(3, 16, 1)
        self.a = nn.Conv1d(16, 16, 1)
        self.b = nn.Conv1d(16, 16, 1)
        self.tiny = nn.Conv1d(16, 16, 1)
        self.bn = nn.BatchNorm1d(16)
        self.head = nn.Linear(16, 4)
        self.num_classes = 4
        with torch.no_grad():
            self.tiny.weight.mul_(0.05)

    def forward(self, x):
        x = self.tiny(self.b(self.a(self.bn(self.first(x)))))
        return self.head(x.amax(-1))


def build(model, **paramwise):
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type='BinaryOptimWrapperConstructor',
            optim_wrapper_cfg=dict(
                type='OptimWrapper',
                optimizer=dict(type='Adam', lr=1e-3, weight_decay=1e-4)),
            paramwise_cfg=paramwise))
    return constructor, constructor(model)


def group_of(optimizer, param):
    return next(
        g for g in optimizer.param_groups
        if any(p is param for p in g['params']))


def test_latent_lr_scaled_by_std_relative_to_median():
    model = Toy()
    binarize(model, method='lsr', aggregation='max')
    stds = {
        n: float(getattr(model, n).weight.detach().std())
        for n in ('a', 'b', 'tiny')
    }
    median = sorted(stds.values())[1]
    constructor, wrapper = build(model)
    opt = wrapper.optimizer
    for name, std in stds.items():
        expected = 1e-3 * min(std / median, 1.0)
        group = group_of(opt, getattr(model, name).weight)
        assert group['lr'] == pytest.approx(expected, rel=1e-6)
        assert group['weight_decay'] == 0.0  # latent_decay_mult=0
    assert group_of(opt, model.tiny.weight)['lr'] < 0.2e-3
    # FP layers and BatchNorm keep the optimizer's settings
    for param in (model.first.weight, model.head.weight, model.bn.weight):
        group = group_of(opt, param)
        assert group.get('lr', 1e-3) == 1e-3
        assert group['weight_decay'] == 1e-4
    # LSR's alpha: no decay
    assert group_of(opt, model.a.binarizer.alpha)['weight_decay'] == 0.0
    assert set(constructor.latent_lr_mults) == {
        'a.weight', 'b.weight', 'tiny.weight'
    }
    assert constructor.latent_lr_mults == latent_lr_multipliers(model)


def test_uniform_and_decay_options():
    model = Toy()
    binarize(model, method='xnor', aggregation='max')
    _, wrapper = build(model, latent_lr='uniform', latent_decay_mult=1.0)
    group = group_of(wrapper.optimizer, model.tiny.weight)
    assert group['lr'] == 1e-3 and group['weight_decay'] == 1e-4


def test_the_scaled_lr_slows_sign_flips_of_small_latent_weights():
    """The point of it: one Adam step flips far fewer of the tiny layer's
    signs with the scaled LR than with the uniform one."""
    flips = {}
    for mode in ('uniform', 'scaled'):
        torch.manual_seed(0)
        model = Toy()
        binarize(model, method='lsr', aggregation='max')
        _, wrapper = build(model, latent_lr=mode)
        before = torch.sign(model.tiny.weight.detach().clone())
        for _ in range(5):
            loss = model(torch.randn(4, 3, 32)).logsumexp(-1).mean()
            wrapper.update_params(loss)
        flips[mode] = int((torch.sign(model.tiny.weight) != before).sum())
    assert flips['scaled'] < flips['uniform']


def test_fp_model_gets_mmengine_default_groups():
    model = Toy()
    _, wrapper = build(model)
    assert len(wrapper.optimizer.param_groups) == 1


def test_bad_options_raise():
    with pytest.raises(ValueError, match='latent_lr'):
        build(Toy(), latent_lr='fast')
    with pytest.raises(ValueError, match='min_lr_mult'):
        build(Toy(), min_lr_mult=-1)


def test_binarizer_scale_lr_follows_its_layer():
    """LSR's alpha: the layer's latent multiplier times binarizer_lr_mult,
    so the alpha of a tiny-weight layer (a T-Net transform) moves slowly."""
    model = Toy()
    binarize(model, method='lsr', aggregation='max')
    constructor, wrapper = build(model, binarizer_lr_mult=0.5)
    for name in ('a', 'tiny'):
        mult = constructor.latent_lr_mults[f'{name}.weight']
        group = group_of(wrapper.optimizer,
                         getattr(model, name).binarizer.alpha)
        assert group['lr'] == pytest.approx(1e-3 * mult * 0.5)
    _, wrapper = build(model)  # default 0.1
    mult = constructor.latent_lr_mults['tiny.weight']
    assert group_of(wrapper.optimizer, model.tiny.binarizer.alpha)['lr'] == \
        pytest.approx(1e-3 * mult * 0.1)
