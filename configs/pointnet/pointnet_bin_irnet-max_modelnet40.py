# PointNet (with T-Nets) IRNET + MAX on ModelNet40 (the paper's "IRNET + MAX"):
# binary
# student trained with the task loss only (λ = η = 0).
_base_ = ['./pointnet_bin_base_modelnet40.py']

model = dict(binarize=dict(method='irnet', aggregation='max'))

# IR-Net's EDE: the backward approximation sharpens during training.
custom_hooks = [dict(type='TeacherValHook'), dict(type='IRNetScheduleHook')]
