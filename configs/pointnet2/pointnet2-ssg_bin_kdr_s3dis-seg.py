# Binary PointNet++ (SSG) semantic segmentation on S3DIS (test on Area 5):
# LSR + EMA student distilled by KDR from mmdet3d's FP32 PointNet++. L_DS is
# per point (points labelled ignore_index=13 left out), L_CE is the decode
# head's loss.
# 1. python tools/train.py \
#        mmdet3d::pointnet2/pointnet2_ssg_2xb16-cosine-50e_s3dis-seg.py
# 2. python tools/train.py configs/pointnet2/pointnet2-ssg_bin_kdr_s3dis-seg.py
# No S3DIS? python tools/create_synthetic_s3dis.py data/s3dis
_base_ = ['mmdet3d::pointnet2/pointnet2_ssg_2xb16-cosine-50e_s3dis-seg.py']

custom_imports = dict(imports=['mmbinpc'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='BinaryDistiller',
    teacher='mmdet3d::pointnet2/pointnet2_ssg_2xb16-cosine-50e_s3dis-seg.py',
    teacher_ckpt='work_dirs/pointnet2_ssg_2xb16-cosine-50e_s3dis-seg',
    binarize=dict(method='lsr', aggregation='ema'),
    init_student_from_teacher=True,
    distill=dict(
        temperature=2.0, lambda_=0.5, eta=0.002, reg_norm='1', pairs='auto'))

custom_hooks = [dict(type='TeacherValHook')]

# Kill-safe checkpoints and a resume that reproduces the uninterrupted run
# (docs/security_and_reliability.md); mmdet3d's runtime has neither.
default_hooks = dict(
    checkpoint=dict(type='SafeCheckpointHook'),
    rng_state=dict(type='RNGStateHook'))
