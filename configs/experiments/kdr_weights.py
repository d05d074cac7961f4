# The weight η of the pooling regulariser in KDR, on the LSR + EMA PointNet
# (λ = 0.5, T = 2, the 1-norm): η = 0.2 is the -kdr config as shipped (its
# runs are Table 4's lsr-ema-kdr); η = 0 is Table 5's "KD only". Run with
#   python tools/experiments/run.py \
#       configs/experiments/kdr_weights.py --scale cpu --jobs 2
# Data only (see mmbinpc/experiments/grid.py for the keys).
title = 'KDR: the pooling-regulariser weight η (LSR + EMA PointNet)'
description = ('The -kdr config with model.distill.eta set; λ = 0.5, T = 2, '
               "reg_norm = '1'.")

teachers = dict(
    pointnet=dict(
        config='configs/pointnet/pointnet_fp_modelnet40.py',
        label='FP32 PointNet (teacher)',
        tags=dict(eta='teacher')))

runs = [
    dict(
        name=f'eta-{eta}',
        config='configs/pointnet/pointnet_bin_lsr-ema-kdr_modelnet40.py',
        teacher='pointnet',
        cfg_options={'model.distill.eta': eta},
        label=f'LSR + EMA + KDR, η = {eta}',
        tags=dict(eta=eta)) for eta in (0.002, 0.02)
]

plots = [dict(type='bars')]
