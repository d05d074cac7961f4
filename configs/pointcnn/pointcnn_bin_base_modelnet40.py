# Shared settings of the binary PointCNN experiments on ModelNet40 (the
# paper's Table 6; not an experiment itself: pointcnn_bin_<method>[-kd]_
# modelnet40.py set the binarizer and the loss weights).
#
# The student is the FP32 teacher's model, initialised from the trained
# teacher and binarized. PointCNN has no max pooling site (X-Conv
# aggregates the neighbourhoods), so there is no aggregation to choose and
# no pooling output to regularise: the paper distils it with soft targets
# only (+KD), L = λ·L_DS + (1−λ)·L_CE, η = 0. Here λ = 0 (L = L_CE): the
# "plain" baseline. Binary: every convolution except those that read the
# raw coordinates (the lifting MLPs' first layers, the first X convolution,
# the global-position branch's first layer) and the classifier.
# Train the teacher first:
#   python tools/train.py configs/pointcnn/pointcnn_fp_modelnet40.py
_base_ = ['./pointcnn_fp_modelnet40.py']

model = dict(
    _delete_=True,
    type='BinaryDistiller',
    teacher='configs/pointcnn/pointcnn_fp_modelnet40.py',
    # a work dir: its best checkpoint, else its latest
    teacher_ckpt='work_dirs/pointcnn_fp_modelnet40',
    # dropout='remove': no dropout before a binary layer (docs/recipe.md)
    binarize=dict(method='xnor', aggregation='max', dropout='remove'),
    init_student_from_teacher=True,
    distill=dict(
        temperature=2.0, lambda_=0.0, eta=0.0, reg_norm='1', pairs='auto'))

# The binary-student recipe (docs/recipe.md): scale-relative learning rates
# for the latent weights and no weight decay on them or on the binarizers'
# scales; no point dropout in the training pipeline.
optim_wrapper = dict(
    constructor='BinaryOptimWrapperConstructor',
    paramwise_cfg=dict(
        latent_lr='scaled',
        latent_decay_mult=0.0,
        binarizer_lr_mult=0.1,
        binarizer_decay_mult=0.0))
train_dataloader = dict(
    dataset=dict(pipeline={{_base_.binary_train_pipeline}}))

# Logs the FP32 teacher's validation accuracy once, as teacher/overall_acc.
custom_hooks = [dict(type='TeacherValHook')]
