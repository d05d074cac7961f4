# Copyright (c) mmbinpc contributors. All rights reserved.
"""Packed 1-bit deployment: the converter and the runtime.

* :mod:`mmbinpc.deploy.converter` (PyTorch): a trained binary model ->
  a packed graph file, every fusion decided there once;
* :mod:`mmbinpc.deploy.runtime` (NumPy + Numba only): loads the file and
  runs it, with the kernels of :mod:`mmbinpc.deploy.kernels`.

The names below are imported on first use, so that the runtime can be
imported on a machine without PyTorch (``requirements/deploy.txt``) and no
kernel is compiled at import time.
"""
import importlib
from typing import Any

#: public name -> submodule that defines it
_LAZY = {
    'WORD_BITS': 'bitpack',
    'num_words': 'bitpack',
    'pack_signs': 'bitpack',
    'unpack_signs': 'bitpack',
    'popcount64': 'bitpack',
    'xnor_dot': 'bitpack',
    'PackedModel': 'runtime',
    'read_graph': 'runtime',
    'FORMAT_VERSION': 'runtime',
    'export_packed': 'converter',
    'ExportSummary': 'converter',
    'NotSupportedError': 'converter',
    'ENGINE_INPUT_SCALES': 'converter',
    'packed_input_scale': 'converter',
    'state_dict_bytes': 'builder',
    'preprocess_steps': 'builder',
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(f'{__name__}.{module}'), name)
    globals()[name] = value
    return value
