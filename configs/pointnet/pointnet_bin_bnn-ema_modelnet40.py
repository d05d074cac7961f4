# PointNet (with T-Nets) BNN + EMA on ModelNet40 (the paper's "BNN + EMA"):
# binary
# student trained with the task loss only (λ = η = 0).
_base_ = ['./pointnet_bin_base_modelnet40.py']

# The T-Nets' final `transform` layers have no BatchNorm after them and their
# output multiplies the points: with BNN's ±1 weights (no scale) their
# outputs reach ±256 and the transforms turn random, so those two layers use
# XNOR's per-channel weight scale (docs/recipe.md).
model = dict(
    binarize=dict(
        method='bnn', aggregation='ema', overrides={'*tnet.transform': 'xnor'
                                                    }))
