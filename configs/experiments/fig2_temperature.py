# Fig. 2 of Zhao et al. (2023): KDR's distillation temperature T = 1..10 for
# LSR + EMA + KDR and XNOR + MAX + KDR (binary PointNet). The paper gives
# this figure as a plot only, so there is no paper column.
#   python tools/experiments/run.py \
#       configs/experiments/fig2_temperature.py --scale cpu
title = 'Fig. 2: accuracy vs distillation temperature T (PointNet, KDR)'
description = ('The -kdr configs with model.distill.temperature = T; the '
               'other weights as configured (λ = 0.5, 1-norm).')

_settings = (('lsr-ema', 'LSR+EMA'), ('xnor-max', 'XNOR+MAX'))

teachers = dict(
    pointnet=dict(
        config='configs/pointnet/pointnet_fp_modelnet40.py',
        label='FP32 PointNet (teacher)',
        tags=dict(method='FP32')))

runs = [
    dict(
        name=f'{s}-kdr_T{t}',
        config=f'configs/pointnet/pointnet_bin_{s}-kdr_modelnet40.py',
        teacher='pointnet',
        cfg_options={'model.distill.temperature': float(t)},
        label=f'{M} + KDR, T = {t}',
        tags=dict(method=f'{M}+KDR', T=t)) for s, M in _settings
    for t in range(1, 11)
]

plots = [
    dict(type='xy', name='temperature', x='T', series='method'),
    dict(type='bars')
]
