# PointNet++ SSG classifier: mmdet3d's SA layers (512 and 128 centroids) and a
# final group-all SA layer; the classifier's pool then sees one point.
model = dict(
    type='PointClassifier',
    data_preprocessor=dict(type='Det3DDataPreprocessor'),
    backbone=dict(
        type='PointNet2SASSGCls',
        in_channels=3,
        num_points=(512, 128, None),
        radius=(0.2, 0.4, None),
        num_samples=(32, 64, None),
        sa_channels=((64, 64, 128), (128, 128, 256), (256, 512, 1024)),
        fp_channels=(),
        norm_cfg=dict(type='BN2d'),
        sa_cfg=dict(
            type='PointSAModule',
            pool_mod='max',
            use_xyz=True,
            normalize_xyz=False)),
    pool=dict(type='PointPool', mode='max'),
    head=dict(
        type='PointClsHead',
        in_channels=1024,
        num_classes=40,
        mid_channels=(512, 256),
        dropout=0.4))
