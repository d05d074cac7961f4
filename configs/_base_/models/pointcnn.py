# PointCNN classifier (Li et al. 2018), the reference ModelNet40 setting
# modelnet_x3_l4: four X-Conv layers (K, D, P, C) = (8, 1, all, 48),
# (12, 2, 384, 96), (16, 2, 128, 192), (16, 3, 128, 384) with a global-position
# branch, per-point fully connected layers 384 and 192 (dropout 0.8), the
# average over the representative points, a linear classifier. 599,340
# parameters with 40 classes (mmbinpc/models/backbones/pointcnn.py).
model = dict(
    type='PointClassifier',
    data_preprocessor=dict(type='Det3DDataPreprocessor'),
    backbone=dict(
        type='PointCNN',
        in_channels=3,
        num_points=(-1, 384, 128, 128),
        kernel_sizes=(8, 12, 16, 16),
        dilations=(1, 2, 2, 3),
        channels=(48, 96, 192, 384),
        with_global=True,
        fc_channels=(384, 192),
        fc_dropout=(0.0, 0.8),
        sampling='fps'),
    # X-Conv aggregates neighbourhoods; the classifier averages the
    # representatives' features (no max pooling site)
    pool=dict(type='PointPool', mode='avg'),
    head=dict(
        type='PointClsHead', in_channels=192, num_classes=40, mid_channels=()))
