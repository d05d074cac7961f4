# Scales of the experiment grids (tools/experiments/run.py --scale NAME).
# Data only: every number of a scale lives here and nowhere else.
#
# data:           root + kind. 'synthetic' is generated with
#                 mmbinpc.datasets.synthetic_modelnet.write_synthetic_modelnet
#                 (generator = its keyword arguments) when root is absent, and
#                 must match them when present; 'real' must be a real
#                 ModelNet40 (modelnet40_normal_resampled or hdf5). In root,
#                 {scale_dir} stands for <work-dir>/<scale>.
# num_points:     points per shape for the train, val and test loaders.
# batch_size:     per loader.
# teacher_epochs: the FP32 teacher's schedule (trained once per scale,
#                 seed 0, shared by all experiments).
# student_epochs: every binary student's schedule (--epochs; the cosine
#                 decay is stretched to it).
# seeds:          student seeds (--seeds overrides).
# log_interval:   logger interval and loss window alike, so each logged
#                 training loss is the mean of its interval.
# cfg_options:    extra --cfg-options for every run (teachers too).

smoke = dict(
    description='seconds per run, for the test suite: tiny generated data, '
    'accuracies meaningless',
    data=dict(
        root='{scale_dir}/data',
        kind='synthetic',
        generator=dict(
            num_classes=4, train_per_class=8, test_per_class=4,
            num_points=64)),
    num_points=64,
    batch_size=8,
    teacher_epochs=1,
    student_epochs=2,
    seeds=(0, 1),
    log_interval=1,
    cfg_options={
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'val_dataloader.num_workers': 0,
        'val_dataloader.persistent_workers': False,
        'test_dataloader.num_workers': 0,
        'test_dataloader.persistent_workers': False,
    })

cpu = dict(
    description='the embedded CPU benchmark: generated ModelNet-format data, '
    'short schedule',
    data=dict(
        root='data/synthetic_bench',
        kind='synthetic',
        generator=dict(
            num_classes=10,
            train_per_class=120,
            test_per_class=50,
            num_points=1024)),
    num_points=128,
    batch_size=32,
    teacher_epochs=15,
    student_epochs=20,
    seeds=(0, 1, 2),
    log_interval=11,
    cfg_options={
        'default_hooks.checkpoint.max_keep_ckpts': 1,
        'train_dataloader.num_workers': 1,
        'val_dataloader.num_workers': 1,
        'test_dataloader.num_workers': 1
    })

# The cpu scale with students trained twice as long (40 epochs; the cosine
# decay is stretched to it). Same data, teacher schedule and seeds; for the
# pairs whose cpu-scale students were still improving at epoch 20.
cpu_long = dict(
    cpu,
    description='the embedded CPU benchmark with 40-epoch '
    'students',
    student_epochs=40)

paper = dict(
    description="the paper's setting: real ModelNet40, 1024 points, "
    '200 epochs',
    data=dict(root='data/modelnet40_normal_resampled', kind='real'),
    num_points=1024,
    batch_size=32,
    teacher_epochs=200,
    student_epochs=200,
    seeds=(0, 1, 2),
    log_interval=50,
    cfg_options={'default_hooks.checkpoint.max_keep_ckpts': 1})
