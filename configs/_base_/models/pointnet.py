# PointNet (both T-Nets) classifier: 3,480,049 parameters for 40 classes.
model = dict(
    type='PointClassifier',
    data_preprocessor=dict(type='Det3DDataPreprocessor'),
    backbone=dict(
        type='PointNet',
        in_channels=3,
        channels=(64, 64, 64, 128, 1024),
        input_transform=True,
        feature_transform=True,
        feat_transform_loss_weight=0.001),
    pool=dict(type='PointPool', mode='max'),
    head=dict(
        type='PointClsHead',
        in_channels=1024,
        num_classes=40,
        mid_channels=(512, 256),
        dropout=0.4))
