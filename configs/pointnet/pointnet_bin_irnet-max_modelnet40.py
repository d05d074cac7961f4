# PointNet (with T-Nets) IRNET + MAX on ModelNet40 (the paper's "IRNET + MAX"):
# binary
# student trained with the task loss only (λ = η = 0).
_base_ = ['./pointnet_bin_base_modelnet40.py']

# The T-Nets' final `transform` layers have no BatchNorm after them and their
# output multiplies the points: with IR-Net's weights (±1 times a power of two
# of the *standardised* weights, about 1) their outputs reach ±256 and the
# transforms turn random, so those two layers use XNOR's per-channel weight
# scale (docs/recipe.md).
# With max pooling the pooled features are maxima over the cloud's points,
# almost always positive, so the head's binary input sign(a) would be the
# same +1 vector for every cloud: the head's first layer binarizes a − μ
# instead, μ the per-channel mean (running mean at test time;
# docs/recipe.md).
model = dict(
    binarize=dict(method='irnet', aggregation='max',
                  overrides={'*tnet.transform': 'xnor'},
                  center_inputs='head.mlp.0'))

# IR-Net's EDE: the backward approximation sharpens during training. Before
# each validation, re-estimate the student's BatchNorm statistics layer by
# layer in eval mode from 512 training samples: the running averages of a
# binary MAX student do not describe eval mode (docs/recipe.md).
custom_hooks = [
    dict(type='TeacherValHook'),
    dict(type='IRNetScheduleHook'),
    dict(type='BNRecalibrationHook')
]
