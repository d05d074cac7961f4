# Copyright (c) mmbinpc contributors. All rights reserved.
"""Export trained binary models as packed graphs (uses PyTorch).

:func:`export_packed` converts a binarized model (:mod:`.models`, with the
layer fusions of :mod:`.layers`) and writes the file the runtime
(:mod:`mmbinpc.deploy.runtime`) loads.
"""
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from torch import nn

from ..runtime.graph import FORMAT_NAME, FORMAT_VERSION, count_ops, write_graph
from ..runtime.preprocess import STEPS
from .layers import (ENGINE_INPUT_SCALES, GraphBuilder, NotSupportedError,
                     bit_limits, packed_input_scale)
from .models import CONVERTERS, convert


@dataclass
class ExportSummary:
    """What :func:`export_packed` wrote.

    Attributes:
        path (str): Output file.
        file_bytes (int): Size of the file.
        ops (dict): Op name -> number of nodes.
        binary_layers (list[str]): Nodes that run XNOR-popcount layers.
        bits_outputs (list[str]): Binary layers writing the next layer's
            packed input.
        fused_pools (list[str]): Binary layers with a fused max/EMA.
    """
    path: str
    file_bytes: int
    ops: Dict[str, int] = field(default_factory=dict)
    binary_layers: List[str] = field(default_factory=list)
    bits_outputs: List[str] = field(default_factory=list)
    fused_pools: List[str] = field(default_factory=list)


def export_packed(model: nn.Module,
                  path: str,
                  num_points: int = 1024,
                  preprocess: Sequence[str] = (),
                  source: Optional[Dict[str, Any]] = None) -> ExportSummary:
    """Write ``model`` (a binarized model) as a packed graph.

    Args:
        model (nn.Module): The binary model, weights loaded.
        path (str): Output file (``.npz`` content; any extension).
        num_points (int): The number of points per cloud the model was
            tested with (recorded; the runtime takes any number).
        preprocess (Sequence[str]): The test pipeline's steps that
            ``tools/deploy/predict.py`` must replay on raw clouds (see
            :func:`~mmbinpc.deploy.builder.preprocess_steps`).
        source (dict, optional): Informational strings/numbers recorded in
            the file (config name, checkpoint, ...).

    Returns:
        ExportSummary: What was written.

    Raises:
        NotSupportedError: For architectures, layers or binarizers the
            runtime cannot run.
    """
    unknown = [p for p in preprocess if p not in STEPS]
    if unknown:
        raise ValueError(f'unknown preprocessing steps {unknown}; known: '
                         f'{", ".join(STEPS)}')
    builder, output = convert(model)
    info = builder.values[output]
    binarizers = sorted({
        getattr(m.binarizer, 'name', '?')
        for m in model.modules() if hasattr(m, 'binarizer')
    })
    meta = dict(
        format=FORMAT_NAME,
        version=FORMAT_VERSION,
        task='classification' if info.ndim == 2 else 'segmentation',
        input=dict(
            channels=builder.values['points'].channels,
            num_points=int(num_points)),
        num_classes=info.channels,
        preprocess=list(preprocess),
        source=dict(
            model=type(model).__name__,
            backbone=type(getattr(model, 'backbone', None)).__name__,
            binarizers=','.join(binarizers),
            **(source or {})),
        nodes=builder.nodes,
        output=output)
    write_graph(path, meta, builder.arrays)
    binary = [n for n in builder.nodes if n['op'] == 'binary_dense']
    return ExportSummary(
        path=path,
        file_bytes=os.path.getsize(path),
        ops=dict(count_ops(meta)),
        binary_layers=[n['name'] for n in binary],
        bits_outputs=[
            n['name'] for n in binary if n['attrs']['output'] == 'bits'
        ],
        fused_pools=[
            n['name'] for n in binary if n['attrs']['output'] in ('max', 'ema')
        ])


__all__ = [
    'export_packed', 'ExportSummary', 'convert', 'CONVERTERS', 'GraphBuilder',
    'NotSupportedError', 'ENGINE_INPUT_SCALES', 'packed_input_scale',
    'bit_limits'
]
