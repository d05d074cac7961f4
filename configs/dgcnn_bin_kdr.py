# The headline experiment: a binary DGCNN classifier on ModelNet40 with
# LSR + EMA (BiPointNet) trained by KDR from its FP32 teacher:
#   L = λ·L_DS + (1−λ)·L_CE + η·L_reg,  T = 2, reg_norm = '1' (Table 1).
# 1. python tools/train.py configs/dgcnn/dgcnn_fp_modelnet40.py   (teacher)
# 2. python tools/train.py configs/dgcnn_bin_kdr.py                (student)
# The teacher checkpoint is the best (else latest) one in
# work_dirs/dgcnn_fp_modelnet40; set model.teacher_ckpt to use another.
_base_ = ['./dgcnn/dgcnn_bin_lsr-ema-kdr_modelnet40.py']

model = dict(
    teacher='configs/dgcnn/dgcnn_fp_modelnet40.py',
    teacher_ckpt='work_dirs/dgcnn_fp_modelnet40',
    binarize=dict(method='lsr', aggregation='ema'),
    distill=dict(
        temperature=2.0, lambda_=0.5, eta=0.01, reg_norm='1', pairs='auto'))
