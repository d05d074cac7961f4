# BiPointNet's classification schedule: Adam lr 1e-3, cosine decay, 200 epochs.
# Shorten with `tools/train.py CONFIG --epochs N` (also rescales the cosine).
max_epochs = 200
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='Adam', lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-4))
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True)
]
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# Base learning rate for automatic scaling with the total batch size.
auto_scale_lr = dict(enable=False, base_batch_size=32)
