# PointNet (with T-Nets) IRNET + EMA on ModelNet40 (the paper's "IRNET + EMA"):
# binary
# student trained with the task loss only (λ = η = 0).
_base_ = ['./pointnet_bin_base_modelnet40.py']

model = dict(binarize=dict(method='irnet', aggregation='ema'))

# IR-Net's EDE: the backward approximation sharpens during training.
custom_hooks = [dict(type='TeacherValHook'), dict(type='IRNetScheduleHook')]
