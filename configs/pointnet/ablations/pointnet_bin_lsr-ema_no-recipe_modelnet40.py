# Recipe ablation (docs/recipe.md): the LSR + EMA plain student without any
# part of the binary-student recipe, as the project trained it before: one
# learning rate (the teacher's, 1e-3) and weight decay for every parameter,
# the head's dropout kept before its binary layer, RandomPointDropout in the
# pipeline.
_base_ = ['./pointnet_bin_lsr-ema_point-dropout_modelnet40.py']

optim_wrapper = dict(
    optimizer=dict(lr=1e-3),
    paramwise_cfg=dict(
        latent_lr='uniform',
        latent_decay_mult=1.0,
        binarizer_lr_mult=1.0,
        binarizer_decay_mult=1.0))
model = dict(binarize=dict(dropout='keep'))
