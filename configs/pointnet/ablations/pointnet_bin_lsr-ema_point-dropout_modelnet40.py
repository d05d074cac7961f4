# Recipe ablation (docs/recipe.md): the LSR + EMA plain student trained with
# the teacher's augmentation, RandomPointDropout included.
_base_ = ['../pointnet_bin_lsr-ema_modelnet40.py']

train_dataloader = dict(dataset=dict(pipeline={{_base_.train_pipeline}}))
