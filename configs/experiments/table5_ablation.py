# Table 5 of Zhao et al. (2023): ablation of the two KDR terms on the eight
# binary PointNets: KD only (η = 0: λ·L_DS + (1−λ)·L_CE), reg only
# (λ = 0: L_CE + η·L_reg) and both (the -kdr configs as they are).
#   python tools/experiments/run.py \
#       configs/experiments/table5_ablation.py --scale cpu
# The paper's Table 5 gives KD only and reg only; "both" is compared with
# its Table 4 (+KDR) figure.
title = 'Table 5: KD only / reg only / both (PointNet)'
description = ('All runs use the -kdr config; KD only sets '
               'model.distill.eta=0, reg only sets model.distill.lambda_=0.')

_methods = (('bnn', 'BNN'), ('irnet', 'IRNET'), ('xnor', 'XNOR'), ('lsr',
                                                                   'LSR'))
_aggregations = (('max', 'MAX'), ('ema', 'EMA'))
_variants = (
    ('kd', 'KD only', {
        'model.distill.eta': 0.0
    }),
    ('reg', 'reg only', {
        'model.distill.lambda_': 0.0
    }),
    ('both', 'both', {}),
)

teachers = dict(
    pointnet=dict(
        config='configs/pointnet/pointnet_fp_modelnet40.py',
        label='FP32 PointNet (teacher)',
        paper=dict(table='T4', backbone='PointNet', method='FP32', setting=''),
        tags=dict(method='FP32', variant='teacher')))

runs = [
    dict(
        name=f'{m}-{a}_{v}',
        config=f'configs/pointnet/pointnet_bin_{m}-{a}-kdr_modelnet40.py',
        teacher='pointnet',
        cfg_options=opts,
        label=f'{M} + {A}, {V}',
        paper=(dict(
            table='T4', backbone='PointNet', method=f'{M}+{A}+KDR',
            setting='') if v == 'both' else dict(
                table='T5', backbone='PointNet', method=f'{M}+{A}',
                setting=V)),
        tags=dict(method=f'{M}+{A}', variant=V)) for m, M in _methods
    for a, A in _aggregations for v, V, opts in _variants
]

plots = [dict(type='bars')]
