# ModelNet40 classification, 1024 points (xyz), modelnet40_normal_resampled
# or modelnet40_ply_hdf5_2048 under data_root (format detected). Without real
# ModelNet40,
#   python tools/create_synthetic_modelnet.py data/modelnet40_normal_resampled
# writes a SYNTHETIC stand-in there (see docs/datasets.md).
dataset_type = 'ModelNet40Dataset'
data_root = 'data/modelnet40_normal_resampled'
num_points = 1024
use_normals = False

train_pipeline = [
    dict(type='NormalizePointsToUnitSphere'),
    dict(type='RandomPointDropout', max_dropout_ratio=0.875),
    dict(type='RandomAnisotropicScale', scale_range=(0.8, 1.25)),
    dict(type='RandomShift', shift_range=0.1),
    dict(type='PointShuffle'),
    dict(type='PackClsInputs'),
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
    dataset=dict(type=dataset_type,
                 data_root=data_root,
                 split='train',
                 num_points=num_points,
                 use_normals=use_normals,
                 pipeline=train_pipeline))
val_dataloader = dict(batch_size=32,
                      num_workers=2,
                      persistent_workers=True,
                      drop_last=False,
                      sampler=dict(type='DefaultSampler', shuffle=False),
                      dataset=dict(type=dataset_type,
                                   data_root=data_root,
                                   split='test',
                                   num_points=num_points,
                                   use_normals=use_normals,
                                   pipeline=test_pipeline,
                                   test_mode=True))
test_dataloader = val_dataloader

val_evaluator = dict(type='ClsMetric')
test_evaluator = val_evaluator
