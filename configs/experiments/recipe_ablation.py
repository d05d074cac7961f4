# The binary-student recipe (docs/recipe.md), one part left out at a time,
# on the LSR + EMA PointNet trained with L_CE only ("plain"), and the KDR
# student with and without the recipe. Run with
#   python tools/experiments/run.py \
#       configs/experiments/recipe_ablation.py --scale cpu --jobs 2
# Data only (see mmbinpc/experiments/grid.py for the keys).
title = 'Recipe ablation: LSR + EMA PointNet, one part of the recipe left out'
description = ('"recipe" is the shipped config; each other row changes one '
               'setting with cfg options (or the two configs under '
               'configs/pointnet/ablations/).')

_plain = 'configs/pointnet/pointnet_bin_lsr-ema_modelnet40.py'
_kdr = 'configs/pointnet/pointnet_bin_lsr-ema-kdr_modelnet40.py'
_abl = 'configs/pointnet/ablations/pointnet_bin_lsr-ema_{}_modelnet40.py'

teachers = dict(
    pointnet=dict(config='configs/pointnet/pointnet_fp_modelnet40.py',
                  label='FP32 PointNet (teacher)',
                  tags=dict(variant='teacher')))


def _run(name, label, config=_plain, **options):
    return dict(name=name, config=config, teacher='pointnet',
                cfg_options={k.replace('__', '.'): v
                             for k, v in options.items()},
                label=label, tags=dict(variant=label))


runs = [
    _run('recipe', 'recipe (shipped)'),
    _run('no-recipe', 'none of the recipe (as before)',
         config=_abl.format('no-recipe')),
    _run('fast-scales', "binarizer scales at the latents' LR",
         optim_wrapper__paramwise_cfg__binarizer_lr_mult=1.0),
    _run('lr-1e-3', "the teacher's learning rate (1e-3)",
         optim_wrapper__optimizer__lr=0.001),
    _run('uniform-lr', 'one LR for every latent weight',
         optim_wrapper__paramwise_cfg__latent_lr='uniform'),
    _run('keep-dropout', 'head dropout kept before its binary layer',
         model__binarize__dropout='keep'),
    _run('point-dropout', 'RandomPointDropout in the pipeline',
         config=_abl.format('point-dropout')),
    _run('latent-decay', 'weight decay on the latent weights',
         optim_wrapper__paramwise_cfg__latent_decay_mult=1.0),
]

plots = [dict(type='bars')]
