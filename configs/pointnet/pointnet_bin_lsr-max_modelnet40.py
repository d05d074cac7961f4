# PointNet (with T-Nets) LSR + MAX on ModelNet40 (the paper's "LSR + MAX"):
# binary
# student trained with the task loss only (λ = η = 0).
_base_ = ['./pointnet_bin_base-max_modelnet40.py']

model = dict(binarize=dict(method='lsr'))
