# Copyright (c) mmbinpc contributors. All rights reserved.
"""What ``import mmbinpc`` set up in this process.

Run ``python -m mmbinpc.info`` (``--json`` for a machine-readable form) to
see the installed versions against the tested ones, which process-wide
effects are active (and the environment variables that switch them, see
:mod:`mmbinpc.runtime`) and every type mmbinpc registered, per registry.
"""
import argparse
import json
import sys
from typing import Dict, List, Optional, Sequence

from . import runtime
from .compat import TESTED_VERSIONS, _installed_version, check_versions

PACKAGES = ('mmbinpc', 'torch', 'mmengine', 'mmcv', 'mmdet', 'mmdet3d',
            'numpy', 'numba')


def registered_types() -> Dict[str, List[str]]:
    """Types defined in mmbinpc, per mmdet3d registry they are in.

    Returns:
        dict[str, list[str]]: Registry name -> sorted type names; only
        registries that hold at least one mmbinpc type.
    """
    from mmdet3d import registry as mmdet3d_registry
    from mmengine.registry import Registry

    from .binary.binarizers import BINARIZERS
    found: Dict[str, List[str]] = {}
    for attr in sorted(dir(mmdet3d_registry)):
        registry = getattr(mmdet3d_registry, attr)
        if not isinstance(registry, Registry):
            continue
        names = sorted(name for name, obj in registry.module_dict.items()
                       if getattr(obj, '__module__', '').startswith('mmbinpc'))
        if names:
            found[attr] = names
    found['binarizers (mmbinpc)'] = sorted(BINARIZERS.module_dict)
    return found


def collect() -> dict:
    """Everything the command prints, as one dict.

    Returns:
        dict: ``versions`` (package -> version or None), ``tested``
        (package -> ``'>=low,<high'``), ``version_problems``, ``effects``
        (name -> dict(active, env)) and ``registered``.
    """
    return dict(
        versions={p: _installed_version(p)
                  for p in PACKAGES},
        tested={
            p: f'>={lo},<{hi}'
            for p, (lo, hi) in TESTED_VERSIONS.items()
        },
        version_problems=check_versions(warn=False),
        effects={
            name: dict(active=on, env=runtime.EFFECTS[name])
            for name, on in runtime.active().items()
        },
        registered=registered_types())


def format_text(info: dict) -> str:
    """The human-readable report of :func:`collect`'s dict."""
    lines = ['versions:']
    for package, version in info['versions'].items():
        tested = info['tested'].get(package, '')
        lines.append(f'  {package:10s} {version or "not installed":12s} '
                     f'{"tested " + tested if tested else ""}'.rstrip())
    for problem in info['version_problems']:
        lines.append(f'  ! {problem}')
    lines.append('process-wide effects (switch with the variable, or '
                 'mmbinpc.setup(name=False)):')
    for name, effect in info['effects'].items():
        state = 'on ' if effect['active'] else 'off'
        lines.append(f'  {state} {name:17s} {effect["env"]}')
    lines.append('registered by mmbinpc:')
    for registry, names in info['registered'].items():
        lines.append(f'  {registry} ({len(names)}): {", ".join(names)}')
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the report; returns the exit status (0)."""
    parser = argparse.ArgumentParser(
        prog='python -m mmbinpc.info',
        description='versions, process-wide effects and registered types '
        'of mmbinpc in this process')
    parser.add_argument('--json', action='store_true', help='print JSON')
    args = parser.parse_args(argv)
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_text(info))
    return 0


if __name__ == '__main__':
    sys.exit(main())
