# Copyright (c) mmbinpc contributors. All rights reserved.
"""Experiment definitions and scales, expanded into jobs (runs x seeds).

An *experiment definition* (``configs/experiments/<name>.py``) is a data-only
mmengine config with these top-level keys (names starting with ``_`` are
helpers and ignored)::

    title = 'Table 4: ...'                # optional
    description = '...'                   # optional
    teachers = dict(                      # one FP32 teacher per backbone
        pointnet=dict(config='configs/pointnet/pointnet_fp_modelnet40.py',
                      paper=dict(table='T4', backbone='PointNet',
                                 method='FP32', setting=''),
                      tags=dict(method='FP32', loss='L_CE')))
    runs = [                              # the students
        dict(name='xnor-max-kdr',
             config='configs/pointnet/pointnet_bin_xnor-max-kdr_modelnet40.py',
             teacher='pointnet',
             cfg_options={'model.distill.temperature': 3.0},   # optional
             paper=dict(table='T4', backbone='PointNet',
                        method='XNOR+MAX+KDR', setting=''),    # or None
             tags=dict(method='XNOR+MAX', loss='KDR'),         # optional
             label='XNOR + MAX + KDR'),                        # optional
    ]
    plots = [dict(type='bars')]           # optional, see report.py
    paper_csv = 'paper_tables.csv'        # optional

A *scale* (``configs/experiments/scales.py``) says how big every run is:
the data, points per shape, batch size, epochs, seeds and extra cfg options.

:func:`expand` turns a definition and a scale into :class:`Job` objects,
each one call of ``tools/train.py`` (then ``tools/test.py``) with a fixed
work directory:

* teachers: ``<work_dir>/<scale>/teachers/<teacher>/`` (seed 0, shared by
  every experiment of the scale);
* students: ``<work_dir>/<scale>/<experiment>/<run>/seed<k>/``.
"""
import argparse
import fnmatch
import os.path as osp
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .errors import ExperimentError
from .paper import PaperKey, PaperTable

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCALES_FILE = osp.join('configs', 'experiments', 'scales.py')
PAPER_CSV = osp.join('configs', 'experiments', 'paper_tables.csv')
NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.+=-]*$')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')

DEFINITION_KEYS = ('title', 'description', 'teachers', 'runs', 'plots',
                   'paper_csv')
RUN_KEYS = ('name', 'config', 'teacher', 'cfg_options', 'paper', 'tags',
            'label')
TEACHER_KEYS = ('config', 'paper', 'tags', 'label')
PAPER_KEYS = ('table', 'backbone', 'method', 'setting', 'metric')
PLOT_TYPES = {
    'bars': ('type', 'name', 'title'),
    'curves': ('type', 'name', 'title', 'curve', 'panel', 'series', 'teacher'),
    'xy': ('type', 'name', 'title', 'x', 'series', 'metric'),
}
CURVES = ('val_error', 'val_acc', 'train_loss')
SCALE_KEYS = ('description', 'data', 'num_points', 'batch_size',
              'teacher_epochs', 'student_epochs', 'seeds', 'log_interval',
              'cfg_options')
DATA_KINDS = ('synthetic', 'real')
GENERATOR_KEYS = ('num_classes', 'train_per_class', 'test_per_class',
                  'num_points', 'seed', 'noise', 'partial_prob')


# ---------------------------------------------------------------- helpers
def repo_path(path: str) -> str:
    """``path`` as given when it exists, else relative to the repository."""
    if osp.isabs(path) or osp.exists(path):
        return path
    in_repo = osp.join(REPO_ROOT, path)
    return in_repo if osp.exists(in_repo) else path


def _load_data_config(path: str, what: str) -> Dict[str, Any]:
    """Load a data-only mmengine config file as a plain dict."""
    from mmengine.config import Config
    if not osp.isfile(path):
        raise ExperimentError(f'{path}: {what} not found (looked in the '
                              f'working directory and in {REPO_ROOT})')
    try:
        return Config.fromfile(path).to_dict()
    except Exception as err:  # a syntax error, a failed _base_, ...
        raise ExperimentError(f'{path}: cannot load the {what}: '
                              f'{type(err).__name__}: {err}') from err


def _where(path: str, entry: str) -> str:
    return f'{path}: {entry}'


def format_cfg_value(value: Any, where: str = 'cfg option') -> str:
    """Write ``value`` the way ``--cfg-options key=value`` reads it back.

    mmengine's ``DictAction`` parses ints, floats, True/False, None, and
    ``(a,b)`` / ``[a,b]`` for tuples and lists; strings are written bare.

    Args:
        value: An int, float, bool, None, str, or a tuple/list of those.
        where (str): Names the option in error messages.

    Returns:
        str: The value as text.

    Raises:
        ExperimentError: For a value ``DictAction`` cannot express (a dict,
            a string with spaces, commas, brackets or quotes).
    """
    if value is None or isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        if not value or re.search(r'[\s,()\[\]\'"]', value):
            raise ExperimentError(
                f'{where}: the string {value!r} cannot be passed through '
                '--cfg-options (empty, or has spaces, commas, brackets or '
                'quotes); put it in a config file instead')
        return value
    if isinstance(value, (tuple, list)):
        items = [format_cfg_value(v, where) for v in value]
        if isinstance(value, tuple):
            inner = ','.join(items) + (',' if len(items) == 1 else '')
            return f'({inner})'
        return f'[{",".join(items)}]'
    raise ExperimentError(
        f'{where}: a value of type {type(value).__name__} ({value!r}) cannot '
        'be passed through --cfg-options; use numbers, strings, booleans, '
        'None, tuples or lists, or put it in a config file')


def parse_cfg_options(options: Sequence[str]) -> Dict[str, Any]:
    """Parse ``key=value`` strings exactly as ``tools/train.py`` does."""
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(['--cfg-options', *options]).cfg_options or {}


def cfg_option_strings(options: Dict[str, Any],
                       where: str = 'cfg_options') -> List[str]:
    """``key=value`` strings for a dict of dotted keys, checked to read back.

    A string that reads back as a number (e.g. ``reg_norm='1'`` -> ``1``) is
    accepted when its text is unchanged, since mmbinpc stringifies such
    names; anything else that does not read back equal is an error.

    Args:
        options (dict): Dotted key -> value.
        where (str): Names the entry in error messages.

    Returns:
        list[str]: One ``key=value`` per option, in order.
    """
    if not isinstance(options, dict):
        raise ExperimentError(f'{where}: cfg_options must be a dict of '
                              f'dotted keys, got {type(options).__name__}')
    out = []
    for key, value in options.items():
        if not isinstance(key, str) or not re.match(r'^[\w.]+$', key):
            raise ExperimentError(f'{where}: bad cfg option key {key!r} '
                                  '(dotted config keys, e.g. '
                                  "'model.distill.eta')")
        text = format_cfg_value(value, f'{where}[{key!r}]')
        back = parse_cfg_options([f'{key}={text}'])[key]
        if back != value and not (isinstance(value, str)
                                  and str(back) == value):
            raise ExperimentError(
                f'{where}[{key!r}]: {value!r} reads back from the command '
                f'line as {back!r}; use a value --cfg-options can express')
        out.append(f'{key}={text}')
    return out


def _has_key(cfg: Dict[str, Any], dotted: str) -> bool:
    node: Any = cfg
    for part in dotted.split('.'):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and \
                int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


# ------------------------------------------------------------ definitions
@dataclass
class TeacherSpec:
    """An FP32 teacher of an experiment (one per backbone).

    Attributes:
        name (str): Its key in ``teachers``; also its cache directory name.
        config (str): Its training config.
        paper (PaperKey, optional): The paper's figure for it.
        tags (dict): Free-form labels used by the report's plots.
        label (str): Display name.
    """

    name: str
    config: str
    paper: Optional[PaperKey] = None
    tags: Dict[str, Any] = field(default_factory=dict)
    label: str = ''


@dataclass
class RunSpec:
    """One student setting of an experiment (trained once per seed).

    Attributes:
        name (str): Unique within the experiment; ``--only`` matches it.
        config (str): The student config.
        teacher (str): Key of its teacher in ``teachers``.
        cfg_options (dict): Dotted key -> value, applied last.
        paper (PaperKey, optional): The paper's figure for this setting.
        tags (dict): Free-form labels used by the report's plots.
        label (str): Display name.
    """

    name: str
    config: str
    teacher: str
    cfg_options: Dict[str, Any] = field(default_factory=dict)
    paper: Optional[PaperKey] = None
    tags: Dict[str, Any] = field(default_factory=dict)
    label: str = ''


@dataclass
class Experiment:
    """A loaded, validated experiment definition.

    Attributes:
        name (str): The definition file's stem (e.g. ``table4_methods``).
        path (str): The definition file.
        title (str): Report title.
        description (str): Report preamble.
        teachers (dict[str, TeacherSpec]): By name.
        runs (list[RunSpec]): In definition order.
        plots (list[dict]): Plot specifications (see report.py).
        paper (PaperTable): The paper's figures.
    """

    name: str
    path: str
    title: str
    description: str
    teachers: Dict[str, TeacherSpec]
    runs: List[RunSpec]
    plots: List[Dict[str, Any]]
    paper: PaperTable

    def select(self,
               patterns: Optional[Sequence[str]] = None) -> List[RunSpec]:
        """Runs whose name matches one of ``patterns`` (fnmatch).

        Args:
            patterns (Sequence[str], optional): None or empty: all runs.

        Returns:
            list[RunSpec]: In definition order.

        Raises:
            ExperimentError: If a pattern matches no run.
        """
        if not patterns:
            return list(self.runs)
        names = [r.name for r in self.runs]
        for pattern in patterns:
            if not fnmatch.filter(names, pattern):
                raise ExperimentError(
                    f'{self.path}: --only {pattern!r} matches no run. Runs: '
                    f'{", ".join(names)}')
        return [
            r for r in self.runs if any(
                fnmatch.fnmatchcase(r.name, p) for p in patterns)
        ]


def _paper_key(value: Any, paper: PaperTable,
               where: str) -> Optional[PaperKey]:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ExperimentError(f'{where}: paper must be a dict(table=, '
                              f'backbone=, method=, setting=) or None')
    unknown = set(value) - set(PAPER_KEYS)
    missing = {'table', 'backbone', 'method'} - set(value)
    if unknown or missing:
        raise ExperimentError(
            f'{where}: paper has unknown keys {sorted(unknown)} / lacks '
            f'{sorted(missing)}; it takes {", ".join(PAPER_KEYS)}')
    key = PaperKey(**{k: str(v) for k, v in value.items()})
    if key not in paper:
        raise ExperimentError(
            f'{where}: no row {key.label()!r} (metric {key.metric!r}) in '
            f'{paper.path}; {paper.near(key)}. Fix the key or add the row.')
    return key


def _check_config(config: Any, where: str) -> str:
    from mmbinpc.models.distillers.teacher_source import find_config_file
    if not isinstance(config, str) or not config:
        raise ExperimentError(f'{where}: config must be a config file path')
    try:
        find_config_file(config)
    except FileNotFoundError as err:
        raise ExperimentError(f'{where}: {err}. Fix the path (configs/'
                              '<backbone>/...) or create the config.')
    return config


def _check_tags(tags: Any, where: str) -> Dict[str, Any]:
    if tags is None:
        return {}
    if not isinstance(tags, dict) or not all(isinstance(k, str) for k in tags):
        raise ExperimentError(f'{where}: tags must be a dict of str keys')
    return dict(tags)


def load_experiment(path: str) -> Experiment:
    """Load and validate an experiment definition.

    Args:
        path (str): The definition file (cwd-relative or repo-relative).

    Returns:
        Experiment: The definition.

    Raises:
        ExperimentError: Naming the file, the bad entry and the fix.
    """
    path = repo_path(path)
    raw = _load_data_config(path, 'experiment definition')
    name = osp.splitext(osp.basename(path))[0]
    unknown = [
        k for k in raw if not k.startswith('_') and k not in DEFINITION_KEYS
    ]
    if unknown:
        raise ExperimentError(
            f'{path}: unknown top-level keys {unknown}; a definition has '
            f'{", ".join(DEFINITION_KEYS)} (helpers must start with _)')
    for key in ('teachers', 'runs'):
        if key not in raw:
            raise ExperimentError(f'{path}: no `{key}`; see the docstring '
                                  'of mmbinpc/experiments/grid.py')
    csv_path = raw.get('paper_csv') or PAPER_CSV
    if not osp.isabs(csv_path):
        beside = osp.join(osp.dirname(path), csv_path)
        csv_path = beside if osp.isfile(beside) else repo_path(csv_path)
    paper = PaperTable(csv_path)

    teachers: Dict[str, TeacherSpec] = {}
    if not isinstance(raw['teachers'], dict) or not raw['teachers']:
        raise ExperimentError(f'{path}: teachers must be a non-empty dict '
                              'name -> dict(config=...)')
    for tname, spec in raw['teachers'].items():
        where = _where(path, f'teachers[{tname!r}]')
        if not NAME_RE.match(tname):
            raise ExperimentError(f'{where}: the name must match '
                                  f'{NAME_RE.pattern}')
        if isinstance(spec, str):
            spec = dict(config=spec)
        if not isinstance(spec, dict):
            raise ExperimentError(f'{where}: must be a config path or '
                                  'dict(config=..., paper=..., tags=...)')
        bad = set(spec) - set(TEACHER_KEYS)
        if bad:
            raise ExperimentError(
                f'{where}: unknown keys {sorted(bad)}; a teacher takes '
                f'{", ".join(TEACHER_KEYS)} (no cfg_options: students load '
                'the teacher model from its config file, so a changed '
                'teacher needs its own config file)')
        teachers[tname] = TeacherSpec(
            name=tname,
            config=_check_config(spec.get('config'), where),
            paper=_paper_key(spec.get('paper'), paper, where),
            tags=_check_tags(spec.get('tags'), where),
            label=str(spec.get('label') or f'{tname} FP32 teacher'))

    runs: List[RunSpec] = []
    if not isinstance(raw['runs'], (list, tuple)) or not raw['runs']:
        raise ExperimentError(f'{path}: runs must be a non-empty list of '
                              'dict(name=, config=, teacher=, ...)')
    seen: Dict[str, int] = {}
    for index, spec in enumerate(raw['runs']):
        label = spec.get('name', index) if isinstance(spec, dict) else index
        where = _where(path, f'runs[{index}] ({label!r})')
        if not isinstance(spec, dict):
            raise ExperimentError(f'{where}: must be a dict')
        bad = set(spec) - set(RUN_KEYS)
        if bad:
            raise ExperimentError(f'{where}: unknown keys {sorted(bad)}; a '
                                  f'run takes {", ".join(RUN_KEYS)}')
        for key in ('name', 'config', 'teacher'):
            if key not in spec:
                raise ExperimentError(f'{where}: missing `{key}`')
        rname = spec['name']
        if not isinstance(rname, str) or not NAME_RE.match(rname):
            raise ExperimentError(f'{where}: the name must match '
                                  f'{NAME_RE.pattern}')
        if rname in seen:
            raise ExperimentError(f'{where}: duplicate run name {rname!r} '
                                  f'(also runs[{seen[rname]}])')
        seen[rname] = index
        if spec['teacher'] not in teachers:
            raise ExperimentError(
                f'{where}: teacher {spec["teacher"]!r} is not in teachers '
                f'({", ".join(teachers)})')
        options = spec.get('cfg_options') or {}
        cfg_option_strings(options, f'{where} cfg_options')
        runs.append(
            RunSpec(
                name=rname,
                config=_check_config(spec['config'], where),
                teacher=spec['teacher'],
                cfg_options=dict(options),
                paper=_paper_key(spec.get('paper'), paper, where),
                tags=_check_tags(spec.get('tags'), where),
                label=str(spec.get('label') or rname)))
    _check_option_keys(path, runs)

    plots = _check_plots(path, raw.get('plots', [dict(type='bars')]), runs)
    return Experiment(
        name=name,
        path=path,
        title=str(raw.get('title') or name),
        description=str(raw.get('description') or ''),
        teachers=teachers,
        runs=runs,
        plots=plots,
        paper=paper)


def _check_option_keys(path: str, runs: Sequence[RunSpec]) -> None:
    """Each run's config must be a distiller (it gets ``model.teacher`` and
    ``model.teacher_ckpt``) and each cfg option must name one of its keys
    (catches typos such as ``model.distill.lamda``)."""
    from mmengine.config import Config

    from mmbinpc.models.distillers.teacher_source import find_config_file
    loaded: Dict[str, Dict[str, Any]] = {}
    for run in runs:
        if run.config not in loaded:
            try:
                loaded[run.config] = Config.fromfile(
                    find_config_file(run.config)).to_dict()
            except Exception as err:  # a broken config or _base_
                raise ExperimentError(
                    f'{path}: run {run.name!r}: cannot load {run.config}: '
                    f'{type(err).__name__}: {err}') from err
        cfg = loaded[run.config]
        if not _has_key(cfg, 'model.teacher_ckpt'):
            raise ExperimentError(
                f'{path}: run {run.name!r}: {run.config} is not a student '
                '(its model has no teacher_ckpt); runs are BinaryDistiller '
                'configs, teachers go in `teachers`')
        for key in run.cfg_options:
            if not _has_key(cfg, key):
                raise ExperimentError(
                    f'{path}: run {run.name!r}: cfg option {key!r} names a '
                    f'key that {run.config} does not have (a typo?)')


def _check_plots(path: str, plots: Any,
                 runs: Sequence[RunSpec]) -> List[Dict[str, Any]]:
    if not isinstance(plots, (list, tuple)):
        raise ExperimentError(f'{path}: plots must be a list of dicts')
    out, names = [], set()
    for index, plot in enumerate(plots):
        where = _where(path, f'plots[{index}]')
        if not isinstance(plot, dict) or plot.get('type') not in PLOT_TYPES:
            raise ExperimentError(f'{where}: needs type= one of '
                                  f'{", ".join(PLOT_TYPES)}')
        bad = set(plot) - set(PLOT_TYPES[plot['type']])
        if bad:
            raise ExperimentError(
                f'{where}: unknown keys {sorted(bad)} for a {plot["type"]} '
                f'plot; it takes {", ".join(PLOT_TYPES[plot["type"]])}')
        plot = dict(plot)
        plot.setdefault('name', plot['type'])
        if not NAME_RE.match(plot['name']) or plot['name'] in names:
            raise ExperimentError(f'{where}: name {plot["name"]!r} must be '
                                  'unique and match ' + NAME_RE.pattern)
        names.add(plot['name'])
        if plot['type'] == 'curves':
            plot.setdefault('curve', 'val_error')
            plot.setdefault('teacher', True)
            if plot['curve'] not in CURVES:
                raise ExperimentError(f'{where}: curve must be one of '
                                      f'{", ".join(CURVES)}')
            panel = plot.get('panel', ())
            plot['panel'] = [panel] if isinstance(panel, str) else \
                list(panel)
            needed = plot['panel'] + ([plot['series']]
                                      if 'series' in plot else [])
        elif plot['type'] == 'xy':
            if 'x' not in plot:
                raise ExperimentError(f'{where}: an xy plot needs x=<tag>')
            plot.setdefault('metric', 'test_overall_acc')
            needed = [plot['x']
                      ] + ([plot['series']] if 'series' in plot else [])
        else:
            needed = []
        for tag in needed:
            missing = [r.name for r in runs if tag not in r.tags]
            if missing:
                raise ExperimentError(
                    f'{where}: runs {missing[:5]} lack the tag {tag!r} the '
                    'plot groups by; add it to their tags')
        out.append(plot)
    return out


# ------------------------------------------------------------------ scales
@dataclass
class Scale:
    """How big every run of a grid is.

    Attributes:
        name (str): ``smoke``, ``cpu``, ``paper``, ...
        description (str): One line for reports.
        data_root (str): The dataset directory; ``{scale_dir}`` in the file
            stands for ``<work_dir>/<scale>``.
        data_kind (str): ``'synthetic'`` (generated when absent) or
            ``'real'`` (must exist and not be synthetic).
        generator (dict): ``write_synthetic_modelnet`` keyword arguments.
        num_points (int): Points per shape for train, val and test.
        batch_size (int): Per loader.
        teacher_epochs (int): Teacher schedule.
        student_epochs (int): Student schedule.
        seeds (tuple[int]): Student seeds.
        log_interval (int): Logger interval, also the loss window (so the
            logged losses are disjoint interval means).
        cfg_options (dict): Extra dotted options for every run.
        path (str): The scales file.
    """

    name: str
    description: str
    data_root: str
    data_kind: str
    generator: Dict[str, Any]
    num_points: int
    batch_size: int
    teacher_epochs: int
    student_epochs: int
    seeds: Tuple[int, ...]
    log_interval: int
    cfg_options: Dict[str, Any]
    path: str

    def options(self, work_root: str) -> List[str]:
        """The scale's ``--cfg-options`` (loaders alike, then extras)."""
        root = self.resolved_root(work_root)
        opts: Dict[str, Any] = {}
        for loader in LOADERS:
            opts[f'{loader}.dataset.data_root'] = root
            opts[f'{loader}.dataset.num_points'] = self.num_points
            opts[f'{loader}.batch_size'] = self.batch_size
        opts['default_hooks.logger.interval'] = self.log_interval
        opts['log_processor.window_size'] = self.log_interval
        opts.update(self.cfg_options)
        return cfg_option_strings(opts, f'{self.path}: scale {self.name!r}')

    def resolved_root(self, work_root: str) -> str:
        """The data root with ``{scale_dir}`` replaced."""
        return self.data_root.replace('{scale_dir}', work_root)


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ExperimentError(f'{where}: must be an integer >= 1, got '
                              f'{value!r}')
    return value


def load_scales(path: Optional[str] = None) -> Dict[str, Scale]:
    """Load ``configs/experiments/scales.py`` (or ``path``).

    Args:
        path (str, optional): The scales file.

    Returns:
        dict[str, Scale]: By name.
    """
    path = repo_path(path or SCALES_FILE)
    raw = _load_data_config(path, 'scales file')
    scales = {}
    for name, spec in raw.items():
        if name.startswith('_'):
            continue
        where = _where(path, f'scale {name!r}')
        if not isinstance(spec, dict):
            raise ExperimentError(f'{where}: must be a dict')
        bad = set(spec) - set(SCALE_KEYS)
        missing = set(SCALE_KEYS) - set(spec) - {'description', 'cfg_options'}
        if bad or missing:
            raise ExperimentError(
                f'{where}: unknown keys {sorted(bad)} / missing '
                f'{sorted(missing)}; a scale has {", ".join(SCALE_KEYS)}')
        data = spec['data']
        if not isinstance(data, dict) or 'root' not in data or \
                data.get('kind') not in DATA_KINDS:
            raise ExperimentError(
                f'{where}: data must be dict(root=..., kind=one of '
                f'{DATA_KINDS}[, generator=dict(...)])')
        generator = dict(data.get('generator') or {})
        if data['kind'] == 'synthetic':
            bad = set(generator) - set(GENERATOR_KEYS)
            if bad or not generator:
                raise ExperimentError(
                    f'{where}: data.generator takes {GENERATOR_KEYS}, '
                    f'got {sorted(generator)}')
        seeds = spec['seeds']
        if not isinstance(seeds, (list, tuple)) or not seeds or not all(
                isinstance(s, int) and s >= 0 for s in seeds) or \
                len(set(seeds)) != len(seeds):
            raise ExperimentError(f'{where}: seeds must be distinct '
                                  f'integers >= 0, got {seeds!r}')
        scale = Scale(
            name=name,
            description=str(spec.get('description', '')),
            data_root=str(data['root']),
            data_kind=data['kind'],
            generator=generator,
            num_points=_positive_int(spec['num_points'], f'{where} '
                                     'num_points'),
            batch_size=_positive_int(spec['batch_size'], f'{where} '
                                     'batch_size'),
            teacher_epochs=_positive_int(spec['teacher_epochs'],
                                         f'{where} teacher_epochs'),
            student_epochs=_positive_int(spec['student_epochs'],
                                         f'{where} student_epochs'),
            seeds=tuple(seeds),
            log_interval=_positive_int(spec['log_interval'],
                                       f'{where} log_interval'),
            cfg_options=dict(spec.get('cfg_options') or {}),
            path=path)
        scale.options('<work>')  # validates cfg_options
        scales[name] = scale
    if not scales:
        raise ExperimentError(f'{path}: defines no scale')
    return scales


def get_scale(name: str, path: Optional[str] = None) -> Scale:
    """One scale by name.

    Raises:
        ExperimentError: Unknown name (the message lists the known ones).
    """
    scales = load_scales(path)
    if name not in scales:
        raise ExperimentError(
            f'unknown scale {name!r}: {scales[next(iter(scales))].path} '
            f'defines {", ".join(scales)}; pick one with --scale or add it '
            'there')
    return scales[name]


# -------------------------------------------------------------------- jobs
@dataclass
class Job:
    """One training (then test) of one run or teacher at one seed.

    Attributes:
        experiment (str): The experiment's name.
        name (str): Run or teacher name.
        role (str): ``'teacher'`` or ``'student'``.
        seed (int): ``randomness.seed``.
        config (str): The config file.
        cfg_options (dict): The run's own options (from the definition).
        options (list[str]): Every ``--cfg-options`` string, in order.
        epochs (int): ``--epochs``.
        work_dir (str): Its work directory.
        scale (str): The scale's name.
        teacher (str, optional): Teacher name (students).
        teacher_dir (str, optional): The teacher's work directory.
        paper (PaperKey, optional): The paper's figure.
        tags (dict): From the definition.
        label (str): Display name.
    """

    experiment: str
    name: str
    role: str
    seed: int
    config: str
    cfg_options: Dict[str, Any]
    options: List[str]
    epochs: int
    work_dir: str
    scale: str
    teacher: Optional[str] = None
    teacher_dir: Optional[str] = None
    paper: Optional[PaperKey] = None
    tags: Dict[str, Any] = field(default_factory=dict)
    label: str = ''

    @property
    def result_path(self) -> str:
        """Where its ``result.json`` goes."""
        return osp.join(self.work_dir, 'result.json')

    @property
    def key(self) -> str:
        """``<name>/seed<k>``, or ``teacher:<name>``."""
        return f'teacher:{self.name}' if self.role == 'teacher' else \
            f'{self.name}/seed{self.seed}'

    def train_argv(self, resume: Optional[str] = None) -> List[str]:
        """``tools/train.py`` arguments (``--resume CKPT`` when given)."""
        argv = [
            self.config, '--work-dir', self.work_dir, '--epochs',
            str(self.epochs)
        ]
        if resume:
            argv += ['--resume', resume]
        return argv + ['--cfg-options', *self.options]

    def test_argv(self, checkpoint: str) -> List[str]:
        """``tools/test.py`` arguments evaluating ``checkpoint``."""
        return [
            self.config, checkpoint, '--work-dir',
            osp.join(self.work_dir, 'test'), '--cfg-options', *self.options
        ]

    def train_command(self, resume: Optional[str] = None) -> str:
        """The training as a command line a user can paste."""
        return 'python tools/train.py ' + shlex.join(self.train_argv(resume))

    def test_command(self, checkpoint: str) -> str:
        """The test evaluation as a command line."""
        return 'python tools/test.py ' + shlex.join(self.test_argv(checkpoint))


@dataclass
class Plan:
    """The jobs of one experiment at one scale.

    Attributes:
        experiment (Experiment): The definition.
        scale (Scale): The scale.
        work_root (str): ``<work_dir>/<scale>``.
        seeds (tuple[int]): Student seeds.
        teachers (list[Job]): Teachers the selected runs need.
        students (list[Job]): Selected runs x seeds.
    """

    experiment: Experiment
    scale: Scale
    work_root: str
    seeds: Tuple[int, ...]
    teachers: List[Job]
    students: List[Job]

    @property
    def jobs(self) -> List[Job]:
        """Teachers first, then students."""
        return self.teachers + self.students


def teacher_dir(work_root: str, name: str) -> str:
    """``<work_root>/teachers/<name>``."""
    return osp.join(work_root, 'teachers', name)


def student_dir(work_root: str, experiment: str, run: str, seed: int) -> str:
    """``<work_root>/<experiment>/<run>/seed<seed>``."""
    return osp.join(work_root, experiment, run, f'seed{seed}')


def teacher_job(experiment: Experiment, scale: Scale, work_root: str,
                name: str) -> Job:
    """The job training (and testing) teacher ``name`` with seed 0."""
    spec = experiment.teachers[name]
    return Job(
        experiment=experiment.name,
        name=name,
        role='teacher',
        seed=0,
        config=spec.config,
        cfg_options={},
        options=scale.options(work_root) + ['randomness.seed=0'],
        epochs=scale.teacher_epochs,
        work_dir=teacher_dir(work_root, name),
        scale=scale.name,
        paper=spec.paper,
        tags=dict(spec.tags),
        label=spec.label)


def expand(experiment: Experiment,
           scale: Scale,
           work_dir: str = osp.join('work_dirs', 'experiments'),
           seeds: Optional[Sequence[int]] = None,
           only: Optional[Sequence[str]] = None) -> Plan:
    """Expand the selected runs x seeds (and their teachers) into jobs.

    Args:
        experiment (Experiment): The definition.
        scale (Scale): The scale.
        work_dir (str): Root of all experiment work directories.
        seeds (Sequence[int], optional): Override the scale's seeds.
        only (Sequence[str], optional): fnmatch patterns on run names.

    Returns:
        Plan: The jobs.
    """
    if seeds is not None:
        seeds = tuple(seeds)
        if not seeds or any(s < 0 for s in seeds) or \
                len(set(seeds)) != len(seeds):
            raise ExperimentError(f'--seeds must be distinct integers >= 0,'
                                  f' got {list(seeds)}')
    seeds = seeds or scale.seeds
    work_root = osp.join(work_dir, scale.name)
    runs = experiment.select(only)
    base = scale.options(work_root)
    teachers = [
        teacher_job(experiment, scale, work_root, name)
        for name in experiment.teachers if any(r.teacher == name for r in runs)
    ]
    students = []
    for run in runs:
        tdir = teacher_dir(work_root, run.teacher)
        link = cfg_option_strings(
            {
                'model.teacher': experiment.teachers[run.teacher].config,
                'model.teacher_ckpt': tdir
            }, f'{experiment.path}: run '
            f'{run.name!r} teacher')
        own = cfg_option_strings(run.cfg_options,
                                 f'{experiment.path}: run {run.name!r}')
        for seed in seeds:
            students.append(
                Job(experiment=experiment.name,
                    name=run.name,
                    role='student',
                    seed=seed,
                    config=run.config,
                    cfg_options=dict(run.cfg_options),
                    options=base + [f'randomness.seed={seed}'] + link + own,
                    epochs=scale.student_epochs,
                    work_dir=student_dir(work_root, experiment.name, run.name,
                                         seed),
                    scale=scale.name,
                    teacher=run.teacher,
                    teacher_dir=tdir,
                    paper=run.paper,
                    tags=dict(run.tags),
                    label=run.label))
    return Plan(
        experiment=experiment,
        scale=scale,
        work_root=work_root,
        seeds=tuple(seeds),
        teachers=teachers,
        students=students)
