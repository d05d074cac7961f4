# Shared settings of the binary PointNet students with max pooling (not an
# experiment itself: the *_bin_<method>-max[-kdr]_modelnet40.py files set the
# binarizer and the loss weights).
_base_ = ['./pointnet_bin_base_modelnet40.py']

# With max pooling the pooled features are maxima over the cloud's points,
# almost always positive, so the head's binary input sign(a) would be the
# same +1 vector for every cloud: the head's first layer binarizes a − μ
# instead, μ the per-channel mean (running mean at test time;
# docs/recipe.md).
model = dict(binarize=dict(aggregation='max', center_inputs='head.mlp.0'))

# Before each validation, re-estimate the student's BatchNorm statistics layer
# by layer in eval mode from 512 training samples: the running averages of a
# binary MAX student do not describe eval mode (docs/recipe.md).
custom_hooks = [dict(type='TeacherValHook'), dict(type='BNRecalibrationHook')]
