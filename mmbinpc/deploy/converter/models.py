# Copyright (c) mmbinpc contributors. All rights reserved.
"""Convert whole binarized models into packed graphs.

One function per supported architecture walks the model's modules in the
order its forward code runs them and writes the nodes (:mod:`.layers`
folds and fuses). :func:`convert` picks the function by the model's
classes and refuses anything else by name.
"""
from typing import Callable, Dict, Optional, Tuple

from torch import nn

from ..runtime.graph import INPUT
from .layers import (GraphBuilder, NotSupportedError, emit_chain, layer_chain,
                     leaves, pool_mode)


def _head(b: GraphBuilder, head: nn.Module, x: str) -> str:
    """A PointClsHead: its MLP and classifier on the pooled features."""
    chain = layer_chain(
        leaves(head.mlp, 'head.mlp') + [('head.fc_cls', head.fc_cls)])
    return emit_chain(b, chain, x)


def _tnet(b: GraphBuilder, tnet: nn.Module, name: str, x: str) -> str:
    """A T-Net applied to ``x`` (its first ``k`` channels)."""
    k = tnet.k
    inp = x
    convs = layer_chain(leaves(tnet.convs, f'{name}.convs'))
    if convs[0].in_channels != k:
        raise NotSupportedError(f'{name}: reads {convs[0].in_channels} '
                                f'channels, its transform is {k}x{k}')
    if b.channels(x) != k:
        inp = b.add(f'{name}.input', 'slice', [x], dict(start=0, stop=k))
    g = emit_chain(b, convs, inp, pool=pool_mode(tnet.pool, f'{name}.pool'))
    fcs = layer_chain(
        leaves(tnet.fcs, f'{name}.fcs') + [(f'{name}.transform',
                                            tnet.transform)])
    t = emit_chain(b, fcs, g)
    return b.add(f'{name}.apply', 'transform', [x, t], dict(k=k))


def convert_pointnet(model: nn.Module) -> Tuple[GraphBuilder, str]:
    """PointClassifier(PointNet, PointPool, PointClsHead)."""
    bb = model.backbone
    b = GraphBuilder(bb.in_channels)
    x = INPUT
    if bb.input_tnet is not None:
        x = _tnet(b, bb.input_tnet, 'backbone.input_tnet', x)
    mlp = [leaves(layer, f'backbone.mlp.{i}') for i, layer in
           enumerate(bb.mlp)]
    split = bb.feature_transform_after if bb.feature_tnet is not None \
        else len(mlp)
    pool = pool_mode(model.pool, 'pool')
    if split < len(mlp):
        pre = layer_chain([m for seq in mlp[:split] for m in seq])
        x = emit_chain(b, pre, x)
        x = _tnet(b, bb.feature_tnet, 'backbone.feature_tnet', x)
        post = layer_chain([m for seq in mlp[split:] for m in seq])
    else:
        post = layer_chain([m for seq in mlp for m in seq])
    x = emit_chain(b, post, x, pool=pool)
    return b, _head(b, model.head, x)


def convert_dgcnn(model: nn.Module) -> Tuple[GraphBuilder, str]:
    """PointClassifier(DGCNNBackboneCls, PointPool, PointClsHead)."""
    bb = model.backbone
    x, outs, b = INPUT, [], None
    for i, gf in enumerate(bb.GF_modules):
        name = f'backbone.GF_modules.{i}'
        if len(gf.groupers) != 1 or len(gf.mlps) != 1:
            raise NotSupportedError(f'not supported yet: {name} with '
                                    f'{len(gf.groupers)} groupers')
        grouper = gf.groupers[0]
        if type(grouper).__name__ != 'QueryAndGroup' or \
                grouper.max_radius is not None or grouper.uniform_sample \
                or grouper.normalize_xyz:
            raise NotSupportedError(
                f'not supported yet: {name}.groupers.0 '
                f'({type(grouper).__name__}); the packed runtime runs '
                f'kNN grouping (radius None)')
        mode = gf.knn_modes[0]  # each GF module holds its own mode
        space = 'xyz' if mode == 'D-KNN' else 'features'
        layers = layer_chain(leaves(gf.mlps[0], f'{name}.mlps.0'))
        channels = layers[0].in_channels // 2
        if b is None:  # the first layer reads the input's edge features
            b = GraphBuilder(channels)
        idx = b.add(f'{name}.knn', 'knn', [x],
                    dict(k=grouper.sample_num, space=space))
        edges = b.add(f'{name}.edges', 'edge_features', [x, idx],
                      dict(channels=channels))
        x = emit_chain(
            b, layers, edges, pool=pool_mode(gf.pool, f'{name}.pool'))
        outs.append(x)
    cat = b.add('backbone.concat', 'concat', outs,
                dict(channels=sum(b.channels(o) for o in outs)))
    fa = layer_chain(leaves(bb.fa_mlps, 'backbone.fa_mlps'))
    g = emit_chain(b, fa, cat, pool=pool_mode(model.pool, 'pool'))
    return b, _head(b, model.head, g)


def _sa_layer(b: GraphBuilder, sa: nn.Module, name: str, xyz: str,
              feats: Optional[str]) -> Tuple[str, str]:
    """One PointNet++ set abstraction: sample, group, shared MLP, pool.

    Returns:
        tuple: ``(centres, features)`` values; a group-all layer's centres
        are ``xyz`` itself (unused afterwards).
    """
    if len(sa.groupers) != 1 or len(sa.mlps) != 1:
        raise NotSupportedError(f'not supported yet: {name} with '
                                f'{len(sa.groupers)} scales (MSG)')
    grouper = sa.groupers[0]
    kind = type(grouper).__name__
    layers = layer_chain(leaves(sa.mlps[0], f'{name}.mlps.0'))
    channels = 0 if feats is None else b.channels(feats)
    extra = [] if feats is None else [feats]
    if kind == 'GroupAll':
        grouped = b.add(f'{name}.group', 'group_all', [xyz] + extra,
                        dict(use_xyz=grouper.use_xyz, channels=channels))
        out = emit_chain(
            b, layers, grouped, pool=pool_mode(sa.pool, f'{name}.pool'))
        return xyz, out
    sampler = sa.points_sampler
    if kind != 'QueryAndGroup' or grouper.max_radius is None or \
            grouper.uniform_sample or list(sa.fps_mod_list) != ['D-FPS'] or \
            list(sa.fps_sample_range_list) != [-1]:
        raise NotSupportedError(
            f'not supported yet: {name} ({kind}, fps {sa.fps_mod_list}); '
            f'the packed runtime runs D-FPS sampling with ball-query '
            f'grouping')
    sampled = b.add(f'{name}.fps', 'fps', [xyz],
                    dict(num=int(sampler.num_point[0])))
    centres = b.add(f'{name}.centres', 'gather', [xyz, sampled],
                    dict(channels=3))
    near = b.add(
        f'{name}.ball_query', 'ball_query', [xyz, centres],
        dict(
            radius=float(grouper.max_radius),
            min_radius=float(grouper.min_radius),
            nsample=int(grouper.sample_num)))
    grouped = b.add(
        f'{name}.group', 'group', [xyz, centres, near] + extra,
        dict(
            use_xyz=bool(grouper.use_xyz),
            normalize=float(grouper.max_radius)
            if grouper.normalize_xyz else None,
            channels=channels))
    out = emit_chain(
        b, layers, grouped, pool=pool_mode(sa.pool, f'{name}.pool'))
    return centres, out


def convert_pointnet2(model: nn.Module) -> Tuple[GraphBuilder, str]:
    """PointClassifier(PointNet2SASSGCls, PointPool, PointClsHead) without
    feature propagation layers."""
    bb = model.backbone
    if bb.num_fp:
        raise NotSupportedError('not supported yet: PointNet2SASSGCls with '
                                'feature propagation (FP) layers')
    sa0 = bb.SA_modules[0]
    first = layer_chain(leaves(sa0.mlps[0], 'backbone.SA_modules.0.mlps.0'))
    in_channels = first[0].in_channels - (3 if sa0.groupers[0].use_xyz else
                                          0) + 3
    b = GraphBuilder(in_channels)
    xyz, feats = INPUT, None
    if in_channels > 3:
        xyz = b.add('backbone.xyz', 'slice', [INPUT], dict(start=0, stop=3))
        feats = b.add('backbone.features', 'slice', [INPUT],
                      dict(start=3, stop=in_channels))
    for i, sa in enumerate(bb.SA_modules):
        xyz, feats = _sa_layer(b, sa, f'backbone.SA_modules.{i}', xyz, feats)
    pooled = b.add('pool', 'pool', [feats],
                   dict(
                       mode=pool_mode(model.pool, 'pool'),
                       channels=b.channels(feats)))
    return b, _head(b, model.head, pooled)


def _backbone_name(model: nn.Module) -> str:
    return type(getattr(model, 'backbone', None)).__name__


#: (model class name, backbone class name, head class name) -> converter
CONVERTERS: Dict[Tuple[str, str, str], Callable[[nn.Module],
                                                Tuple[GraphBuilder, str]]] = {
    ('PointClassifier', 'PointNet', 'PointClsHead'): convert_pointnet,
    ('PointClassifier', 'DGCNNBackboneCls', 'PointClsHead'): convert_dgcnn,
    ('PointClassifier', 'PointNet2SASSGCls', 'PointClsHead'):
    convert_pointnet2,
}


def convert(model: nn.Module) -> Tuple[GraphBuilder, str]:
    """The packed graph of a binarized model (eval mode, weights loaded).

    Returns:
        tuple: ``(builder, output)``: the nodes and arrays, and the name of
        the logits value.

    Raises:
        NotSupportedError: For an architecture or a part the runtime does
            not run.
    """
    key = (type(model).__name__, _backbone_name(model),
           type(getattr(model, 'head', None)).__name__)
    fn = CONVERTERS.get(key)
    if fn is None:
        supported = '; '.join(f'{m}({bb}, {h})' for m, bb, h in CONVERTERS)
        raise NotSupportedError(
            f'not supported yet: {key[0]} with a {key[1]} backbone and a '
            f'{key[2]} head; the packed runtime converts {supported}')
    model.eval()
    return fn(model)
