# PointCNN XNOR on ModelNet40 (the paper's Table 6 "XNOR"): binary student
# trained with the task loss only (λ = η = 0).
_base_ = ['./pointcnn_bin_base_modelnet40.py']

model = dict(binarize=dict(method='xnor'))
