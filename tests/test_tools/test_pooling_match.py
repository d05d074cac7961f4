# Copyright (c) mmbinpc contributors. All rights reserved.
import json

import pytest
import torch
from mmdet3d.registry import MODELS
from mmengine.config import Config

from mmbinpc.experiments.runner import load_tool
from mmbinpc.models.losses import pooling_norm


@pytest.fixture(scope='module')
def tool():
    return load_tool('analysis/pooling_match')


def test_site_statistics_by_hand(tool):
    teacher = torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0],
                            [-1.0, 4.0, 2.0], [0.5, 1.0, 1.5]])
    st = tool.site_statistics(2 * teacher, teacher)
    # a scaled copy: perfectly correlated entries and channel means
    assert st['corr'] == pytest.approx(1.0)
    assert st['channel_corr'] == pytest.approx(1.0)
    # the difference is the teacher itself: its channel means explain
    # B * sum_j mean_j^2 of sum_ij t_ij^2
    means = teacher.mean(0)
    share = float(4 * (means**2).sum() / (teacher**2).sum())
    assert st['offset_share'] == pytest.approx(share)
    assert st['l_reg']['l1'] == pytest.approx(float(teacher.abs().sum()) / 4)
    assert st['l_reg']['1'] == pytest.approx(
        float(teacher.abs().sum(0).max()) / 4)
    assert st['student_positive'] == pytest.approx(8 / 12)  # 0 is not
    # a constant offset per channel is all offset; opposite signs anti-corr
    shifted = tool.site_statistics(teacher + torch.tensor([1.0, 2.0, 3.0]),
                                   teacher)
    assert shifted['offset_share'] == pytest.approx(1.0)
    assert tool.site_statistics(-teacher,
                                teacher)['corr'] == pytest.approx(-1.0)
    # a constant student has no correlation; the mean skips undefined values
    flat = tool.site_statistics(torch.ones_like(teacher), teacher)
    assert flat['corr'] is None and flat['channel_corr'] is None
    assert tool._mean_of([dict(c=None, d=1.0),
                          dict(c=0.5, d=3.0)]) == dict(
                              c=0.5, d=2.0)
    with pytest.raises(ValueError, match='differ in shape'):
        tool.site_statistics(teacher, teacher[:2])


def test_term_gradient_norms_by_hand(tool):
    w = torch.tensor([3.0, 4.0], requires_grad=True)
    losses = dict(
        loss_a=(w * w).sum() / 2,
        loss_b=torch.tensor(1.0),
        loss_c=2 * w[0],
        acc=w.sum())
    got = tool.term_gradient_norms(losses, [w])
    assert got == dict(
        loss_a=pytest.approx(5.0), loss_b=0.0, loss_c=pytest.approx(2.0))


def test_main_matches_the_distillers_own_loss(tmp_path, tiny_pointnet_config,
                                              tool):
    teacher_file = tiny_pointnet_config()
    teacher = MODELS.build(Config.fromfile(teacher_file).model)
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save({'meta': {}, 'state_dict': teacher.state_dict()}, ckpt)
    student_file = tmp_path / 'student.py'
    student_file.write_text(f"""
_base_ = [{teacher_file!r}]
model = dict(_delete_=True, type='BinaryDistiller', teacher={teacher_file!r},
             teacher_ckpt={ckpt!r},
             binarize=dict(method='xnor', aggregation='max'),
             distill=dict(lambda_=0.0, eta=2.0, reg_norm='fro'))
""")
    out = tmp_path / 'match.json'
    result = tool.main([
        str(student_file), '--batches', '1', '--batch-size', '4', '--json',
        str(out)
    ])
    assert list(result['sites']) == ['pool']
    assert result['checkpoint'] is None and result['batches'] == 1
    # the distiller on the same first batch of the same seeded loader
    cfg = Config.fromfile(str(student_file))
    model = MODELS.build(cfg.model)
    model.train()
    loader = cfg.train_dataloader
    loader.update(
        num_workers=0,
        persistent_workers=False,
        batch_size=4,
        sampler=dict(type='DefaultSampler', shuffle=True, seed=0))
    from mmengine.runner import Runner
    from mmengine.runner.utils import set_random_seed
    set_random_seed(0)
    data = model.data_preprocessor(
        next(iter(Runner.build_dataloader(loader))), True)
    _, s_outs, t_outs = model.pooling_outputs(data['inputs'],
                                              data['data_samples'])
    assert result['sites']['pool']['l_reg']['fro'] == pytest.approx(
        float(pooling_norm(s_outs[0], t_outs[0], 'fro')), rel=1e-5)
    grads = result['gradient_norms']
    assert grads['loss_ds'] == 0.0  # lambda_ = 0: no path to the student
    assert grads['loss_reg'] > 0 and grads['loss_ce'] > 0
    assert json.loads(out.read_text())['sites'] == result['sites']
    # a checkpoint is measured as loaded, and the tool leaves it unchanged
    trained = str(tmp_path / 'student.pth')
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, trained)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tool.measure(model, [(data['inputs'], data['data_samples'])])
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    again = tool.main(
        [str(student_file), trained, '--batches', '1', '--batch-size', '4'])
    assert again['sites']['pool']['l_reg']['fro'] == pytest.approx(
        result['sites']['pool']['l_reg']['fro'], rel=1e-5)
    with pytest.raises(TypeError, match='not a BinaryDistiller'):
        tool.measure(teacher, [(data['inputs'], data['data_samples'])])
