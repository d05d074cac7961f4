# Runtime shared by the classification configs.
custom_imports = dict(imports=['mmbinpc'], allow_failed_imports=False)
default_scope = 'mmdet3d'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # mmengine's CheckpointHook, written kill-safe: temp file + fsync +
    # rename, the old best deleted only after the new one is in place.
    checkpoint=dict(
        type='SafeCheckpointHook',
        interval=1,
        max_keep_ckpts=2,
        save_best='overall_acc',
        rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Random state as a function of (seed, epoch, iteration), saved in each
    # checkpoint: `--resume` reproduces the uninterrupted run.
    rng_state=dict(type='RNGStateHook'),
)
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='gloo'),
)
log_processor = dict(type='LogProcessor', window_size=20, by_epoch=True)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='Det3DLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
