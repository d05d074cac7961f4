# Copyright (c) mmbinpc contributors. All rights reserved.
"""Convert whole binarized models into packed graphs.

One function per supported architecture walks the model's modules in the
order its forward code runs them and writes the nodes (:mod:`.layers`
folds and fuses). :func:`convert` picks the function by the model's
classes and refuses anything else by name.
"""
from typing import Callable, Dict, List, Optional, Tuple

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
        leaves(tnet.fcs, f'{name}.fcs') +
        [(f'{name}.transform', tnet.transform)])
    t = emit_chain(b, fcs, g)
    return b.add(f'{name}.apply', 'transform', [x, t], dict(k=k))


def convert_pointnet(model: nn.Module) -> Tuple[GraphBuilder, str]:
    """PointClassifier(PointNet, PointPool, PointClsHead)."""
    bb = model.backbone
    b = GraphBuilder(bb.in_channels)
    x = INPUT
    if bb.input_tnet is not None:
        x = _tnet(b, bb.input_tnet, 'backbone.input_tnet', x)
    mlp = [
        leaves(layer, f'backbone.mlp.{i}') for i, layer in enumerate(bb.mlp)
    ]
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


def _edge_convs(bb: nn.Module) -> Tuple[GraphBuilder, List[str]]:
    """DGCNN's EdgeConv (GF) layers: kNN, edge features, shared MLP and
    the max/EMA over the neighbours; returns the builder and each layer's
    output value."""
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
    return b, outs


def _concat(b: GraphBuilder, name: str, values: List[str]) -> str:
    if len(values) == 1:
        return values[0]
    return b.add(name, 'concat', values,
                 dict(channels=sum(b.channels(v) for v in values)))


def convert_dgcnn(model: nn.Module) -> Tuple[GraphBuilder, str]:
    """PointClassifier(DGCNNBackboneCls, PointPool, PointClsHead)."""
    bb = model.backbone
    b, outs = _edge_convs(bb)
    cat = _concat(b, 'backbone.concat', outs)
    fa = layer_chain(leaves(bb.fa_mlps, 'backbone.fa_mlps'))
    g = emit_chain(b, fa, cat, pool=pool_mode(model.pool, 'pool'))
    return b, _head(b, model.head, g)


def _seg_head(b: GraphBuilder, head: nn.Module, x: str,
              mlps: List[Tuple[str, nn.Module]]) -> str:
    """``mlps``, then the head's pre-segmentation conv and classifier
    (its dropout is a no-op at inference)."""
    chain = layer_chain(mlps +
                        leaves(head.pre_seg_conv, 'decode_head.pre_seg_conv') +
                        [('decode_head.conv_seg', head.conv_seg)])
    return emit_chain(b, chain, x)


def convert_dgcnn_seg(model: nn.Module) -> Tuple[GraphBuilder, str]:
    """EncoderDecoder3D(DGCNNBackbone, DGCNNHead): EdgeConvs, the FA MLP
    whose global max/EMA is repeated next to every point's features, the
    head's FP MLP and classifier."""
    bb, head = model.backbone, model.decode_head
    b, outs = _edge_convs(bb)
    feats = _concat(b, 'backbone.concat', outs)
    fa = layer_chain(leaves(bb.FA_module.mlps, 'backbone.FA_module.mlps'))
    g = emit_chain(
        b,
        fa,
        feats,
        pool=pool_mode(bb.FA_module.pool, 'backbone.FA_module.pool'))
    g = b.add('backbone.FA_module.expand', 'expand', [g, feats],
              dict(channels=b.channels(g)))
    x = _concat(b, 'backbone.FA_module.concat', [g, feats])
    return b, _seg_head(
        b, head, x, leaves(head.FP_module.mlps, 'decode_head.FP_module.mlps'))


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
    b = GraphBuilder(_sa_input_channels(bb))
    xyz, feats = _split_input(b.channels(INPUT), b)
    for i, sa in enumerate(bb.SA_modules):
        xyz, feats = _sa_layer(b, sa, f'backbone.SA_modules.{i}', xyz, feats)
    pooled = b.add(
        'pool', 'pool', [feats],
        dict(mode=pool_mode(model.pool, 'pool'), channels=b.channels(feats)))
    return b, _head(b, model.head, pooled)


def _split_input(model_in: int, b: GraphBuilder) -> Tuple[str, Optional[str]]:
    """xyz and the other channels (None for xyz-only input)."""
    if model_in == 3:
        return INPUT, None
    xyz = b.add('backbone.xyz', 'slice', [INPUT], dict(start=0, stop=3))
    feats = b.add('backbone.features', 'slice', [INPUT],
                  dict(start=3, stop=model_in))
    return xyz, feats


def _sa_input_channels(bb: nn.Module) -> int:
    sa0 = bb.SA_modules[0]
    first = layer_chain(leaves(sa0.mlps[0], 'backbone.SA_modules.0.mlps.0'))
    return first[0].in_channels - (3 if sa0.groupers[0].use_xyz else 0) + 3


def convert_pointnet2_seg(model: nn.Module) -> Tuple[GraphBuilder, str]:
    """EncoderDecoder3D(PointNet2SASSG, PointNet2Head): the SA layers, then
    the head's FP layers (three-nearest-neighbour interpolation back to
    each level's points, concatenated with that level's features, shared
    MLP) and classifier."""
    bb, head = model.backbone, model.decode_head
    if bb.num_fp:
        raise NotSupportedError('not supported yet: PointNet2SASSG with '
                                'its own FP layers in a segmentor')
    b = GraphBuilder(_sa_input_channels(bb))
    xyz, feats = _split_input(b.channels(INPUT), b)
    sa_xyz, sa_feats = [xyz], [feats]
    for i, sa in enumerate(bb.SA_modules):
        xyz, feats = _sa_layer(b, sa, f'backbone.SA_modules.{i}', xyz, feats)
        sa_xyz.append(xyz)
        sa_feats.append(feats)
    sa_feats[0] = None  # as PointNet2Head (and the reference code) does
    fp = sa_feats[-1]
    last = len(head.FP_modules) - 1
    for i, module in enumerate(head.FP_modules):
        name = f'decode_head.FP_modules.{i}'
        x = b.add(f'{name}.interpolate', 'interpolate',
                  [sa_xyz[-(i + 2)], sa_xyz[-(i + 1)], fp],
                  dict(channels=b.channels(fp)))
        target = sa_feats[-(i + 2)]
        if target is not None:
            x = _concat(b, f'{name}.concat', [x, target])
        mlps = leaves(module.mlps, f'{name}.mlps')
        if i == last:  # one chain with the head: bits can flow through
            return b, _seg_head(b, head, x, mlps)
        fp = emit_chain(b, layer_chain(mlps), x)
    return b, _seg_head(b, head, fp, [])


def _backbone_name(model: nn.Module) -> str:
    return type(getattr(model, 'backbone', None)).__name__


#: (model class name, backbone class name, head class name) -> converter
CONVERTERS: Dict[Tuple[str, str, str],
                 Callable[[nn.Module], Tuple[GraphBuilder, str]]] = {
                     ('PointClassifier', 'PointNet', 'PointClsHead'):
                     convert_pointnet,
                     ('PointClassifier', 'DGCNNBackboneCls', 'PointClsHead'):
                     convert_dgcnn,
                     ('PointClassifier', 'PointNet2SASSGCls', 'PointClsHead'):
                     convert_pointnet2,
                     ('EncoderDecoder3D', 'DGCNNBackbone', 'DGCNNHead'):
                     convert_dgcnn_seg,
                     ('EncoderDecoder3D', 'PointNet2SASSG', 'PointNet2Head'):
                     convert_pointnet2_seg,
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
    head = getattr(model, 'head', getattr(model, 'decode_head', None))
    key = (type(model).__name__, _backbone_name(model), type(head).__name__)
    fn = CONVERTERS.get(key)
    if fn is None:
        supported = '; '.join(f'{m}({bb}, {h})' for m, bb, h in CONVERTERS)
        raise NotSupportedError(
            f'not supported yet: {key[0]} with a {key[1]} backbone and a '
            f'{key[2]} head; the packed runtime converts {supported}')
    model.eval()
    return fn(model)
