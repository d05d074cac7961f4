# FP32 PointNet (both T-Nets) teacher on ModelNet40 (1024 points, xyz):
# Adam 1e-3, cosine, 200 epochs, batch 32. Train with
#   python tools/train.py configs/pointnet/pointnet_fp_modelnet40.py
_base_ = [
    '../_base_/models/pointnet.py', '../_base_/datasets/modelnet40.py',
    '../_base_/schedules/cls_adam_cosine_200e.py',
    '../_base_/default_runtime.py'
]
