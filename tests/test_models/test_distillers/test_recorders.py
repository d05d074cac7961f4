# Copyright (c) mmbinpc contributors. All rights reserved.
"""OutputRecorder keeps submodule outputs only inside a recording block."""
import torch
from torch import nn

from mmbinpc.models.distillers.recorders import OutputRecorder


def _model():
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_records_only_inside_the_block_and_per_call():
    model = _model()
    recorder = OutputRecorder(model, ['0', '2'])
    x = torch.randn(5, 3)
    model(x)  # outside: nothing
    assert recorder.outputs == {'0': [], '2': []}
    with recorder.recording():
        out = model(x)
        model(x)
    assert len(recorder.outputs['0']) == 2
    assert torch.equal(recorder.outputs['2'][0], out)
    assert torch.equal(recorder.outputs['0'][0], model[0](x))
    assert recorder.outputs['2'][0].requires_grad  # the graph is kept
    model(x)  # after the block: unchanged
    assert len(recorder.outputs['2']) == 2
    with recorder.recording(enabled=False):  # a new block starts empty
        model(x)
    assert recorder.outputs == {'0': [], '2': []}


def test_transform_and_remove():
    model = _model()
    recorder = OutputRecorder(
        model, ['1'], transform=lambda module, x, out: out - x)
    x = torch.randn(2, 3)
    with recorder.recording():
        model(x)
    hidden = model[0](x)
    assert torch.equal(recorder.outputs['1'][0], hidden.relu() - hidden)
    recorder.remove()
    with recorder.recording():
        model(x)
    assert recorder.outputs['1'] == []
    assert type(model[2]).forward is nn.Linear.forward  # nothing replaced
