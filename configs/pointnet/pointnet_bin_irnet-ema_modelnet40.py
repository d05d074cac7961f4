# PointNet (with T-Nets) IRNET + EMA on ModelNet40 (the paper's "IRNET + EMA"):
# binary
# student trained with the task loss only (λ = η = 0).
_base_ = ['./pointnet_bin_base_modelnet40.py']

# The T-Nets' final `transform` layers have no BatchNorm after them and their
# output multiplies the points: with IR-Net's weights (±1 times a power of two
# of the *standardised* weights, about 1) their outputs reach ±256 and the
# transforms turn random, so those two layers use XNOR's per-channel weight
# scale (docs/recipe.md).
model = dict(
    binarize=dict(
        method='irnet',
        aggregation='ema',
        overrides={'*tnet.transform': 'xnor'}))

# IR-Net's EDE: the backward approximation sharpens during training.
custom_hooks = [dict(type='TeacherValHook'), dict(type='IRNetScheduleHook')]
