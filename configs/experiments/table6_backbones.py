# Table 6 of Zhao et al. (2023): KDR on other backbones, PointNet++ (SSG)
# and DGCNN, with XNOR + MAX and LSR + EMA, plain vs KDR, beside each FP32
# teacher; with the paper's Fig. 4 (per-epoch validation error of the
# teacher, the plain and the KDR student; one panel per backbone/method):
# <name>_val_error.png.
#   python tools/experiments/run.py \
#       configs/experiments/table6_backbones.py --scale cpu
# PointNet++'s first SA layer samples 512 centroids; with fewer points per
# shape (the cpu scale's 256) farthest point sampling repeats points: it
# runs, but is not the paper's setting (see docs/experiments.md).
title = 'Table 6: other backbones (PointNet++ SSG, DGCNN), plain vs KDR'
description = ('Students start from their FP32 teacher; KDR uses each '
               "backbone's -kdr config (λ = 0.5, T = 2, 1-norm).")

_backbones = (
    ('pointnet2', 'PointNet++', 'configs/pointnet2/pointnet2-ssg'),
    ('dgcnn', 'DGCNN', 'configs/dgcnn/dgcnn'),
)
_settings = (('xnor-max', 'XNOR+MAX'), ('lsr-ema', 'LSR+EMA'))

teachers = {
    b:
    dict(
        config=f'{prefix}_fp_modelnet40.py',
        label=f'FP32 {B} (teacher)',
        paper=dict(table='T6', backbone=B, method='FP32', setting=''),
        tags=dict(backbone=B, method='FP32', loss='FP32'))
    for b, B, prefix in _backbones
}

runs = [
    dict(
        name=f'{b}_{s}{kdr}',
        config=f'{prefix}_bin_{s}{kdr}_modelnet40.py',
        teacher=b,
        label=f'{B} {M}' + (' + KDR' if kdr else ''),
        paper=dict(
            table='T6',
            backbone=B,
            method=M + ('+KDR' if kdr else ''),
            setting=''),
        tags=dict(backbone=B, method=M, loss='KDR' if kdr else 'plain'))
    for b, B, prefix in _backbones for s, M in _settings
    for kdr in ('', '-kdr')
]

plots = [
    dict(type='bars'),
    dict(
        type='curves',
        name='val_error',
        curve='val_error',
        panel=('backbone', 'method'),
        series='loss',
        teacher=True,
        title='Fig. 4: validation error per epoch, teacher vs plain vs KDR'),
]
