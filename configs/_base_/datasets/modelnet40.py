# ModelNet40 classification, 1024 points (xyz), modelnet40_normal_resampled
# or modelnet40_ply_hdf5_2048 under data_root (format detected). Without real
# ModelNet40,
#   python tools/create_synthetic_modelnet.py data/modelnet40_normal_resampled
# writes a SYNTHETIC stand-in there (see docs/datasets.md).
dataset_type = 'ModelNet40Dataset'
data_root = 'data/modelnet40_normal_resampled'
num_points = 1024
use_normals = False
# Checkpoints (best_*.pth) are picked on 'val': this share of each class's
# training shapes, held out of 'train'. The test split is only for reporting
# (tools/test.py); it is never used for a choice.
val_fraction = 0.1

train_pipeline = [
    dict(type='NormalizePointsToUnitSphere'),
    dict(type='RandomPointDropout', max_dropout_ratio=0.875),
    dict(type='RandomAnisotropicScale', scale_range=(0.8, 1.25)),
    dict(type='RandomShift', shift_range=0.1),
    dict(type='PointShuffle'),
    dict(type='PackClsInputs'),
]
# Binary students train without RandomPointDropout: it replaces up to 87.5 %
# of a cloud's points by copies of one point, and EMA's offset assumes n
# distinct points (see docs/recipe.md). The student configs select it.
binary_train_pipeline = [
    t for t in train_pipeline if t['type'] != 'RandomPointDropout'
]
test_pipeline = [
    dict(type='NormalizePointsToUnitSphere'),
    dict(type='PackClsInputs'),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    drop_last=True,  # BatchNorm needs more than one sample per batch
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        num_points=num_points,
        use_normals=use_normals,
        val_fraction=val_fraction,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        num_points=num_points,
        use_normals=use_normals,
        val_fraction=val_fraction,
        pipeline=test_pipeline,
        test_mode=True))
test_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        num_points=num_points,
        use_normals=use_normals,
        pipeline=test_pipeline,
        test_mode=True))

val_evaluator = dict(type='ClsMetric')
test_evaluator = val_evaluator
