# DGCNN classifier (Wang et al. 2019): EdgeConv 64-64-128-256 with k=20, a
# 1024-channel point MLP, global max + avg pooling (2048), MLP head.
model = dict(
    type='PointClassifier',
    data_preprocessor=dict(type='Det3DDataPreprocessor'),
    backbone=dict(
        type='DGCNNBackboneCls',
        in_channels=3,
        num_samples=(20, 20, 20, 20),
        knn_modes=('D-KNN', 'F-KNN', 'F-KNN', 'F-KNN'),
        radius=(None, None, None, None),
        gf_channels=((64, ), (64, ), (128, ), (256, )),
        fa_channels=(1024, ),
        act_cfg=dict(type='LeakyReLU', negative_slope=0.2)),
    pool=dict(type='PointPool', mode='max+avg'),
    head=dict(
        type='PointClsHead',
        in_channels=2048,
        num_classes=40,
        mid_channels=(512, 256),
        dropout=0.5))
