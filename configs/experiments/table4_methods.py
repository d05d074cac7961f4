# Table 4 of Zhao et al. (2023): binary PointNet with each binarization
# method (BNN, XNOR, IR-Net, LSR) and aggregation (max pooling, EMA), trained
# with the task loss only ("plain", λ = η = 0) or with KDR
# (L = λ·L_DS + (1−λ)·L_CE + η·L_reg, the -kdr configs), beside the FP32
# teacher. Run with
#   python tools/experiments/run.py \
#       configs/experiments/table4_methods.py --scale cpu
# Data only (see mmbinpc/experiments/grid.py for the keys).
title = 'Table 4: binarization method x aggregation, plain vs KDR (PointNet)'
description = ('Each binary PointNet starts from the FP32 teacher and is '
               'trained with L_CE only (plain) or with KDR (λ = 0.5, T = 2, '
               'the 1-norm regulariser; see the -kdr configs).')

_methods = (('bnn', 'BNN'), ('xnor', 'XNOR'), ('irnet', 'IRNET'), ('lsr',
                                                                   'LSR'))
_aggregations = (('max', 'MAX'), ('ema', 'EMA'))

teachers = dict(
    pointnet=dict(
        config='configs/pointnet/pointnet_fp_modelnet40.py',
        label='FP32 PointNet (teacher)',
        paper=dict(table='T4', backbone='PointNet', method='FP32', setting=''),
        tags=dict(method='FP32', loss='L_CE')))

runs = [
    dict(
        name=f'{m}-{a}{kdr}',
        config=f'configs/pointnet/pointnet_bin_{m}-{a}{kdr}_modelnet40.py',
        teacher='pointnet',
        label=f'{M} + {A}' + (' + KDR' if kdr else ''),
        paper=dict(
            table='T4',
            backbone='PointNet',
            method=f'{M}+{A}' + ('+KDR' if kdr else ''),
            setting=''),
        tags=dict(method=f'{M}+{A}', loss='KDR' if kdr else 'plain'))
    for m, M in _methods for a, A in _aggregations for kdr in ('', '-kdr')
]

plots = [dict(type='bars')]
