# Copyright (c) mmbinpc contributors. All rights reserved.
import copy
import os

import pytest
import torch
from distill_helpers import batch, save_teacher, tiny_classifier
from mmdet3d.registry import MODELS
from mmengine.optim import OptimWrapper
from torch import nn

from mmbinpc.binary.aggregation import PointPool, ema_offset
from mmbinpc.models.distillers import BinaryDistiller, resolve_checkpoint
from mmbinpc.models.distillers.binary_distiller import max_aligned
from mmbinpc.models.losses import pooling_norm, soft_target_loss

BIN = dict(method='xnor', aggregation='ema')


def build(teacher_cfg, ckpt, **kwargs):
    cfg = dict(
        type='BinaryDistiller',
        teacher=copy.deepcopy(teacher_cfg),
        teacher_ckpt=ckpt,
        binarize=BIN)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def test_student_is_binary_copy_and_pairs_found(tnet_cfg, tnet_ckpt):
    teacher_cfg, teacher_ckpt = tnet_cfg, tnet_ckpt
    model = build(teacher_cfg, teacher_ckpt)
    assert isinstance(model, BinaryDistiller)
    assert model.pair_names == ['backbone.input_tnet.pool', 'pool']
    names = [
        n for n, m in model.student.named_modules()
        if hasattr(m, 'binary_weight')
    ]
    assert names, 'the student should hold binary layers'
    assert model.student.pool.mode == 'ema'  # binarize applied aggregation
    assert model.teacher.pool.mode == 'max'
    # init_student_from_teacher: a binarized layer keeps the teacher's weight
    name = names[0]
    t_w = dict(model.teacher.named_parameters())[name + '.weight']
    s_w = dict(model.student.named_parameters())[name + '.weight']
    assert torch.equal(t_w, s_w)
    # and without it the student differs
    other = build(teacher_cfg, teacher_ckpt, init_student_from_teacher=False)
    s_w2 = dict(other.student.named_parameters())[name + '.weight']
    assert not torch.equal(t_w, s_w2)


def test_losses_match_hand_weighting(teacher_cfg, teacher_ckpt):
    lam, eta, temp = 0.3, 0.7, 3.0
    model = build(
        teacher_cfg,
        teacher_ckpt,
        distill=dict(temperature=temp, lambda_=lam, eta=eta, reg_norm='fro'))
    model.train()
    inputs, samples = batch()
    losses = model.loss(inputs, samples)
    assert {'loss_ds', 'loss_ce', 'loss_reg'} <= set(losses)
    # Recompute every term from the two models directly.
    outs = {}

    def grab(role):

        def hook(m, i, o):
            outs.setdefault(role, []).append(max_aligned(m, i[0], o))

        return hook

    hs = [
        model.student.pool.register_forward_hook(grab('s')),
        model.teacher.pool.register_forward_hook(grab('t'))
    ]
    with torch.no_grad():
        t_logits = model.teacher._forward(inputs)
    s_losses, s_logits = model.student.loss_and_logits(inputs, samples)
    for h in hs:
        h.remove()
    assert losses['loss_ce'].item() == pytest.approx(
        (1 - lam) * s_losses['loss_ce'].item(), rel=1e-5)
    assert losses['loss_ds'].item() == pytest.approx(
        lam * soft_target_loss(s_logits, t_logits, temp).item(), rel=1e-5)
    reg = sum(pooling_norm(s, t, 'fro') for s, t in zip(outs['s'], outs['t']))
    assert losses['loss_reg'].item() == pytest.approx(
        eta * reg.item(), rel=1e-5)
    assert losses['loss_reg'].item() > 0


def test_plain_setting_skips_teacher(teacher_cfg, teacher_ckpt):
    model = build(
        teacher_cfg, teacher_ckpt, distill=dict(lambda_=0.0, eta=0.0))
    calls = []
    model.teacher.register_forward_hook(lambda *a: calls.append(1))
    model.teacher.head.register_forward_hook(lambda *a: calls.append(1))
    inputs, samples = batch()
    losses = model.loss(inputs, samples)
    assert not calls
    assert losses['loss_ds'].item() == 0 and losses['loss_reg'].item() == 0


def test_teacher_frozen_and_eval_through_train_step(teacher_cfg, teacher_ckpt):
    model = build(teacher_cfg, teacher_ckpt)
    model.train()
    assert model.student.training
    assert not any(m.training for m in model.teacher.modules())
    assert not any(p.requires_grad for p in model.teacher.parameters())
    before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    s_before = {k: v.clone() for k, v in model.student.state_dict().items()}
    optim = OptimWrapper(
        torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                        lr=0.1))
    inputs, samples = batch()
    log = model.train_step(dict(inputs=inputs, data_samples=samples), optim)
    assert {'loss', 'loss_ds', 'loss_ce', 'loss_reg'} <= set(log)
    after = model.teacher.state_dict()
    for k, v in before.items():  # weights and BN running stats unchanged
        assert torch.equal(v, after[k]), k
    assert not any(m.training for m in model.teacher.modules())
    assert any(not torch.equal(v,
                               model.student.state_dict()[k])
               for k, v in s_before.items())


def test_predict_uses_student_and_checkpoint_drops_teacher(
        teacher_cfg, teacher_ckpt):
    model = build(teacher_cfg, teacher_ckpt)
    model.eval()
    inputs, samples = batch()
    out = model(inputs, samples, mode='predict')
    expected = model.student._forward(inputs).softmax(1)
    assert torch.allclose(torch.stack([s.pred_score for s in out]), expected)
    state = model.state_dict()
    assert state and not any(k.startswith('teacher.') for k in state)
    assert any(k.startswith('student.') for k in state)
    model.load_state_dict(state, strict=True)  # teacher keys not required
    keep = build(teacher_cfg, teacher_ckpt, save_teacher=True)
    assert any(k.startswith('teacher.') for k in keep.state_dict())


def test_runner_init_weights_keeps_teacher_copy(teacher_cfg, teacher_ckpt):
    model = build(teacher_cfg, teacher_ckpt)
    w = model.student.head.state_dict()
    model.init_weights()
    assert all(
        torch.equal(v,
                    model.student.head.state_dict()[k]) for k, v in w.items())


def test_teacher_ckpt_work_dir(tmp_path, teacher_cfg):
    work = tmp_path / 'work'
    work.mkdir()
    save_teacher(teacher_cfg, str(work / 'epoch_2.pth'))
    save_teacher(teacher_cfg, str(work / 'epoch_10.pth'))
    assert resolve_checkpoint(str(work)).endswith('epoch_10.pth')
    (work / 'last_checkpoint').write_text(str(work / 'epoch_2.pth'))
    assert resolve_checkpoint(str(work)).endswith('epoch_2.pth')
    save_teacher(teacher_cfg, str(work / 'best_overall_acc_epoch_1.pth'))
    assert os.path.basename(resolve_checkpoint(str(work))) == \
        'best_overall_acc_epoch_1.pth'
    model = build(teacher_cfg, str(work))
    assert model.teacher_ckpt.endswith('best_overall_acc_epoch_1.pth')


# ---------------------------------------------------------------- bad input
def test_missing_teacher_ckpt_says_how_to_train(tmp_path, teacher_cfg):
    cfg_path = 'configs/pointnet/pointnet_fp_modelnet40.py'
    with pytest.raises(
            FileNotFoundError, match=f'python tools/train.py {cfg_path}'):
        resolve_checkpoint(str(tmp_path / 'nope.pth'), cfg_path)
    with pytest.raises(FileNotFoundError, match='tools/train.py'):
        build(teacher_cfg, str(tmp_path / 'nope.pth'))
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match='holds no checkpoint'):
        build(teacher_cfg, str(empty))
    with pytest.raises(FileNotFoundError, match='needs a trained FP32'):
        build(teacher_cfg, None)


def test_pooling_shape_mismatch_names_modules(teacher_cfg, teacher_ckpt):
    model = build(teacher_cfg, teacher_ckpt, student=tiny_classifier(24))
    inputs, samples = batch()
    with pytest.raises(ValueError, match=r"'pool'.*\(4, 24\).*\(4, 16\)"):
        model.loss(inputs, samples)


def test_pairs_errors_and_selection(tnet_cfg, tnet_ckpt):
    teacher_cfg, teacher_ckpt = tnet_cfg, tnet_ckpt
    with pytest.raises(
            ValueError,
            match="'backbone.nope' matches no pooling"
            ".*backbone.input_tnet.pool"):
        build(teacher_cfg, teacher_ckpt, distill=dict(pairs=['backbone.nope']))
    model = build(teacher_cfg, teacher_ckpt, distill=dict(pairs=['pool']))
    assert model.pair_names == ['pool']
    model = build(
        teacher_cfg, teacher_ckpt, distill=dict(pairs=['backbone.*']))
    assert model.pair_names == ['backbone.input_tnet.pool']


def test_unknown_reg_norm_and_distill_keys(teacher_cfg, teacher_ckpt):
    with pytest.raises(
            ValueError, match="'fro', '1', '2', 'l1', 'nuclear', "
            "'inf'"):
        build(teacher_cfg, teacher_ckpt, distill=dict(reg_norm='max'))
    with pytest.raises(ValueError, match='unknown distill keys'):
        build(teacher_cfg, teacher_ckpt, distill=dict(lambda_=0.5, beta=1))
    with pytest.raises(ValueError, match='lambda_'):
        build(teacher_cfg, teacher_ckpt, distill=dict(lambda_=1.5))


def test_nan_loss_stops_with_step_and_term(teacher_cfg, teacher_ckpt):
    # Outside a Runner the step is the model's own count: start from a fresh
    # message hub so an earlier Runner test's iteration does not leak in.
    from mmengine.logging import MessageHub
    MessageHub.get_instance('test_nan_loss_stops_with_step_and_term')
    model = build(teacher_cfg, teacher_ckpt)
    inputs, samples = batch()
    model.loss(inputs, samples)  # step 0 is fine
    with torch.no_grad():  # poison the student's head bias
        model.student.head.state_dict()
        for p in model.student.head.parameters():
            p.fill_(float('nan'))
    with pytest.raises(
            FloatingPointError,
            match=r'loss_(ds|ce) became nan at training step 1'):
        model.loss(inputs, samples)


def test_teacher_as_config_path(tmp_path, teacher_cfg, teacher_ckpt):
    path = tmp_path / 'teacher_cfg.py'
    path.write_text(f'model = {teacher_cfg!r}\n')
    model = build(str(path), teacher_ckpt)
    assert isinstance(model.student.pool, PointPool)
    with pytest.raises(
            FileNotFoundError, match=f'python tools/train.py '
            f'{path}'):
        build(str(path), str(tmp_path / 'missing.pth'))


def test_ema_sites_compared_before_their_shift():
    x = torch.randn(2, 3, 7)
    for mode in ('max', 'avg'):
        out = PointPool(mode)(x)
        assert max_aligned(PointPool(mode), x, out) is out
    ema = PointPool('ema')
    assert torch.allclose(max_aligned(ema, x, ema(x)), x.max(-1)[0])
    both = PointPool('ema+avg')
    assert torch.allclose(
        max_aligned(both, x, both(x)), PointPool('max+avg')(x), atol=1e-6)
    assert ema_offset(7) > 0


def test_pooling_outputs_are_what_l_reg_compares(tnet_cfg, tnet_ckpt):
    model = build(
        tnet_cfg,
        tnet_ckpt,
        distill=dict(lambda_=0.0, eta=0.5, reg_norm='fro'))
    model.train()
    inputs, samples = batch()
    names, s_outs, t_outs = model.pooling_outputs(inputs, samples)
    assert names == model.pair_names and len(names) == 2
    assert not any(out for rec in model._pooled.values()
                   for out in rec.outputs.values())
    assert all(not s.requires_grad for s in s_outs)
    # batch statistics: the same batch gives the same pooled values in loss()
    expected = 0.5 * torch.stack(
        [pooling_norm(s, t, 'fro') for s, t in zip(s_outs, t_outs)]).mean()
    got = model.loss(inputs, samples)['loss_reg']
    assert torch.allclose(got, expected, rtol=1e-5)
    # EMA sites come back with the shift added back, like L_reg sees them
    site = model.student.get_submodule(names[0])
    assert site.mode == 'ema'


class _LogitMatchLoss(nn.Module):
    """A loss defined only in this test: weight · mean (s − t)² of logits
    plus, with pooling, the mean |s − t| of the first paired site."""

    needs_pooling = True

    def __init__(self, weight=1.0):
        super().__init__()
        self.weight = weight

    def forward(self, outputs):
        logit = self.weight * (outputs.student_logits -
                               outputs.teacher_logits).pow(2).mean()
        site = (outputs.student_pooled[0] -
                outputs.teacher_pooled[0]).abs().mean()
        return dict(loss_logit_match=logit, loss_site_l1=site)


class _NoTeacherLoss(nn.Module):
    needs_teacher = False
    loss_name = 'logit_norm'

    def forward(self, outputs):
        assert outputs.teacher_logits is None
        return 1e-3 * outputs.student_logits.pow(2).mean()


@pytest.fixture
def extra_loss_types():
    MODELS.register_module(name='_LogitMatchLoss', module=_LogitMatchLoss)
    MODELS.register_module(name='_NoTeacherLoss', module=_NoTeacherLoss)
    yield
    for name in ('_LogitMatchLoss', '_NoTeacherLoss'):
        MODELS.module_dict.pop(name)


def test_extra_losses_from_config_train(tnet_cfg, tnet_ckpt, extra_loss_types):
    model = build(
        tnet_cfg,
        tnet_ckpt,
        distill=dict(lambda_=0.0, eta=0.0),
        extra_losses=[dict(type='_LogitMatchLoss', weight=0.5)])
    model.train()
    inputs, samples = batch()
    losses = model.loss(inputs, samples)
    # λ = η = 0 would skip the teacher; the extra loss asks for it
    with torch.no_grad():
        t_logits = model.teacher._forward(inputs, samples)
    names, s_outs, t_outs = model.pooling_outputs(inputs, samples)
    with torch.no_grad():
        s_logits = model.student._forward(inputs, samples)
    assert torch.allclose(
        losses['loss_logit_match'],
        0.5 * (s_logits - t_logits).pow(2).mean(),
        rtol=1e-5)
    assert torch.allclose(
        losses['loss_site_l1'], (s_outs[0] - t_outs[0]).abs().mean(),
        rtol=1e-5)
    # its gradient reaches the student, and training on it alone lowers it
    grads = torch.autograd.grad(
        losses['loss_logit_match'],
        list(model.student.parameters()),
        allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    wrapper = OptimWrapper(
        torch.optim.Adam(model.student.parameters(), lr=1e-3))
    first = float(losses['loss_logit_match'])
    for _ in range(20):
        out = model.loss(inputs, samples)
        wrapper.update_params(out['loss_logit_match'])
    assert float(model.loss(inputs, samples)['loss_logit_match']) < first


def test_extra_loss_without_teacher_and_bad_returns(teacher_cfg, teacher_ckpt,
                                                    extra_loss_types):
    model = build(
        teacher_cfg,
        teacher_ckpt,
        distill=dict(lambda_=0.0, eta=0.0),
        extra_losses=[dict(type='_NoTeacherLoss')])
    calls = []
    model.teacher.register_forward_hook(lambda *a: calls.append(1))
    model.train()
    losses = model.loss(*batch())
    assert 'loss_logit_norm' in losses and not calls
    model.extra_losses[0].forward = lambda outputs: 3.0
    with pytest.raises(TypeError, match='scalar tensor or a dict'):
        model.loss(*batch())
