# PointCNN XNOR + KD on ModelNet40 (the paper's Table 6 "XNOR+KD"):
# L = λ·L_DS + (1−λ)·L_CE with T = 2 and λ = 0.5, the other backbones' KDR
# weights. No pooling regulariser (η = 0): PointCNN has no max pooling site.
_base_ = ['./pointcnn_bin_xnor_modelnet40.py']

model = dict(distill=dict(temperature=2.0, lambda_=0.5, eta=0.0))
