# Table 3 of Zhao et al. (2023): the regulariser alone,
# L = L_origin + η·L_reg (λ = 0), for each Table 1 norm of the difference
# between the student's and the teacher's pooling outputs, on four binary
# PointNets. 'origin' is the plain student (λ = η = 0). Its runs also give
# the paper's Fig. 3 (training loss per norm): <name>_train_loss.png.
#   python tools/experiments/run.py \
#       configs/experiments/table3_norms.py --scale cpu
# η is the -kdr configs' value for every norm (the paper gives none; the
# norms are batch-normalised in PoolingNormLoss, see docs/method.md).
title = 'Table 3: the pooling regulariser alone, per norm (PointNet, λ = 0)'
description = ('Runs with a norm use the -kdr config with λ = 0 (no '
               'distillation) and model.distill.reg_norm set; "origin" is '
               'the plain config (L_CE only).')

_settings = (('bnn-max', 'BNN+MAX'), ('irnet-max', 'IRNET+MAX'),
             ('xnor-max', 'XNOR+MAX'), ('lsr-ema', 'LSR+EMA'))
_norms = ('fro', '1', '2', 'l1', 'nuclear', 'inf')

teachers = dict(
    pointnet=dict(
        config='configs/pointnet/pointnet_fp_modelnet40.py',
        label='FP32 PointNet (teacher)',
        tags=dict(method='FP32', norm='teacher')))

runs = [
    dict(
        name=f'{s}_origin',
        config=f'configs/pointnet/pointnet_bin_{s}_modelnet40.py',
        teacher='pointnet',
        label=f'{M}, origin (L_CE)',
        paper=dict(
            table='T3', backbone='PointNet', method=M, setting='origin'),
        tags=dict(method=M, norm='none')) for s, M in _settings
] + [
    dict(
        name=f'{s}_reg-{n}',
        config=f'configs/pointnet/pointnet_bin_{s}-kdr_modelnet40.py',
        teacher='pointnet',
        cfg_options={
            'model.distill.lambda_': 0.0,
            'model.distill.reg_norm': n
        },
        label=f'{M}, L_CE + η·L_reg ({n})',
        paper=dict(
            table='T3', backbone='PointNet', method=M, setting=f'reg={n}'),
        tags=dict(method=M, norm=n)) for s, M in _settings for n in _norms
]

plots = [
    dict(type='bars'),
    dict(
        type='curves',
        name='train_loss',
        curve='train_loss',
        panel='method',
        series='norm',
        teacher=False,
        title='Fig. 3: training loss per norm (L_CE + η·L_reg)'),
]
