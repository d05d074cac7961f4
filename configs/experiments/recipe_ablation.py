# The binary-student recipe (docs/recipe.md), one part left out at a time,
# on the LSR + EMA PointNet trained with L_CE only ("plain"), and all of it
# left out ("no-recipe"). Run with
#   python tools/experiments/run.py \
#       configs/experiments/recipe_ablation.py --scale cpu --jobs 2
# Data only (see mmbinpc/experiments/grid.py for the keys).
title = 'Recipe ablation: LSR + EMA PointNet, one part of the recipe left out'
description = ('"recipe" is the shipped config; each other row changes one '
               'setting with cfg options (or the two configs under '
               'configs/pointnet/ablations/).')

_plain = 'configs/pointnet/pointnet_bin_lsr-ema_modelnet40.py'
_abl = 'configs/pointnet/ablations/pointnet_bin_lsr-ema_{}_modelnet40.py'

teachers = dict(
    pointnet=dict(
        config='configs/pointnet/pointnet_fp_modelnet40.py',
        label='FP32 PointNet (teacher)',
        tags=dict(variant='teacher')))

# (name, label, config, cfg options): each row changes one thing
_rows = (
    ('recipe', 'recipe (shipped)', _plain, {}),
    ('no-recipe', 'none of the recipe (as before)', _abl.format('no-recipe'),
     {}),
    ('slow-scales', "binarizer scales at 0.1x their layer's LR", _plain, {
        'optim_wrapper.paramwise_cfg.binarizer_lr_mult': 0.1
    }),
    ('lr-1e-3', "the teacher's learning rate (1e-3)", _plain, {
        'optim_wrapper.optimizer.lr': 0.001
    }),
    ('uniform-lr', 'one LR for every latent weight', _plain, {
        'optim_wrapper.paramwise_cfg.latent_lr': 'uniform'
    }),
    ('keep-dropout', 'head dropout kept before its binary layer', _plain, {
        'model.binarize.dropout': 'keep'
    }),
    ('point-dropout', 'RandomPointDropout in the pipeline',
     _abl.format('point-dropout'), {}),
    ('latent-decay', 'weight decay on the latent weights', _plain, {
        'optim_wrapper.paramwise_cfg.latent_decay_mult': 1.0
    }),
)

runs = [
    dict(
        name=name,
        config=config,
        teacher='pointnet',
        cfg_options=options,
        label=label,
        tags=dict(variant=label)) for name, label, config, options in _rows
]

plots = [dict(type='bars')]
