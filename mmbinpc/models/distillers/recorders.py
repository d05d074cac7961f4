# Copyright (c) mmbinpc contributors. All rights reserved.
"""Recording what submodules output during a forward pass, by hooks."""
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Optional, Sequence

from torch import Tensor, nn

#: ``transform(module, input, output) -> recorded value``
Transform = Callable[[nn.Module, Tensor, Tensor], Tensor]


class OutputRecorder:
    """Keeps the outputs of named submodules while :meth:`recording`.

    A forward hook on each named submodule appends its output (after an
    optional ``transform``) to a per-name list, only inside a
    :meth:`recording` block; every block starts with empty lists. Nothing
    of the model is replaced or wrapped.

    Args:
        model (nn.Module): The model.
        names (Sequence[str]): Submodule names (``model.get_submodule``).
        transform (callable, optional): ``(module, input, output) -> value``
            applied before recording.
    """

    def __init__(self,
                 model: nn.Module,
                 names: Sequence[str],
                 transform: Optional[Transform] = None) -> None:
        self.names = list(names)
        self.transform = transform
        self.active = False
        self.outputs: Dict[str, List[Tensor]] = {n: [] for n in self.names}
        self._handles = [
            model.get_submodule(name).register_forward_hook(self._hook(name))
            for name in self.names
        ]

    def _hook(self, name: str):

        def hook(module, inputs, output):
            if self.active:
                if self.transform is not None:
                    output = self.transform(module, inputs[0], output)
                self.outputs[name].append(output)

        return hook

    @contextmanager
    def recording(self, enabled: bool = True) -> Iterator['OutputRecorder']:
        """Record inside the block (nothing when ``enabled`` is False).

        The outputs of the previous block are dropped on entry; the ones of
        this block stay readable after it, until the next block or
        :meth:`clear`.
        """
        self.clear()
        self.active = bool(enabled)
        try:
            yield self
        finally:
            self.active = False

    def clear(self) -> None:
        """Drop the recorded outputs (and the graphs they hold)."""
        for values in self.outputs.values():
            values.clear()

    def remove(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
