# FP32 PointCNN teacher on ModelNet40 (1024 points, xyz): the reference
# ModelNet40 architecture, trained with this project's common classification
# schedule (Adam 1e-3, cosine, 200 epochs, batch 32) rather than the
# reference code's (Adam 1e-2, step decay, batch 128). Train with
#   python tools/train.py configs/pointcnn/pointcnn_fp_modelnet40.py
_base_ = [
    '../_base_/models/pointcnn.py', '../_base_/datasets/modelnet40.py',
    '../_base_/schedules/cls_adam_cosine_200e.py',
    '../_base_/default_runtime.py'
]
